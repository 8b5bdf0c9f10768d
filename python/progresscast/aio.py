"""The asyncio publisher (``redis.asyncio``), for FastAPI and async workers."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, Optional, Set, Tuple

from .publisher import Update, _Settings, log, split
from .script import Item, PublishResult, decode_append
from .task import AsyncTask
from .wire import ProgressValidationError


class AsyncProgressPublisher:
    """The asyncio twin of ProgressPublisher: same options, ``await`` on publish.

    Example::

        publisher = AsyncProgressPublisher(redis.asyncio.Redis.from_url(url))
        await publisher.publish("import-42", progress=42, message="Rows")
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
        self._last: Dict[str, Tuple[float, str]] = {}
        self._held: Dict[str, Tuple[Update, Dict[str, Any]]] = {}
        self._timers: Dict[str, asyncio.TimerHandle] = {}
        self._writes: Set["asyncio.Task[PublishResult]"] = set()
        # Per operation, the latest write handed over: each write waits for the one before.
        self._tails: Dict[str, "asyncio.Task[PublishResult]"] = {}

    async def publish(self, op: str, **kwargs: Any) -> PublishResult:
        """Publish one event; see ProgressPublisher.publish."""
        update, options = split(kwargs)
        item = self._s.item(op, update, options)
        held = self._take_held(op)
        # Shielded: a caller cancelled while waiting leaves the write to finish, in order.
        return await asyncio.shield(self._spawn(op, *([held, item] if held is not None else [item])))

    def report(self, op: str, **kwargs: Any) -> None:
        """Coalesced publish that never raises; see ProgressPublisher.report.
        Call from a running event loop; ``await flush()`` drains it."""
        update, options = split(kwargs)
        try:
            item = self._s.item(op, update, options)
        except ProgressValidationError as error:
            self._s.failed(error, op)
            return
        status = dict(item.fields)["status"]
        if item.restart:
            # What is held of the previous attempt goes first, then the new attempt, in order.
            held = self._take_held(op)
            self._last[op] = (time.monotonic(), status)
            self._spawn(op, *([held, item] if held is not None else [item]))
            return
        now = time.monotonic()
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
            if op not in self._timers and last is not None:
                delay = max(0.0, self._s.throttle_seconds - (now - last[0]))
                self._timers[op] = asyncio.get_running_loop().call_later(delay, self._write_held, op)
            return
        self._drop_held(op)
        self._last[op] = (now, status)
        self._spawn(op, item)

    async def flush(self) -> None:
        """Write every held report and wait for every write in flight."""
        for op in list(self._held):
            self._write_held(op)
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def close(self) -> None:
        """Flush. The Redis client stays yours to close."""
        await self.flush()

    async def __aenter__(self) -> "AsyncProgressPublisher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def task(
        self,
        op: str,
        total: Optional[int] = None,
        cid: Optional[str] = None,
        scope: Optional[str] = None,
        restart: Optional[bool] = None,
        message: Optional[str] = None,
        data: Optional[Dict[str, Any]] = None,
    ) -> AsyncTask:
        """``async with publisher.task(op, total=n) as t:``; see ProgressPublisher.task."""
        return AsyncTask(
            self, op, total=total, cid=cid, scope=scope, restart=restart, message=message, data=data
        )

    async def cancel_mark(self, op: str) -> Optional[str]:
        """Ask Redis whether ``op`` was asked to stop (one read); see ProgressPublisher.cancel_mark."""
        value = await self._redis.hget(self._s.state_key(op), "cancel")
        reason = value.decode("utf-8") if isinstance(value, bytes) else value
        self._s.answers[op] = (time.monotonic(), reason)
        return reason

    def _drop_held(self, op: str) -> None:
        timer = self._timers.pop(op, None)
        if timer is not None:
            timer.cancel()
        self._held.pop(op, None)

    def _take_held(self, op: str) -> Optional[Item]:
        timer = self._timers.pop(op, None)
        if timer is not None:
            timer.cancel()
        held = self._held.pop(op, None)
        if held is None:
            return None
        item = self._s.item(op, *held)
        self._last[op] = (time.monotonic(), dict(item.fields)["status"])
        return item

    def _write_held(self, op: str) -> None:
        item = self._take_held(op)
        if item is not None:
            self._spawn(op, item)

    def _spawn(self, op: str, *items: Item) -> "asyncio.Task[PublishResult]":
        before = self._tails.get(op)
        task = asyncio.get_running_loop().create_task(self._send_all(op, before, items))
        self._tails[op] = task
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(lambda done: self._tails.pop(op) if self._tails.get(op) is done else None)
        return task

    async def _send_all(
        self, op: str, before: Optional["asyncio.Task[PublishResult]"], items: Tuple[Item, ...]
    ) -> PublishResult:
        if before is not None:
            await asyncio.wait([before])
        result = PublishResult("failed")
        for item in items:
            result = await self._send(op, item)
        return result

    async def _send(self, op: str, item: Item) -> PublishResult:
        sent = self._s.stamped(op, item)
        result = await self._write(op, sent)
        self._s.answered(op, item, result)
        return result

    async def _write(self, op: str, item: Item) -> PublishResult:
        keys, args = self._s.args(self._s.estimated(op, item))
        attempts = self._s.retry_attempts if item.terminal else 0
        attempt = 0
        while True:
            try:
                reply = await self._script(keys=keys, args=args)
                result = decode_append(reply, 1)[0]
            except Exception as error:  # noqa: BLE001 - a backend fault never reaches the job
                if attempt < attempts:
                    await asyncio.sleep(self._s.backoff(attempt))
                    attempt += 1
                    continue
                return self._s.failed(error, op)
            if result.outcome == "refused":
                log.debug("progresscast update refused", extra={"op": op, "reason": result.reason})
            return result
