"""Tokens for ``progresscast serve``: HS256 JWTs that say what a browser may watch.

The gateway accepts a token in ``Authorization: Bearer <token>`` or in the
``token`` query parameter (an ``EventSource`` cannot set headers). Its claims
are ``ops`` and ``scopes`` (the ids the bearer may watch) and ``exp``. Standard
library only::

    from progresscast.token import sign_token

    token = sign_token(os.environ["PROGRESSCAST_JWT_SECRET"], ops=[job_id], ttl_seconds=3600)
    events_url = f"{GATEWAY}/ops/{job_id}/events?token={token}"
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Iterable, Mapping, Optional

from .wire import ProgressValidationError, assert_id

#: The gateway refuses a secret shorter than this many bytes (RFC 7518 3.2).
MIN_SECRET_BYTES = 32


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _ids(values: Optional[Iterable[str]], field: str) -> list:
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        raise ProgressValidationError(field, values, "must be a list of ids, not one string")
    return [assert_id(v, field) for v in values]


def sign_token(
    secret: str | bytes,
    *,
    ops: Optional[Iterable[str]] = None,
    scopes: Optional[Iterable[str]] = None,
    ttl_seconds: int = 3600,
    claims: Optional[Mapping[str, Any]] = None,
    now: Optional[float] = None,
) -> str:
    """Mint an HS256 token letting its bearer watch ``ops`` and ``scopes`` for ``ttl_seconds``.

    ``claims`` adds claims of your own (``sub``, ``aud``...); ``ops``, ``scopes``,
    ``iat`` and ``exp`` are set here. ``now`` (seconds since the epoch) is for tests.

    A stream opened before ``exp`` runs on; a reconnect after ``exp`` is
    refused with 401, so give a TTL that covers the job, or hand the page a
    fresh token when it asks.

    Raises ``ProgressValidationError`` (a ``ValueError``) for an id that is not
    a valid operation id or scope, for no id at all, for a ``ttl_seconds`` that
    is not a positive integer, or for a secret shorter than 32 bytes.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ProgressValidationError(
            "secret", "<%d bytes>" % len(key), "must be at least %d bytes" % MIN_SECRET_BYTES
        )
    op_ids = _ids(ops, "ops")
    scope_ids = _ids(scopes, "scopes")
    if not op_ids and not scope_ids:
        raise ProgressValidationError("ops", ops, "give at least one operation id (ops) or scope (scopes)")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ProgressValidationError("ttl_seconds", ttl_seconds, "must be a positive integer")
    issued = int(time.time() if now is None else now)
    payload = dict(claims or {})
    payload.update(iat=issued, exp=issued + ttl_seconds)
    if op_ids:
        payload["ops"] = op_ids
    if scope_ids:
        payload["scopes"] = scope_ids
    signing_input = _b64url(_json({"alg": "HS256", "typ": "JWT"})) + "." + _b64url(_json(payload))
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


__all__ = ["MIN_SECRET_BYTES", "sign_token"]
