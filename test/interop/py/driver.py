"""Scenarios run by test/interop/python.test.ts as real Python processes.

Usage: driver.py <redis-url> <prefix> <scenario> <op> — prints one JSON line.
"""
import asyncio
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import redis
import redis.asyncio

from progresscast import AsyncProgressPublisher, Cancelled, ProgressPublisher, ProgressValidationError

url, prefix, scenario, op = sys.argv[1:5]
TS = datetime(2026, 11, 22, 14, 30, 0, 123000, tzinfo=timezone.utc)


def out(value):
    print(json.dumps(value))


def same_as_typescript(p):
    # The same calls the TypeScript side makes, with fixed timestamps.
    results = [
        p.publish(op, status="queued", ts=TS, cid="req-1"),
        p.publish(op, current=1, total=3, message="Chunked 1 of 3", ts=TS, cid="req-1"),
        p.publish(op, type="file_completed", data={"file": "a.csv", "rows": 10, "ok": True}, ts=TS, cid="req-1"),
        p.publish(op, progress=66.666, current=2, total=3, ts=TS, eta=1.5, cid="req-1"),
        p.publish(op, progress=10, ts=TS),
        p.publish(op, status="completed", message="done", ts=TS, cid="req-1"),
        p.publish(op, progress=100, ts=TS),
    ]
    return [[r.outcome, r.seq, r.reason] for r in results]


if scenario == "same":
    out(same_as_typescript(ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)))

elif scenario == "same-async":

    async def main():
        client = redis.asyncio.Redis.from_url(url)
        p = AsyncProgressPublisher(client, prefix=prefix)
        r = [
            await p.publish(op, status="queued", ts=TS, cid="req-1"),
            await p.publish(op, current=1, total=3, message="Chunked 1 of 3", ts=TS, cid="req-1"),
            await p.publish(
                op, type="file_completed", data={"file": "a.csv", "rows": 10, "ok": True}, ts=TS, cid="req-1"
            ),
            await p.publish(op, progress=66.666, current=2, total=3, ts=TS, eta=1.5, cid="req-1"),
            await p.publish(op, progress=10, ts=TS),
            await p.publish(op, status="completed", message="done", ts=TS, cid="req-1"),
            await p.publish(op, progress=100, ts=TS),
        ]
        await client.aclose() if hasattr(client, "aclose") else await client.close()
        return [[x.outcome, x.seq, x.reason] for x in r]

    out(asyncio.run(main()))

elif scenario == "threads":
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    failures = []

    def worker(name):
        for i in range(300):
            r = p.publish(op, message="%s %d" % (name, i), data={"thread": name, "i": i}, allow_backwards=True)
            if not r.ok:
                failures.append(r.outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out({"failures": failures})

elif scenario == "validation":
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    cases = json.loads(sys.stdin.read())
    fields = []
    for case in cases:
        target = case.pop("op", op)
        if "ts" in case:
            case["ts"] = datetime.fromisoformat(case["ts"]) if isinstance(case["ts"], str) else case["ts"]
        if case.get("data") == "__set__":
            case["data"] = {"s": {1, 2}}
        try:
            p.publish(target, **case)
            fields.append(None)
        except ProgressValidationError as error:
            fields.append(error.field)
    out(fields)

elif scenario == "task-ok":
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix, throttle_seconds=0.05)
    with p.task(op, total=50, cid="celery-1", message="Importing b.csv", data={"source": "upload"}) as t:
        for i in range(50):
            t.advance(message="row %d" % (i + 1))
        t.event("file_completed", data={"file": "b.csv"})
    out({"cancelled": t.cancelled})

elif scenario == "task-fail":
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    try:
        with p.task(op, total=10) as t:
            t.progress(4)
            {}["sku"]
    except KeyError as error:
        out({"raised": repr(error)})

elif scenario == "task-fail-async":

    async def main():
        client = redis.asyncio.Redis.from_url(url)
        p = AsyncProgressPublisher(client, prefix=prefix, throttle_seconds=0.05)
        try:
            async with p.task(op, total=1000) as t:
                for _ in range(300):
                    t.advance()
                raise ValueError("bad row 301")
        except ValueError as error:
            return repr(error)
        finally:
            await client.aclose() if hasattr(client, "aclose") else await client.close()

    out({"raised": asyncio.run(main())})

elif scenario == "cancel-loop":
    # The README's loop. Reports are held (a long throttle), so no publish answers
    # the cancellation: only the task's own check every cancel_check_ms can see it.
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix, throttle_seconds=600, cancel_check_ms=100)
    rows = 0
    with p.task(op, total=3000, message="Importing") as t:
        for _ in range(3000):
            time.sleep(0.01)
            rows += 1
            t.advance()
            if t.cancelled:
                raise Cancelled(t.cancelled)
    out({"cancelled": t.cancelled, "ended": t.ended, "rows": rows})

