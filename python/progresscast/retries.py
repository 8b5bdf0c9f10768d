"""Celery retries as a task sees them, so a retried job shows the browser a retry, not a failure.

Celery is optional: nothing here imports it. A Celery ``Retry`` can only exist
once Celery has loaded ``celery.exceptions``, and a Celery task can only be
running once it has loaded ``celery._state``; both are looked up in
``sys.modules``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class Retrying:
    """A job attempt that failed and will run again."""

    #: Why the attempt failed (``KeyError: 'sku'``).
    reason: str
    #: When the next attempt is due, when Celery says (a countdown, an eta, or
    #: the task's default delay; not when a backoff adds random jitter).
    due: Optional[datetime]
    #: Attempts made, this one included.
    attempts_made: Optional[int]
    #: Attempts in all (``max_retries + 1``); None when unlimited.
    attempts: Optional[int]

    def data(self) -> Dict[str, Any]:
        """The ``data`` of the ``retry`` event: ``attemptsMade``, ``attempts``, ``retryAt``."""
        from .wire import format_ts

        out: Dict[str, Any] = {}
        if self.attempts_made is not None:
            out["attemptsMade"] = self.attempts_made
        if self.attempts is not None:
            out["attempts"] = self.attempts
        if self.due is not None:
            out["retryAt"] = format_ts(self.due)
        return out


def describe(error: BaseException) -> str:
    """An exception as the last line of Python's traceback prints it: ``KeyError: 'sku'``."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = kind.__module__ + "." + name
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        text = ""
    return "%s: %s" % (name, text) if text else name


def _running_task() -> Any:
    """The Celery task a worker is running in this thread, or None (not under Celery,
    or a task function called directly)."""
    state = sys.modules.get("celery._state")
    if state is None:
        return None
    try:
        task = state.get_current_task()
        request = getattr(task, "request", None) if task is not None else None
    except Exception:  # noqa: BLE001 - an unexpected Celery version: treat as not under Celery
        return None
    if request is None or getattr(request, "id", None) is None or getattr(request, "called_directly", False):
        return None
    return task


def _retries(task: Any) -> int:
    value = getattr(task.request, "retries", 0)
    return value if isinstance(value, int) else 0


def _max_retries(task: Any, override: Any = None) -> Optional[int]:
    value = override if override is not None else getattr(task, "override_max_retries", task.max_retries)
    return value if isinstance(value, int) else None


def current_attempt() -> Optional[Tuple[int, Optional[int]]]:
    """``(attempts made before, attempts in all)`` when a Celery worker is running a
    retry of its task (``request.retries > 0``); None otherwise."""
    task = _running_task()
    if task is None:
        return None
    retries = _retries(task)
    if retries <= 0:
        return None
    limit = _max_retries(task)
    return retries, None if limit is None else limit + 1


def _due(when: Any, now: datetime) -> Optional[datetime]:
    if isinstance(when, datetime):
        return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return now + timedelta(seconds=max(0.0, float(when)))
    return None


def retrying(error: BaseException) -> Optional[Retrying]:
    """What ``error``, raised inside a task, means for Celery: a retry (``self.retry()``
    raised ``celery.exceptions.Retry``, or the task's ``autoretry_for`` matches and
    retries remain), or None (a failure, or not under Celery)."""
    now = datetime.now(timezone.utc)
    task = _running_task()
    exceptions = sys.modules.get("celery.exceptions")
    retry_class = getattr(exceptions, "Retry", None)
    if isinstance(retry_class, type) and isinstance(error, retry_class):
        return _from_retry(error, task, now)
    if task is None or exceptions is None:
        return None
    autoretry_for = tuple(getattr(task, "autoretry_for", None) or ())
    ignore = getattr(exceptions, "Ignore", None)
    if not autoretry_for or not isinstance(error, autoretry_for):
        return None
    if isinstance(ignore, type) and isinstance(error, ignore):
        return None
    # What Celery's autoretry does next: task.retry(exc=error, **retry_kwargs).
    options = dict(getattr(task, "retry_kwargs", None) or {})
    retries = _retries(task)
    limit = _max_retries(task, options.get("max_retries"))
    if limit is not None and retries >= limit:
        return None
    due: Optional[datetime]
    if getattr(task, "retry_backoff", False):
        if getattr(task, "retry_jitter", True):
            due = None  # a random delay Celery has not drawn yet
        else:
            factor = int(getattr(task, "retry_backoff", 1))
            delay = min(int(getattr(task, "retry_backoff_max", 600)), factor * 2**retries)
            due = _due(delay, now)
    elif options.get("eta") is not None:
        due = _due(options["eta"], now)
    elif options.get("countdown") is not None:
        due = _due(options["countdown"], now)
    else:
        due = _due(getattr(task, "default_retry_delay", None), now)
    return Retrying(describe(error), due, retries + 1, None if limit is None else limit + 1)


def _from_retry(error: Any, task: Any, now: datetime) -> Retrying:
    cause = getattr(error, "exc", None)
    if not isinstance(cause, BaseException):
        # ``self.retry()`` inside ``except``: the exception being handled is the cause.
        context = error.__context__
        cause = context if isinstance(context, Exception) else None
    if cause is not None:
        reason = describe(cause)
    else:
        reason = getattr(error, "message", None) or getattr(error, "excs", None) or "The attempt failed; retrying"
    retries = _retries(task) if task is not None else None
    limit = _max_retries(task) if task is not None else None
    return Retrying(
        str(reason),
        _due(getattr(error, "when", None), now),
        None if retries is None else retries + 1,
        None if limit is None else limit + 1,
    )
