"""The synchronous publisher (redis-py), for Celery tasks and scripts."""
from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Optional, Tuple

from .estimate import MAX_ETA_SECONDS, Estimator
from .legacy import Legacy, encode_section
from .script import APPEND_SCRIPT, LEGACY_APPEND_SCRIPT, Item, PublishResult, decode_append, encode_append
from .task import Task
from .wire import (
    PREFIX_PATTERN,
    TERMINAL_STATUSES,
    ProgressValidationError,
    assert_id,
    encode_update,
    format_decimal,
    format_ts,
)

log = logging.getLogger("progresscast")

Update = Dict[str, Any]
_ORDER_LOCKS = 64
_PUBLISH_OPTIONS = ("scope", "allow_backwards", "allow_after_terminal", "restart")


def _int_option(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProgressValidationError(name, value, "must be an integer of at least %d" % minimum)
    return value


class _Settings:
    """Options shared by the sync and async publishers, checked once."""

    def __init__(
        self,
        prefix: str,
        ttl_seconds: int,
        terminal_ttl_seconds: int,
        max_len: int,
        throttle_seconds: float,
        retry_attempts: int,
        on_error: Optional[Callable[[BaseException, str], None]],
        legacy: Any = None,
        estimate: bool = True,
        cancel_check_ms: int = 2000,
    ) -> None:
        if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
            raise ProgressValidationError("prefix", prefix, "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
        self.prefix = prefix
        self.ttl_seconds = _int_option("ttl_seconds", ttl_seconds, 1)
        self.terminal_ttl_seconds = min(_int_option("terminal_ttl_seconds", terminal_ttl_seconds, 1), ttl_seconds)
        self.max_len = _int_option("max_len", max_len, 1)
        if isinstance(throttle_seconds, bool) or not isinstance(throttle_seconds, (int, float)) or throttle_seconds < 0:
            raise ProgressValidationError("throttle_seconds", throttle_seconds, "must be a non-negative number")
        self.throttle_seconds = float(throttle_seconds)
        self.retry_attempts = _int_option("retry_attempts", retry_attempts, 0)
        self.on_error = on_error
        self.legacy: Optional[Legacy] = None if legacy is None else Legacy.parse(legacy)
        self.source = APPEND_SCRIPT if self.legacy is None else LEGACY_APPEND_SCRIPT
        if not isinstance(estimate, bool):
            raise ProgressValidationError("estimate", estimate, "must be a boolean")
        self.estimator: Optional[Estimator] = Estimator() if estimate else None
        self.cancel_check_seconds = _int_option("cancel_check_ms", cancel_check_ms, 10) / 1000
        # Per operation until its terminal event: the latest ``ts`` sent, and when Redis last
        # answered about it (with the cancellation reason it gave, if any).
        self.last_ts: Dict[str, str] = {}
        self.answers: Dict[str, Tuple[float, Optional[str]]] = {}

    def events_key(self, op: str) -> str:
        return "%s:{%s}:events" % (self.prefix, op)

    def state_key(self, op: str) -> str:
        return "%s:{%s}:state" % (self.prefix, op)

    def scope_key(self, scope: str) -> str:
        return "%s:scope:{%s}:events" % (self.prefix, scope)

    def item(self, op: str, update: Update, options: Dict[str, Any]) -> Item:
        fields = encode_update(op, **update)
        scope = options.get("scope")
        if scope is not None:
            assert_id(scope, "scope")
        status = dict(fields)["status"]
        return Item(
            events_key=self.events_key(op),
            state_key=self.state_key(op),
            scope_key=self.scope_key(scope) if scope is not None else None,
            fields=fields,
            terminal=status in TERMINAL_STATUSES,
            allow_backwards=bool(options.get("allow_backwards", False)),
            allow_after_terminal=bool(options.get("allow_after_terminal", False)),
            restart=bool(options.get("restart", False)),
            stamped=update.get("ts") is None,
        )

    def stamped(self, op: str, item: Item) -> Item:
        """The item with its ``ts`` taken as it is sent, never before the previous event's of ``op``.

        Called in the order the events are written, so ``ts`` never goes back within an
        operation (an update encoded earlier and held may be sent after a later one; a
        wall clock may step back). A ``ts`` the caller gave is kept as given."""
        last = self.last_ts.get(op)
        if item.stamped:
            # ISO 8601 UTC with milliseconds and four-digit years: text order is time order.
            now = format_ts(datetime.now(timezone.utc))
            ts = now if last is None or now > last else last
            item = dataclasses.replace(item, fields=[(k, ts if k == "ts" else v) for k, v in item.fields])
        else:
            ts = dict(item.fields)["ts"]
        if item.terminal:
            self.last_ts.pop(op, None)
        elif last is None or ts > last:
            self.last_ts[op] = ts
        return item

    def answered(self, op: str, item: Item, result: PublishResult) -> None:
        """Remember what Redis answered about ``op``'s cancellation (read by its tasks)."""
        if result.outcome == "failed":
            return
        if item.terminal and result.ok:
            self.answers.pop(op, None)
        else:
            self.answers[op] = (time.monotonic(), result.cancelled)

    def known_cancel(self, op: str) -> Tuple[Optional[str], bool]:
        """The cancellation reason last learned for ``op``, and whether it is fresh
        (learned within ``cancel_check_ms``): a stale answer is checked again."""
        answer = self.answers.get(op)
        if answer is None:
            return None, False
        return answer[1], time.monotonic() - answer[0] < self.cancel_check_seconds

    def estimated(self, op: str, item: Item) -> Item:
        """The item with ``eta`` from the progress rate, when it has progress and no eta
        of its own (what the TypeScript core adds); sampled once, when the item is sent."""
        if self.estimator is None:
            return item
        if item.restart:
            self.estimator.forget(op)
        if item.terminal:
            self.estimator.forget(op)
            return item
        f = dict(item.fields)
        if "eta" in f or "progress" not in f:
            return item
        at = datetime.strptime(f["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        eta = self.estimator.sample(op, float(f["progress"]), round(at.timestamp() * 1000))
        if eta is None or eta > MAX_ETA_SECONDS:
            return item
        fields = list(item.fields)
        # Before the final ``attempt`` pair, where the script expects it.
        fields.insert(len(fields) - 1 if fields[-1][0] == "attempt" else len(fields), ("eta", format_decimal(eta)))
        return dataclasses.replace(item, fields=fields)

    def args(self, item: Item) -> Tuple[list, list]:
        keys, args = encode_append([item], self.ttl_seconds, self.max_len, self.terminal_ttl_seconds)
        if self.legacy is not None:
            writes = self.legacy.writes(item.fields, item.state_key)
            args += encode_section(keys, [writes], self.ttl_seconds, self.max_len)
        return keys, args

    def failed(self, error: BaseException, op: str) -> PublishResult:
        log.error("progresscast publish failed", extra={"op": op, "error": repr(error)})
        if self.on_error is not None:
            try:
                self.on_error(error, op)
            except Exception:  # noqa: BLE001 - on_error must not break the job
                pass
        return PublishResult("failed", error=error)

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(2.0, 0.1 * 2**attempt))


def split(kwargs: Dict[str, Any]) -> Tuple[Update, Dict[str, Any]]:
    """Separate an update's fields from publish options."""
    update = {k: v for k, v in kwargs.items() if k not in _PUBLISH_OPTIONS}
    options = {k: v for k, v in kwargs.items() if k in _PUBLISH_OPTIONS}
    return update, options


class ProgressPublisher:
    """Publish progress of background jobs in progresscast's wire format.

    Each publish is one atomic script call (EVALSHA, EVAL when the script is
    not cached): the event is appended to ``<prefix>:{<op>}:events`` and merged
    into ``<prefix>:{<op>}:state``, ``seq`` assigned by Redis. Safe to share
    between threads.

    ``legacy`` (``"chunking"``, ``"importProgress"``, ``"operations"``, or a
    dict with ``layout``, ``statuses``, ``namespace``) also writes each event
    the way that older layout's readers expect it, in the same call (see
    docs/migrating.md); ``result.subscribers`` then counts the receivers of an
    ``importProgress`` publish.

    ``estimate`` (default True) adds ``eta``, the seconds remaining from the
    progress rate, to events with progress and no eta of their own, as the
    TypeScript core does.

    ``cancel_check_ms`` (default 2000, at least 10): how old the last answer
    about an operation's cancellation may be before a task reading
    ``t.cancelled`` asks Redis again (one read); every publish answers it too.

    Within an operation, each event's ``ts`` is taken when it is written and
    never before the previous event's (unless given as ``ts=``).

    Example::

        publisher = ProgressPublisher(redis.Redis.from_url(url))
        publisher.publish("import-42", current=420, total=1000, message="Rows")
    """

    def __init__(
        self,
        redis: Any,
        prefix: str = "pc",
        ttl_seconds: int = 86400,
        max_len: int = 1000,
        terminal_ttl_seconds: int = 3600,
        throttle_seconds: float = 0.25,
        retry_attempts: int = 5,
        on_error: Optional[Callable[[BaseException, str], None]] = None,
        legacy: Any = None,
        estimate: bool = True,
        cancel_check_ms: int = 2000,
    ) -> None:
        self._s = _Settings(
            prefix,
            ttl_seconds,
            terminal_ttl_seconds,
            max_len,
            throttle_seconds,
            retry_attempts,
            on_error,
            legacy,
            estimate,
            cancel_check_ms,
        )
        self._redis = redis
        self._script = redis.register_script(self._s.source)
        self._lock = threading.Lock()
        # One operation's events are stamped and written one at a time, in order (a
        # bounded set of locks, an operation always on the same one).
        self._order = [threading.RLock() for _ in range(_ORDER_LOCKS)]
        self._last: Dict[str, Tuple[float, str]] = {}
        self._held: Dict[str, Tuple[Update, Dict[str, Any]]] = {}
        self._timers: Dict[str, threading.Timer] = {}

    def publish(self, op: str, **kwargs: Any) -> PublishResult:
        """Publish one event and return what happened.

        Keyword arguments: the update's fields (``progress``, ``current``,
        ``total``, ``message``, ``status``, ``type``, ``cid``, ``data``,
        ``eta``, ``ts``) and the options ``scope``, ``allow_backwards``,
        ``allow_after_terminal`` and ``restart``. Raises
        ProgressValidationError for bad input only; a Redis failure is logged
        and returned (terminal events are retried first), never raised into the job.

        ``restart=True`` starts a new attempt of the operation (a retried job
        under the same id), whether or not the previous one ended: the
        result's ``attempt`` is one more than before (1 for an operation not
        known), ``seq`` keeps increasing, the snapshot is replaced by this
        event, the stream's history of the previous attempt is dropped
        (watchers resuming from it get a reset) and the ordering rules are
        waived for this event.
        """
        update, options = split(kwargs)
        item = self._s.item(op, update, options)
        with self._ordered(op):
            self._write_held(op)
            return self._send(op, item)

    def report(self, op: str, **kwargs: Any) -> None:
        """Publish without waiting for each update: coalesced per operation.

        At most one write per ``throttle_seconds``; the newest update inside
        the interval is held and written when it ends. Status changes,
        terminal events and restarts are written at once (a restart after
        what is held of the previous attempt). Never raises: bad input and
        failures go to the log and ``on_error``.
        """
        update, options = split(kwargs)
        try:
            item = self._s.item(op, update, options)
        except ProgressValidationError as error:
            self._s.failed(error, op)
            return
        with self._ordered(op):
            self._report(op, item, update, options)

    def _report(self, op: str, item: Item, update: Update, options: Dict[str, Any]) -> None:
        status = dict(item.fields)["status"]
        if item.restart:
            self._write_held(op)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(op)
            due = (
                self._s.throttle_seconds == 0
                or last is None
                or item.restart
                or item.terminal
                or last[1] != status
                or now - last[0] >= self._s.throttle_seconds
            )
            if not due:
                self._held[op] = (update, options)
                if op not in self._timers:
                    delay = max(0.0, self._s.throttle_seconds - (now - last[0])) if last else 0.0
                    timer = threading.Timer(delay, self._write_held, args=(op,))
                    timer.daemon = True
                    self._timers[op] = timer
                    timer.start()
                return
            self._cancel_timer(op)
            self._held.pop(op, None)
            self._last[op] = (now, status)
        self._send(op, item)

    def flush(self) -> None:
        """Write every held report now."""
        with self._lock:
            ops = list(self._held)
        for op in ops:
            self._write_held(op)

    def close(self) -> None:
        """Flush held reports. The Redis client stays yours to close."""
        self.flush()

    def __enter__(self) -> "ProgressPublisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def task(
        self,
        op: str,
        total: Optional[int] = None,
        cid: Optional[str] = None,
        scope: Optional[str] = None,
        restart: Optional[bool] = None,
        message: Optional[str] = None,
        data: Optional[Dict[str, Any]] = None,
    ) -> Task:
        """A job's lifecycle as a context manager; see Task.

        ``running`` on entry (with ``message`` and ``data`` when given),
        ``completed`` on a normal exit, ``cancelled`` when the block raises
        Cancelled (which the block absorbs), a ``retry`` event (status
        ``queued``) when it raises a Celery retry, ``failed`` (``KeyError:
        'sku'``, as Python prints it) for any other exception, which
        propagates. ``data`` is merged into every event's data.

        ``restart=True`` runs a retried job as a new attempt of the operation:
        the task's first event is published with ``restart=True``. Left out, a
        task run by a Celery worker retrying its job starts a new attempt."""
        return Task(
            self, op, total=total, cid=cid, scope=scope, restart=restart, message=message, data=data
        )

    def cancel_mark(self, op: str) -> Optional[str]:
        """Ask Redis whether ``op`` was asked to stop (one read): the reason, or None.
        Remembered as the operation's latest answer. Raises what redis-py raises."""
        value = self._redis.hget(self._s.state_key(op), "cancel")
        reason = value.decode("utf-8") if isinstance(value, bytes) else value
        self._s.answers[op] = (time.monotonic(), reason)
        return reason

    def _ordered(self, op: str) -> threading.RLock:
        return self._order[hash(op) % _ORDER_LOCKS]

    def _cancel_timer(self, op: str) -> None:
        timer = self._timers.pop(op, None)
        if timer is not None:
            timer.cancel()

    def _write_held(self, op: str) -> None:
        with self._ordered(op):
            with self._lock:
                self._timers.pop(op, None)
                held = self._held.pop(op, None)
                if held is None:
                    return
                update, options = held
                item = self._s.item(op, update, options)
                self._last[op] = (time.monotonic(), dict(item.fields)["status"])
            self._send(op, item)

    def _send(self, op: str, item: Item) -> PublishResult:
        with self._ordered(op):
            result = self._write(op, self._s.stamped(op, item))
            self._s.answered(op, item, result)
            return result

    def _write(self, op: str, item: Item) -> PublishResult:
        keys, args = self._s.args(self._s.estimated(op, item))
        attempts = self._s.retry_attempts if item.terminal else 0
        attempt = 0
        while True:
            try:
                reply = self._script(keys=keys, args=args)
                result = decode_append(reply, 1)[0]
            except Exception as error:  # noqa: BLE001 - a backend fault never reaches the job
                if attempt < attempts:
                    time.sleep(self._s.backoff(attempt))
                    attempt += 1
                    continue
                return self._s.failed(error, op)
            if result.outcome == "refused":
                log.debug("progresscast update refused", extra={"op": op, "reason": result.reason})
            return result