elif scenario == "cancel-loop-async":

    async def main():
        client = redis.asyncio.Redis.from_url(url)
        p = AsyncProgressPublisher(client, prefix=prefix, throttle_seconds=600, cancel_check_ms=100)
        rows = 0
        async with p.task(op, total=3000, message="Importing") as t:
            for _ in range(3000):
                await asyncio.sleep(0.01)
                rows += 1
                t.advance()
                if t.cancelled:
                    raise Cancelled(t.cancelled)
        await client.aclose() if hasattr(client, "aclose") else await client.close()
        return {"cancelled": t.cancelled, "ended": t.ended, "rows": rows}

    out(asyncio.run(main()))

elif scenario == "task-async":

    async def main():
        client = redis.asyncio.Redis.from_url(url)
        p = AsyncProgressPublisher(client, prefix=prefix, throttle_seconds=0.05)
        async with p.task(op, total=20) as t:
            for _ in range(20):
                t.advance()
                await asyncio.sleep(0)
            await t.event("file_completed", data={"file": "c.csv"})
        await client.aclose() if hasattr(client, "aclose") else await client.close()

    asyncio.run(main())
    out({"ok": True})

elif scenario == "report":
    # 2000 reports inside a short time: coalesced, the last one written.
    client = redis.Redis.from_url(url)
    p = ProgressPublisher(client, prefix=prefix, throttle_seconds=0.2)
    for i in range(1, 2001):
        p.report(op, current=i, total=2000)
    p.flush()
    out({"ok": True})

elif scenario == "cancel":
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    r = p.publish(op, progress=5)
    out({"cancelled": r.cancelled})

elif scenario == "restart":
    # A job retried under the same id: a new attempt, as the TypeScript side publishes it.
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    results = [
        p.publish(op, current=4, total=10, message="Rows", data={"file": "a.csv"}, ts=TS),
        p.publish(op, status="failed", message="disk full", ts=TS),
        p.publish(op, progress=5, ts=TS),
        p.publish(op, progress=5, ts=TS, restart=True),
        p.publish(op, progress=2, ts=TS),
        p.publish(op, progress=50, ts=TS),
        p.publish(op, progress=0, ts=TS, restart=True),
        p.publish(op, status="completed", ts=TS),
    ]
    out([[r.outcome, r.seq, r.reason, r.attempt] for r in results])

elif scenario == "task-restart":
    # The operation ended (failed) before: the task runs the job again as a new attempt.
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix, throttle_seconds=0)
    with p.task(op, total=3, restart=True) as t:
        for _ in range(3):
            t.advance()
    stale = p.task(op, total=1)  # without restart: the ended operation refuses it
    refused = stale.start()

    async def again():
        client = redis.asyncio.Redis.from_url(url)
        ap = AsyncProgressPublisher(client, prefix=prefix, throttle_seconds=0)
        task = ap.task(op, total=2, restart=True)
        task.progress(1)  # the first event, a report, starts the attempt
        await ap.flush()
        r = await task.complete()
        await client.aclose() if hasattr(client, "aclose") else await client.close()
        return r

    done = asyncio.run(again())
    out({"refused": [refused.outcome, refused.reason], "last": [done.outcome, done.attempt]})

elif scenario == "eta":
    # Progress at known times: the same estimate as the TypeScript core's.
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix)
    at = lambda s: TS + timedelta(seconds=s)  # noqa: E731
    results = [
        p.publish(op, progress=10, ts=at(0)),
        p.publish(op, progress=12, ts=at(0.3)),
        p.publish(op, current=1, total=3, ts=at(1.2)),
        p.publish(op, progress=5, ts=at(2.0), allow_backwards=True),
        p.publish(op, progress=50, ts=at(3.5)),
        p.publish(op, progress=60, eta=9, ts=at(3.6)),
        p.publish(op, progress=70, ts=at(40)),
        p.publish(op, status="completed", ts=at(41)),
    ]
    out([r.outcome for r in results])

elif scenario.startswith("legacy:"):
    # The job of test/interop/legacy.test.ts, from Python with legacy mode on.
    p = ProgressPublisher(redis.Redis.from_url(url), prefix=prefix, legacy=scenario.split(":", 1)[1])
    results = [p.publish(op, status="running", progress=0, cid="req-7", message="starting")]
    for i in range(1, 4):
        results.append(p.publish(op, current=i, total=4, message="batch %d" % i, cid="req-7"))
    results.append(p.publish(op, type="file_completed", data={"collection_id": "col-1", "stage": "batch_3"}))
    results.append(p.publish(op, status="completed", current=4, total=4, cid="req-7"))
    out([[r.outcome, r.subscribers] for r in results])

else:
    raise SystemExit("unknown scenario " + scenario)
