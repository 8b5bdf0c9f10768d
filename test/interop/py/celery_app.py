"""Celery tasks written as python/README.md shows, run by a real worker in test/interop/celery.test.ts.

Environment: REDIS_URL (progress, and the broker on database 1), PREFIX (key prefix).
Each task's id is its operation id.
"""
import os
import time

import redis
from celery import Celery

from progresscast import Cancelled, ProgressPublisher

url = os.environ["REDIS_URL"]
app = Celery("progresscast_test", broker=url.rstrip("/") + "/1")
app.conf.update(task_serializer="json", accept_content=["json"], worker_hijack_root_logger=False)

publisher = ProgressPublisher(
    redis.Redis.from_url(url), prefix=os.environ["PREFIX"], throttle_seconds=0.05, cancel_check_ms=100
)


@app.task(bind=True, max_retries=3)
def flaky_import(self, rows):
    """Fails its first attempt with KeyError('sku') and retries in 1 s; the second attempt completes."""
    op = self.request.id
    with publisher.task(op, total=rows, message="Importing %d rows" % rows) as t:
        for i in range(rows):
            if self.request.retries == 0 and i == 2:
                try:
                    {}["sku"]
                except KeyError as error:
                    raise self.retry(exc=error, countdown=1)
            t.advance()
    return rows


@app.task(bind=True, autoretry_for=(ConnectionError,), retry_kwargs={"countdown": 1}, max_retries=1)
def always_down(self):
    """Raises ConnectionError every attempt: retried once by autoretry_for, then failed."""
    with publisher.task(self.request.id, total=4) as t:
        t.advance()
        raise ConnectionError("db down")


@app.task(bind=True)
def import_rows(self, rows):
    """The README's loop: runs until cancelled."""
    with publisher.task(self.request.id, total=rows) as t:
        for _ in range(rows):
            time.sleep(0.01)
            t.advance()
            if t.cancelled:
                raise Cancelled(t.cancelled)
    return t.current
