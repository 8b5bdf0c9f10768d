"""progresscast for Python: publish job progress in progresscast's wire format.

Any progresscast server (SSE, WebSocket, ``watch``) delivers these events
exactly like a TypeScript worker's. See docs/wire-format.md.
"""
from .aio import AsyncProgressPublisher
from .publisher import ProgressPublisher
from .script import APPEND_SCRIPT, APPEND_SHA, CANCEL_SCRIPT, CANCEL_SHA, PublishResult
from .task import AsyncTask, Cancelled, Task
from .token import sign_token
from .wire import (
    MAX_DATA_BYTES,
    MAX_MESSAGE_LENGTH,
    STATUSES,
    TERMINAL_STATUSES,
    ProgressError,
    ProgressValidationError,
    encode_update,
)

__version__ = "0.1.0"

__all__ = [
    "APPEND_SCRIPT",
    "APPEND_SHA",
    "CANCEL_SCRIPT",
    "CANCEL_SHA",
    "MAX_DATA_BYTES",
    "MAX_MESSAGE_LENGTH",
    "STATUSES",
    "TERMINAL_STATUSES",
    "AsyncProgressPublisher",
    "AsyncTask",
    "Cancelled",
    "ProgressError",
    "ProgressPublisher",
    "ProgressValidationError",
    "PublishResult",
    "Task",
    "encode_update",
    "sign_token",
]
