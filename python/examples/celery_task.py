"""A Celery task reporting progress through progresscast.

Run a worker with ``celery -A celery_task worker``; a progresscast server
(``progress.sse(request, op)``) streams the progress to browsers. Celery is
imported lazily so this module imports without it (for reading and tests).
"""
import csv
import importlib.util
import os

import redis

from progresscast import Cancelled, ProgressPublisher

publisher = ProgressPublisher(redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0")))


def import_csv(operation_id: str, path: str, correlation_id: str = "") -> int:
    """Import a CSV file, reporting rows done; ends ``completed``, ``cancelled`` when a
    server cancels the operation, or ``failed`` on an exception (``KeyError: 'sku'``).
    Run by a Celery worker retrying the job, it starts a new attempt of the operation, and
    a ``self.retry()`` inside the block shows the browser a retry instead of a failure."""
    with open(path, newline="") as f:
        total = sum(1 for _ in f) - 1
    name = os.path.basename(path)
    with publisher.task(
        operation_id,
        total=max(total, 0),
        cid=correlation_id or None,
        message="Importing %s" % name,
        data={"file": name},
    ) as t:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                store(row)
                t.advance(message="Imported %d of %d rows" % (t.current + 1, total))
                if t.cancelled:  # seen within cancel_check_ms of progress.cancel(op)
                    raise Cancelled(t.cancelled)
        t.event("file_completed", data={"rows": t.current})
    return t.current


def store(row: dict) -> None:
    """Where the application writes a row."""


def make_app():
    """The Celery app with the task registered (imports Celery only when called)."""
    from celery import Celery

    app = Celery("progress_example", broker=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    app.task(name="import_csv")(import_csv)
    return app


# `celery -A celery_task worker` finds `app`; without Celery installed the module still imports.
app = make_app() if importlib.util.find_spec("celery") else None
