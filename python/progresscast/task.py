"""Task contexts: a job's lifecycle on one operation (sync and asyncio)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, Optional

from .retries import Retrying, current_attempt, describe, retrying
from .script import PublishResult
from .wire import ProgressError, ProgressValidationError, assert_id, encode_update, utf16_length

_OPTIONS = ("scope", "allow_backwards", "allow_after_terminal", "restart")


class Cancelled(ProgressError):
    """Raise inside ``with publisher.task(...)`` to end the task ``cancelled``.

    The block publishes ``cancelled`` (``reason`` as the message) and absorbs
    the exception: the code after the block runs, ``t.ended`` is true.

    Example::

        with publisher.task(op, total=n) as t:
            for row in rows:
                insert(row)
                t.advance()
                if t.cancelled:
                    raise Cancelled(t.cancelled)
    """

    def __init__(self, reason: Optional[str] = None) -> None:
        super().__init__(reason or "cancelled")
        self.reason = reason


def _clip(text: str, limit: int = 2048) -> str:
    """At most ``limit`` UTF-16 code units, as the wire counts a message."""
    if utf16_length(text) <= limit:
        return text
    out = text[:limit]
    while utf16_length(out) > limit:
        out = out[:-1]
    return out


class _Base:
    def __init__(
        self,
        op: str,
        total: Optional[int],
        cid: Optional[str],
        scope: Optional[str],
        restart: Optional[bool] = None,
        message: Optional[str] = None,
        data: Optional[Dict[str, Any]] = None,
    ) -> None:
        assert_id(op)
        if scope is not None:
            assert_id(scope, "scope")
        if data is not None and not isinstance(data, dict):
            raise ProgressValidationError("data", data, "must be a plain JSON object")
        self.op = op
        self.total = total
        self.cid = cid
        self.scope = scope
        self.message = message
        self.data = data
        self.current = 0
        self.ended = False
        self._cancelled: Optional[str] = None
        # A Celery worker running its job again: the first event says so (a `retry` event).
        self._again = current_attempt() if restart is not False else None
        # The next event starts a new attempt (until one that does has been handed over).
        self._restart = bool(restart) or self._again is not None

    @property
    def cancelled(self) -> Optional[str]:
        """The reason given to ``progress.cancel(op, reason)`` once the operation was
        asked to stop, else None: learned from any publish's answer, or read from Redis
        when the last answer is older than the publisher's ``cancel_check_ms``."""
        if self._cancelled is None and not self.ended and not self._restart:
            self._cancelled = self._check()
        return self._cancelled

    def _check(self) -> Optional[str]:
        reason, _ = self._p._s.known_cancel(self.op)
        return reason

    def _first(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """Mark the event that starts the new attempt of a restarted task."""
        if self._restart:
            self._restart = False
            args["restart"] = True
        return args

    def _after(self, args: Dict[str, Any], result: PublishResult) -> PublishResult:
        # A restarting event that was not written leaves the restart to the next event.
        if args.get("restart") and result.outcome == "failed":
            self._restart = True
        return result

    def _report_args(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """A report's arguments; the restart only goes with a report that will be written."""
        if self._restart:
            try:
                encode_update(self.op, **{k: v for k, v in args.items() if k not in _OPTIONS})
            except ProgressValidationError:
                return args
            return self._first(args)
        return args

    def _common(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        out = dict(kwargs)
        if self.cid is not None:
            out.setdefault("cid", self.cid)
        if self.scope is not None:
            out.setdefault("scope", self.scope)
        if self.data is not None:
            own = out.get("data")
            out["data"] = {**self.data, **own} if isinstance(own, dict) else (self.data if own is None else own)
        return out

    def _progress_args(self, current: Optional[int], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        if current is not None:
            self.current = current
        out = self._common(kwargs)
        if "progress" not in out or current is not None:
            out.setdefault("current", self.current)
            if self.total is not None:
                out.setdefault("total", self.total)
        return out

    def _start_args(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        if self.message is not None:
            kwargs.setdefault("message", self.message)
        args = self._progress_args(0, kwargs)
        args.setdefault("progress", 0)
        if self._again is not None and self._restart:
            made, attempts = self._again
            args.setdefault("type", "retry")
            extra: Dict[str, Any] = {"attemptsMade": made}
            if attempts is not None:
                extra["attempts"] = attempts
            args["data"] = {**extra, **args.get("data", {})}
        return args

    def _seen(self, result: PublishResult) -> PublishResult:
        if result.cancelled is not None and self._cancelled is None:
            self._cancelled = result.cancelled
        return result

    def _end_args(self, status: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        self.ended = True
        out = self._common(kwargs)
        out["status"] = status
        if self.total is not None and status == "completed":
            out.setdefault("current", self.total)
            out.setdefault("total", self.total)
        return out

    def _fail_args(self, error: BaseException) -> Dict[str, Any]:
        data = {"error": {"name": type(error).__name__, "message": _clip(str(error))}}
        return {"message": _clip(describe(error)), "data": data}

    def _retry_args(self, retry: Retrying) -> Dict[str, Any]:
        self.ended = True
        # Waiting for the next try is a deliberate step back to `queued` in this attempt: waived explicitly.
        args = self._common({"type": "retry", "status": "queued", "message": _clip(retry.reason), "data": retry.data()})
        args["allow_backwards"] = True
        return args


class Task(_Base):
    """``with publisher.task(op, total=n) as t:`` a job's lifecycle on one operation.

    On entry: ``running``, progress 0, with the task's ``message`` and ``data``.
    How the block ends decides the last event:

    - normally: ``completed`` (``current`` = ``total`` when counting);
    - ``raise Cancelled(reason)``: ``cancelled``, and the exception is absorbed;
    - a Celery retry (``self.retry()`` inside the block, or an exception the
      task's ``autoretry_for`` will retry): a ``retry`` event with status
      ``queued``, the failure in ``message`` and ``data.attemptsMade``,
      ``data.attempts`` and ``data.retryAt`` (when the next attempt is due);
      the exception propagates and Celery runs the job again, whose task then
      starts a new attempt of the operation;
    - any other exception: ``failed`` with ``KeyError: 'sku'`` (as Python
      prints it) in ``message`` and ``data.error``; the exception propagates.

    ``t.cancelled`` holds the reason once the operation was asked to stop: every
    publish answers it, and reading it asks Redis again (one read) when the last
    answer is older than the publisher's ``cancel_check_ms``.
    """

    def __init__(self, publisher: Any, op: str, **options: Any) -> None:
        super().__init__(op, **options)
        self._p = publisher

    def _check(self) -> Optional[str]:
        reason, fresh = self._p._s.known_cancel(self.op)
        if reason is not None or fresh:
            return reason
        try:
            return self._p.cancel_mark(self.op)
        except Exception:  # noqa: BLE001 - Redis unreachable: the next read tries again
            self._p._s.answers[self.op] = (time.monotonic(), None)
            return None

    def _publish(self, args: Dict[str, Any]) -> PublishResult:
        self._first(args)
        try:
            result = self._p.publish(self.op, **args)
        except ProgressValidationError:
            if args.get("restart"):
                self._restart = True
            raise
        return self._seen(self._after(args, result))

    def start(self, **kwargs: Any) -> PublishResult:
        """Publish ``running`` with progress 0 (done on entering the block)."""
        return self._publish(self._start_args(kwargs))

    def progress(self, current: Optional[int] = None, **kwargs: Any) -> None:
        """Report progress (coalesced): ``t.progress(420)`` or ``t.progress(progress=42.5, message=...)``."""
        if self.ended:
            return
        self._p.report(self.op, **self._report_args(self._progress_args(current, kwargs)))

    def advance(self, by: int = 1, **kwargs: Any) -> None:
        """Count ``by`` more units done and report."""
        self.progress(self.current + by, **kwargs)

    def event(self, type: str, **kwargs: Any) -> PublishResult:  # noqa: A002 - the wire field's name
        """Publish an application event (``file_completed``) on the operation."""
        args = self._common(kwargs)
        args["type"] = type
        return self._publish(args)

    def complete(self, **kwargs: Any) -> PublishResult:
        """Publish ``completed``."""
        self._p.flush()
        return self._publish(self._end_args("completed", kwargs))

    def fail(self, message: Any, **kwargs: Any) -> PublishResult:
        """Publish ``failed``: with an exception, its type and text (``KeyError: 'sku'``);
        with a string, that text."""
        if isinstance(message, BaseException):
            for key, value in self._fail_args(message).items():
                kwargs.setdefault(key, value)
        else:
            kwargs.setdefault("message", _clip(str(message)))
        self._p.flush()
        return self._publish(self._end_args("failed", kwargs))

    def cancel(self, reason: Optional[str] = None, **kwargs: Any) -> PublishResult:
        """Publish ``cancelled`` (the reason as its message; by default the one given to cancel)."""
        text = reason or self._cancelled
        if text is not None:
            kwargs.setdefault("message", _clip(text))
        self._p.flush()
        return self._publish(self._end_args("cancelled", kwargs))

    def __enter__(self) -> "Task":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if self.ended:
            return isinstance(exc, Cancelled)
        if exc is None:
            self.complete()
            return False
        if isinstance(exc, Cancelled):
            self.cancel(exc.reason)
            return True
        retry = retrying(exc)
        if retry is not None:
            self._p.flush()
            self._publish(self._retry_args(retry))
        else:
            self.fail(exc)
        return False


class AsyncTask(_Base):
    """``async with publisher.task(op, total=n) as t:`` the asyncio twin of Task.

    ``t.cancelled`` is kept current by the publishes' answers and, while the
    task runs, by a read every ``cancel_check_ms`` in which nothing was published
    (the loop must give the event loop a turn, as any ``await`` does).
    """

    def __init__(self, publisher: Any, op: str, **options: Any) -> None:
        super().__init__(op, **options)
        self._p = publisher
        self._watch: Optional["asyncio.Task[None]"] = None

    async def _publish(self, args: Dict[str, Any]) -> PublishResult:
        self._first(args)
        try:
            result = await self._p.publish(self.op, **args)
        except ProgressValidationError:
            if args.get("restart"):
                self._restart = True
            raise
        return self._seen(self._after(args, result))

    async def _watch_cancel(self) -> None:
        interval = self._p._s.cancel_check_seconds
        while not self.ended and self._cancelled is None:
            answer = self._p._s.answers.get(self.op)
            age = time.monotonic() - answer[0] if answer is not None else interval
            if answer is not None and answer[1] is not None:
                self._cancelled = answer[1]
                return
            if age < interval or self._restart:
                await asyncio.sleep(max(0.005, interval - age))
                continue
            try:
                self._cancelled = await self._p.cancel_mark(self.op)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis unreachable: try again after the interval
                self._p._s.answers[self.op] = (time.monotonic(), None)

    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def start(self, **kwargs: Any) -> PublishResult:
        """Publish ``running`` with progress 0 (done on entering the block)."""
        result = await self._publish(self._start_args(kwargs))
        if self._watch is None and not self.ended:
            self._watch = asyncio.get_running_loop().create_task(self._watch_cancel())
        return result

    def progress(self, current: Optional[int] = None, **kwargs: Any) -> None:
        """Report progress (coalesced); see Task.progress."""
        if self.ended:
            return
        self._p.report(self.op, **self._report_args(self._progress_args(current, kwargs)))

    def advance(self, by: int = 1, **kwargs: Any) -> None:
        """Count ``by`` more units done and report."""
        self.progress(self.current + by, **kwargs)

    async def event(self, type: str, **kwargs: Any) -> PublishResult:  # noqa: A002
        """Publish an application event on the operation."""
        args = self._common(kwargs)
        args["type"] = type
        return await self._publish(args)

    async def complete(self, **kwargs: Any) -> PublishResult:
        """Publish ``completed``."""
        self._stop_watch()
        await self._p.flush()
        return await self._publish(self._end_args("completed", kwargs))

    async def fail(self, message: Any, **kwargs: Any) -> PublishResult:
        """Publish ``failed``; see Task.fail."""
        self._stop_watch()
        if isinstance(message, BaseException):
            for key, value in self._fail_args(message).items():
                kwargs.setdefault(key, value)
        else:
            kwargs.setdefault("message", _clip(str(message)))
        await self._p.flush()
        return await self._publish(self._end_args("failed", kwargs))

    async def cancel(self, reason: Optional[str] = None, **kwargs: Any) -> PublishResult:
        """Publish ``cancelled``; see Task.cancel."""
        self._stop_watch()
        text = reason or self._cancelled
        if text is not None:
            kwargs.setdefault("message", _clip(text))
        await self._p.flush()
        return await self._publish(self._end_args("cancelled", kwargs))

    async def __aenter__(self) -> "AsyncTask":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._stop_watch()
        if self.ended:
            return isinstance(exc, Cancelled)
        if exc is None:
            await self.complete()
            return False
        if isinstance(exc, Cancelled):
            await self.cancel(exc.reason)
            return True
        retry = retrying(exc)
        if retry is not None:
            await self._p.flush()
            await self._publish(self._retry_args(retry))
        else:
            await self.fail(exc)
        return False
