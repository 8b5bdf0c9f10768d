"""The Celery worker: a job that reports its progress through progresscast.

Run: ``celery -A tasks worker --pool=solo -l info`` (next to this file).
The browser never talks to this process: the progress goes to Redis, and
``progresscast serve`` hands it to the page.
"""
import os
import time

import redis
from celery import Celery

from progresscast import ProgressPublisher

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
#: Seconds of "work" per row: slow enough to watch the bar move.
STEP_SECONDS = float(os.environ.get("STEP_SECONDS", "0.2"))

app = Celery("progress_example", broker=REDIS_URL)
app.conf.task_ignore_result = True
publisher = ProgressPublisher(redis.Redis.from_url(REDIS_URL))


@app.task(name="process_rows")
def process_rows(op: str, rows: int) -> int:
    """Process ``rows`` rows of operation ``op``: ``running`` ... ``completed`` (``failed`` on an exception)."""
    with publisher.task(op, total=rows) as t:
        for _ in range(rows):
            time.sleep(STEP_SECONDS)  # the real work goes here
            t.advance(message="Processed %d of %d rows" % (t.current + 1, rows))
        t.event("report_ready", data={"rows": rows})
    return rows
