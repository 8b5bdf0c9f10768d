"""The FastAPI app: starts Celery jobs and hands the browser a token to watch them.

Run: ``uvicorn app:app --port 8000`` (next to this file). The page it serves
follows a job straight from ``progresscast serve`` (no Node code of yours):
the app mints a token naming the job, the gateway checks it.
"""
import os
import uuid
from pathlib import Path

import redis
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from progresscast import ProgressPublisher, sign_token

from tasks import process_rows

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
#: Shared with ``progresscast serve --jwt-secret`` (or its PROGRESSCAST_JWT_SECRET).
JWT_SECRET = os.environ["PROGRESSCAST_JWT_SECRET"]
#: Where browsers reach the gateway.
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")

app = FastAPI()
publisher = ProgressPublisher(redis.Redis.from_url(REDIS_URL))
PAGE = (Path(__file__).parent / "index.html").read_text()


class JobRequest(BaseModel):
    rows: int = Field(20, ge=1, le=10_000)


@app.post("/jobs")
def start_job(request: JobRequest) -> dict:
    """Queue a job; answer with its id and the URLs (token included) the page follows it at."""
    op = "job-" + uuid.uuid4().hex
    # The page shows "queued" at once, before a worker picks the job up.
    publisher.publish(op, status="queued", message="Waiting for a worker")
    process_rows.delay(op, request.rows)
    # Whoever holds this token may watch this job, and nothing else, for an hour.
    token = sign_token(JWT_SECRET, ops=[op], ttl_seconds=3600)
    return {
        "op": op,
        "token": token,
        "events": f"{GATEWAY_URL}/ops/{op}/events?token={token}",
        "ws": GATEWAY_URL.replace("http", "ws", 1) + f"/ws?token={token}",
    }


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
