"""Legacy mode: every event also written the way an older layout's readers expect it.

Mirrors ``src/core/compat/legacy.ts``: the writes run inside the same atomic script
call as the native event (``lua/append-legacy.lua``), only when it is accepted.
Layouts: ``chunking``, ``importProgress``, ``operations`` (see docs/migrating.md).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .wire import Fields, ProgressValidationError

FROM_SNAPSHOT_INT = "\x01p"
FROM_SNAPSHOT = "\x01P"
LAYOUTS = ("chunking", "importProgress", "operations")
NATIVE = ("queued", "running", "completed", "failed", "cancelled")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

STATUS_DEFAULTS = {
    "chunking": {"queued": "pending", "running": "processing", "completed": "completed", "failed": "failed",
                 "cancelled": "cancelled"},
    "importProgress": {"queued": "queued", "running": "importing", "completed": "done", "failed": "failed",
                       "cancelled": "cancelled"},
    "operations": {"queued": "pending", "running": "processing", "completed": "completed", "failed": "failed",
                   "cancelled": "cancelled"},
}


class Legacy:
    """Parsed legacy options: ``layout``, ``statuses`` (native -> old name), ``namespace``."""

    def __init__(
        self,
        layout: str,
        statuses: Optional[Mapping[str, str]] = None,
        namespace: str = "import_progress",
    ) -> None:
        if layout not in LAYOUTS:
            raise ProgressValidationError("legacy.layout", layout, "must be one of " + ", ".join(LAYOUTS))
        merged = dict(STATUS_DEFAULTS[layout])
        for native, old in (statuses or {}).items():
            if native not in NATIVE or not isinstance(old, str) or not _NAME.fullmatch(old):
                raise ProgressValidationError(
                    "legacy.statuses.%s" % native,
                    old,
                    "must map one of %s to 1 to 64 of A-Z a-z 0-9 _ . : -" % ", ".join(NATIVE),
                )
            merged[native] = old
        if not isinstance(namespace, str) or not _NAME.fullmatch(namespace):
            raise ProgressValidationError("legacy.namespace", namespace, "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
        self.layout = layout
        self.statuses = merged
        self.namespace = namespace

    @classmethod
    def parse(cls, value: Union[str, Mapping[str, Any], "Legacy"]) -> "Legacy":
        if isinstance(value, Legacy):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            return cls(**dict(value))
        raise ProgressValidationError("legacy.layout", value, "must be one of " + ", ".join(LAYOUTS))

    def keys(self, op: str) -> List[str]:
        if self.layout == "chunking":
            return ["stream:chunking:%s" % op, "chunking:progress:%s" % op]
        if self.layout == "importProgress":
            return ["%s:hash:%s" % (self.namespace, op), "%s:channel:%s" % (self.namespace, op)]
        return ["operations:%s" % op]

    def writes(self, fields: Fields, state_key: str) -> List[Tuple[str, Any]]:
        """The old writes of one event: ("hash", key, fields) | ("stream", key, fields, state) | ("publish", channel, message)."""
        f = dict(fields)
        op = f.get("op", "")
        native = f.get("status", "running")
        status = self.statuses.get(native, native)
        data: Optional[Dict[str, Any]] = json.loads(f["data"]) if "data" in f else None
        if self.layout == "chunking":
            entry: Fields = [
                ("operation_id", op),
                ("correlation_id", f.get("cid", "")),
                ("type", f.get("type", "progress")),
                ("status", status),
                ("progress", f.get("progress", FROM_SNAPSHOT)),
                ("message", f.get("message", "")),
                ("timestamp", f.get("ts", "")),
            ]
            for name in ("current", "total"):
                if name in f:
                    entry.append((name, f[name]))
            if "data" in f:
                entry.append(("metadata", f["data"]))
            stream, progress = self.keys(op)
            return [("stream", stream, entry, state_key), ("stream", progress, entry, state_key)]
        if self.layout == "importProgress":
            payload: Dict[str, Any] = {"status": status}
            if f.get("type", "progress") != "progress":
                payload["event"] = f["type"]
            if "progress" in f:
                payload["progress"] = _number(f["progress"])
            if "current" in f:
                payload["processed_rows"] = _number(f["current"])
            if "total" in f:
                payload["total_rows"] = _number(f["total"])
            if "message" in f:
                payload["error_message" if native == "failed" else "message"] = f["message"]
            if "cid" in f:
                payload["correlation_id"] = f["cid"]
            for k, v in (data or {}).items():
                payload.setdefault(k, v)
            payload["updated_at"] = _python_iso(f.get("ts", ""))
            hash_fields = [(k, _dumps(v)) for k, v in payload.items()]
            hash_key, channel = self.keys(op)
            return [("hash", hash_key, hash_fields), ("publish", channel, _dumps(payload))]
        if native == "completed":
            kind = "OPERATION_COMPLETED"
        elif native in ("running", "queued"):
            kind = "OPERATION_PROGRESS"
        else:
            kind = "OPERATION_FAILED"
        progress = f.get("progress")
        entry = [
            ("type", kind),
            ("operation_id", op),
            ("status", status),
            ("progress", FROM_SNAPSHOT_INT if progress is None else str(int(float(progress) + 0.5))),
            ("message", f.get("message", "")),
        ]
        collection = (data or {}).get("collection_id")
        if isinstance(collection, (str, int)) and not isinstance(collection, bool):
            entry.append(("collection_id", str(collection)))
        if f.get("type", "progress") != "progress":
            entry.append(("event", f["type"]))
        if "data" in f:
            entry.append(("metadata", f["data"]))
        return [("stream", self.keys(op)[0], entry, state_key)]


def _number(text: str) -> Union[int, float]:
    value = float(text)
    return int(value) if value.is_integer() else value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _python_iso(ts: str) -> str:
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d{3})Z", ts)
    return "%s.%s000+00:00" % (m.group(1), m.group(2)) if m else ts


def encode_section(
    keys: List[str], writes_per_item: Sequence[Sequence[Tuple[str, Any]]], ttl_seconds: int, max_len: int
) -> List[str]:
    """The legacy arguments appended after the main ones (``keys`` grows by the old keys)."""
    section: List[str] = []

    def key_index(key: str) -> str:
        keys.append(key)
        return str(len(keys))

    for writes in writes_per_item:
        section.append(str(len(writes)))
        for w in writes:
            if w[0] == "hash":
                args = [x for pair in w[2] for x in pair]
                section += ["H", key_index(w[1]), str(ttl_seconds), str(len(args))] + args
            elif w[0] == "stream":
                args = [key_index(w[3]), str(ttl_seconds)] + [x for pair in w[2] for x in pair]
                section += ["X", key_index(w[1]), str(max_len), str(len(args))] + args
            else:
                section += ["P", w[1], "0", "1", w[2]]
    section.append(str(len(section) + 1))
    return section
