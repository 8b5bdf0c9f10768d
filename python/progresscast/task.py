"""Task contexts: a job's lifecycle on one operation (sync and asyncio)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from .script import PublishResult
from .wire import ProgressValidationError, assert_id, encode_update

_OPTIONS = ("scope", "allow_backwards", "allow_after_terminal", "restart")


class _Base:
    def __init__(
        self, op: str, total: Optional[int], cid: Optional[str], scope: Optional[str], restart: bool = False
    ) -> None:
        assert_id(op)
        if scope is not None:
            assert_id(scope, "scope")
        self.op = op
        self.total = total
        self.cid = cid
        self.scope = scope
        self.current = 0
        self.cancelled: Optional[str] = None
        self.ended = False
        # The next event starts a new attempt (until one that does has been handed over).
        self._restart = bool(restart)

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

    def _seen(self, result: PublishResult) -> PublishResult:
        if result.cancelled is not None:
            self.cancelled = result.cancelled
        return result

    def _end_args(self, status: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        self.ended = True
        out = self._common(kwargs)
        out["status"] = status
        if self.total is not None and status == "completed":
            out.setdefault("current", self.total)
            out.setdefault("total", self.total)
        return out


class Task(_Base):
    """``with publisher.task(op, total=n) as t:`` — see ProgressPublisher.task.

    ``t.cancelled`` holds the reason once the operation was asked to stop
    (learned from any publish's answer). With ``restart=True`` the task's
    first event starts a new attempt of the operation.
    """

    def __init__(self, publisher: Any, op: str, **options: Any) -> None:
        super().__init__(op, **options)
        self._p = publisher

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
        args = self._progress_args(0, kwargs)
        args.setdefault("progress", 0)
        return self._publish(args)

    def progress(self, current: Optional[int] = None, **kwargs: Any) -> None:
        """Report progress (coalesced): ``t.progress(420)`` or ``t.progress(progress=42.5, message=...)``."""
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

    def fail(self, message: str, **kwargs: Any) -> PublishResult:
        """Publish ``failed`` with a message."""
        kwargs.setdefault("message", message[:2048])
        return self._publish(self._end_args("failed", kwargs))

    def __enter__(self) -> "Task":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if not self.ended:
            if exc is None:
                self.complete()
            else:
                self.fail(str(exc) or exc_type.__name__)
        return False


class AsyncTask(_Base):
    """``async with publisher.task(op, total=n) as t:`` — the asyncio twin of Task."""

    def __init__(self, publisher: Any, op: str, **options: Any) -> None:
        super().__init__(op, **options)
        self._p = publisher

    async def _publish(self, args: Dict[str, Any]) -> PublishResult:
        self._first(args)
        try:
            result = await self._p.publish(self.op, **args)
        except ProgressValidationError:
            if args.get("restart"):
                self._restart = True
            raise
        return self._seen(self._after(args, result))

    async def start(self, **kwargs: Any) -> PublishResult:
        args = self._progress_args(0, kwargs)
        args.setdefault("progress", 0)
        return await self._publish(args)

    def progress(self, current: Optional[int] = None, **kwargs: Any) -> None:
        self._p.report(self.op, **self._report_args(self._progress_args(current, kwargs)))

    def advance(self, by: int = 1, **kwargs: Any) -> None:
        self.progress(self.current + by, **kwargs)

    async def event(self, type: str, **kwargs: Any) -> PublishResult:  # noqa: A002
        args = self._common(kwargs)
        args["type"] = type
        return await self._publish(args)

    async def complete(self, **kwargs: Any) -> PublishResult:
        await self._p.flush()
        return await self._publish(self._end_args("completed", kwargs))

    async def fail(self, message: str, **kwargs: Any) -> PublishResult:
        kwargs.setdefault("message", message[:2048])
        return await self._publish(self._end_args("failed", kwargs))

    async def __aenter__(self) -> "AsyncTask":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if not self.ended:
            if exc is None:
                await self.complete()
            else:
                await self.fail(str(exc) or exc_type.__name__)
        return False
