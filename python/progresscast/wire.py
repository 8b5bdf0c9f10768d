"""Wire format v1: validation and encoding, the same rules as the TypeScript core.

Every field of a stream entry is a string. ``encode_update`` checks an update
and returns the fields in wire order (``v``, ``op``, ``seq`` first, ``attempt``
last); the append script assigns ``seq`` and ``attempt``.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional, Tuple

WIRE_VERSION = "1"
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
MAX_MESSAGE_LENGTH = 2048
MAX_DATA_BYTES = 16384
MAX_ID_LENGTH = 128
MAX_SAFE_INTEGER = 2**53 - 1

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")
TYPE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
CID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

Fields = List[Tuple[str, str]]

_HINTS = {
    "progress": "a finite number from 0 to 100",
    "current": "a non-negative integer",
    "total": "a non-negative integer",
    "message": "a string of at most %d characters" % MAX_MESSAGE_LENGTH,
    "status": "one of " + ", ".join(STATUSES),
    "type": "letters, digits and _ . : - (starting with a letter), at most 64",
    "cid": "printable ASCII without spaces, 1 to 128 characters",
    "data": "a plain JSON object",
    "eta": "a non-negative finite number of seconds",
    "ts": "a timezone-aware datetime",
}


class ProgressError(Exception):
    """Base class of every error progresscast raises."""


class ProgressValidationError(ProgressError, ValueError):
    """Bad input: ``field`` names the offending field, ``value`` holds it."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__("Invalid %s: %s (got %s)" % (field, message, _describe(value)))
        self.field = field
        self.value = value


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and 0 <= value <= MAX_SAFE_INTEGER


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript counts ``string.length``."""
    return len(text.encode("utf-16-le")) // 2


def assert_id(value: Any, field: str = "op") -> str:
    """Raise ProgressValidationError unless ``value`` is a safe operation id or scope."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ProgressValidationError(
            field,
            value,
            "must be 1 to 128 letters, digits or _ . : @ / - and start with a letter or digit "
            "(no braces, spaces or control characters)",
        )
    return value


def format_decimal(value: float) -> str:
    """At most 2 decimals, no exponent, no -0, half rounded up: the wire's one way."""
    rounded = math.floor(value * 100 + 0.5) / 100
    if rounded == 0:
        return "0"
    if rounded == int(rounded):
        return str(int(rounded))
    return repr(rounded)


def format_ts(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-11-22T14:30:00.000Z``."""
    utc = ts.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (utc.microsecond // 1000)


def _check(field: str, value: Any) -> None:
    ok: bool
    if field == "progress":
        ok = _is_number(value) and math.isfinite(value) and 0 <= value <= 100
    elif field in ("current", "total"):
        ok = _is_int(value)
    elif field == "message":
        ok = isinstance(value, str) and utf16_length(value) <= MAX_MESSAGE_LENGTH
    elif field == "status":
        ok = isinstance(value, str) and value in STATUSES
    elif field == "type":
        ok = isinstance(value, str) and TYPE_PATTERN.fullmatch(value) is not None
    elif field == "cid":
        ok = isinstance(value, str) and CID_PATTERN.fullmatch(value) is not None
    elif field == "data":
        ok = isinstance(value, Mapping)
    elif field == "eta":
        ok = _is_number(value) and math.isfinite(value) and value >= 0
    elif field == "ts":
        ok = isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None
    else:
        ok = True
    if not ok:
        raise ProgressValidationError(field, value, "must be " + _HINTS[field])


def encode_update(
    op: str,
    progress: Optional[float] = None,
    current: Optional[int] = None,
    total: Optional[int] = None,
    message: Optional[str] = None,
    status: Optional[str] = None,
    type: Optional[str] = None,  # noqa: A002 - the wire field's name
    cid: Optional[str] = None,
    data: Optional[Mapping[str, Any]] = None,
    eta: Optional[float] = None,
    ts: Optional[datetime] = None,
) -> Fields:
    """Validate an update and return its wire fields in order.

    ``seq`` (``"0"``) and ``attempt`` (``"1"``, the last field) are
    placeholders: the append script assigns them.
    Raises ProgressValidationError naming the first bad field.
    """
    assert_id(op)
    values = (
        ("progress", progress),
        ("current", current),
        ("total", total),
        ("message", message),
        ("status", status),
        ("type", type),
        ("cid", cid),
        ("data", data),
        ("eta", eta),
        ("ts", ts),
    )
    for field, value in values:
        if value is not None:
            _check(field, value)
    if current is not None and total is not None and current > total:
        raise ProgressValidationError("current", current, "must not exceed total (%s)" % total)
    if progress is None and current is not None and total is not None:
        progress = 100 if total == 0 else current / total * 100
    status = status or "running"
    if progress is None and status == "completed":
        progress = 100
    fields: Fields = [("v", WIRE_VERSION), ("op", op), ("seq", "0"), ("type", type or "progress"), ("status", status)]
    if progress is not None:
        fields.append(("progress", format_decimal(progress)))
    if current is not None:
        fields.append(("current", str(int(current))))
    if total is not None:
        fields.append(("total", str(int(total))))
    if message is not None:
        fields.append(("message", message))
    if cid is not None:
        fields.append(("cid", cid))
    fields.append(("ts", format_ts(ts if ts is not None else datetime.now(timezone.utc))))
    if data is not None:
        try:
            text = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ProgressValidationError("data", data, "must be serializable to JSON (%s)" % error) from None
        if len(text.encode("utf-8")) > MAX_DATA_BYTES:
            raise ProgressValidationError("data", data, "must be at most %d bytes of JSON" % MAX_DATA_BYTES)
        fields.append(("data", text))
    if eta is not None:
        fields.append(("eta", format_decimal(eta)))
    elif status in TERMINAL_STATUSES:
        fields.append(("eta", "0"))
    # Always last: the append script writes the operation's attempt into it.
    fields.append(("attempt", "1"))
    return fields
