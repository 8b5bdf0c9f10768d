"""The append script shipped with the package, and its argument layout.

``lua/append.lua`` is generated from the commented source
``src/redis/lua/append.lua`` of the repository; its SHA1 is in ``lua/scripts.json``. One call appends events for one or many
operations atomically (see docs/wire-format.md for KEYS, ARGV and the reply).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, List, Optional, Sequence, Tuple

from .wire import Fields

FLAG_ALLOW_BACKWARDS = 1
FLAG_ALLOW_AFTER_TERMINAL = 2
FLAG_SCOPE = 4
FLAG_TERMINAL = 8
FLAG_RESTART = 16
FLAG_QUEUED = 32


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


APPEND_SCRIPT = _read("append.lua")
LEGACY_APPEND_SCRIPT = _read("append-legacy.lua")
CANCEL_SCRIPT = _read("cancel.lua")
_MANIFEST = json.loads(_read("scripts.json"))
APPEND_SHA = _MANIFEST["append"]["sha1"]
CANCEL_SHA = _MANIFEST["cancel"]["sha1"]


@dataclass(frozen=True)
class Item:
    """One event to append: its keys, fields and ordering flags."""

    events_key: str
    state_key: str
    fields: Fields
    terminal: bool
    scope_key: Optional[str] = None
    allow_backwards: bool = False
    allow_after_terminal: bool = False
    restart: bool = False
    #: ``ts`` was stamped by the publisher (no ``ts`` given): stamped again when sent.
    stamped: bool = False


def encode_append(
    items: Sequence[Item], ttl_seconds: int, max_len: int, terminal_ttl_seconds: int
) -> Tuple[List[str], List[str]]:
    """KEYS and ARGV of one call of the append script."""
    keys: List[str] = []
    args: List[str] = [str(ttl_seconds), str(max_len), str(terminal_ttl_seconds), str(len(items))]
    for item in items:
        keys += [item.events_key, item.state_key, item.scope_key or item.events_key]
        flags = (
            (FLAG_ALLOW_BACKWARDS if item.allow_backwards else 0)
            | (FLAG_ALLOW_AFTER_TERMINAL if item.allow_after_terminal else 0)
            | (FLAG_SCOPE if item.scope_key else 0)
            | (FLAG_TERMINAL if item.terminal else 0)
            | (FLAG_RESTART if item.restart else 0)
            | (FLAG_QUEUED if ("status", "queued") in item.fields else 0)
        )
        progress = next((value for name, value in item.fields if name == "progress"), "")
        args += [str(flags), progress, str(len(item.fields) * 2)]
        for name, value in item.fields:
            args += [name, value]
    return keys, args


def _text(value: Any) -> Optional[str]:
    if value is None or value is False:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


@dataclass(frozen=True)
class PublishResult:
    """What a publish did.

    ``outcome`` is ``published`` (with ``id``, ``seq`` and ``attempt``),
    ``refused`` (``reason`` is ``backwards`` or ``terminal``) or ``failed``
    (``error`` holds the backend failure). ``cancelled`` is the reason given
    to cancel, when the operation was asked to stop. ``attempt`` is the
    operation's attempt the event belongs to: 1, one more at each restart.
    """

    outcome: str
    id: Optional[str] = None
    seq: Optional[int] = None
    cancelled: Optional[str] = None
    reason: Optional[str] = None
    error: Optional[BaseException] = None
    subscribers: Optional[int] = None
    attempt: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.outcome == "published"


def decode_append(reply: Any, count: int) -> List[PublishResult]:
    """Decode the script's reply: one ``[code, id, seq, cancel, attempt]`` row per item
    (a sixth element, the subscriber count, after a legacy publish)."""
    if not isinstance(reply, (list, tuple)) or len(reply) != count:
        raise ValueError("Unexpected reply to the append script: %r" % (reply,))
    out: List[PublishResult] = []
    for row in reply:
        code = _text(row[0])
        seq = int(row[2])
        cancelled = _text(row[3]) if len(row) > 3 else None
        if code == "ok":
            # After code, id, seq, cancel and attempt: only a legacy publish adds it.
            subscribers = int(row[5]) if len(row) > 5 and row[5] is not None else None
            attempt = int(row[4]) if len(row) > 4 and row[4] is not None else 1
            out.append(
                PublishResult(
                    "published",
                    id=_text(row[1]),
                    seq=seq,
                    cancelled=cancelled,
                    subscribers=subscribers,
                    attempt=attempt,
                )
            )
        elif code in ("backwards", "terminal"):
            out.append(PublishResult("refused", seq=seq, cancelled=cancelled, reason=code))
        else:
            raise ValueError("Unexpected code in the append reply: %r" % (code,))
    return out
