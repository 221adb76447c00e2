"""The Celery peer of `make bench-pipeline`: N no-op tasks through Celery on the same RabbitMQ,
with the durable settings our pipeline uses (persistent messages, publisher confirms, acks_late =
ack after the task ran, prefetch bounded), and results in Redis so submit -> succeeded is measurable.

Two phases, the same as the Rust side:
  burst:  submit N tasks as fast as one client can, wait for all; tasks/s = N / (last done - first submit)
  paced:  submit at RATE tasks/s for DURATION s; p50/p99 of submit -> done at that load

Latency of a task = the worker's completion time (result_extended date_done, same clock) minus the
client's time just before apply_async. Prints one JSON line per phase.

Usage: celery_bench.py worker|drive  (the driver starts and stops its own worker processes)
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

from celery import Celery

BROKER = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench.celery.noop")

app = Celery("pipeline_bench", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_delivery_mode="persistent",
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "16")),
    broker_transport_options={"confirm_publish": True},
    result_extended=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(payload):
    return payload


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def wait_all(results, submitted_at, timeout_s):
    latencies = []
    deadline = time.time() + timeout_s
    last_done = 0.0
    for result, sent in zip(results, submitted_at):
        result.get(timeout=max(1.0, deadline - time.time()), propagate=True)
        done = result.date_done.timestamp()
        last_done = max(last_done, done)
        latencies.append((done - sent) * 1000.0)
    return latencies, last_done


def submit_all(indices, schedule=None):
    """Submits from SUBMITTERS threads (the same client concurrency as the Rust side); returns
    (results, submit times) in index order. With a schedule, task i is not sent before schedule(i)."""
    submitters = int(os.environ.get("BENCH_SUBMITTERS", "16"))
    results = [None] * len(indices)
    submitted_at = [0.0] * len(indices)

    def work(worker_index):
        for position in range(worker_index, len(indices), submitters):
            if schedule is not None:
                pause = schedule(position) - time.time()
                if pause > 0:
                    time.sleep(pause)
            submitted_at[position] = time.time()
            results[position] = noop.apply_async(args=[{"n": indices[position]}])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, submitted_at


def burst(count):
    started = time.time()
    results, submitted_at = submit_all(list(range(count)))
    latencies, last_done = wait_all(results, submitted_at, 600)
    elapsed = last_done - started
    return {"phase": "burst", "system": "celery", "tasks": count, "seconds": elapsed,
            "tasks_per_s": count / elapsed, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99)}


def paced(rate, duration_s):
    count = int(rate * duration_s)
    start = time.time()
    results, submitted_at = submit_all(list(range(count)), lambda index: start + index / rate)
    achieved = count / (time.time() - start)
    latencies, _ = wait_all(results, submitted_at, 600)
    return {"phase": "paced", "system": "celery", "tasks": count, "target_rate": rate,
            "achieved_rate": achieved, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99)}


def drive():
    count = int(os.environ.get("BENCH_TASKS", "5000"))
    rate = float(os.environ.get("BENCH_RATE", "500"))
    duration_s = float(os.environ.get("BENCH_PACED_S", "5"))
    concurrency = os.environ.get("BENCH_CELERY_CONCURRENCY", "2")
    app.control.purge()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--loglevel=WARNING",
         "--pool=prefork", f"--concurrency={concurrency}", "-Q", QUEUE, "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-n", f"bench-{uuid.uuid4().hex[:8]}@%h"],
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    try:
        # Warm-up: the worker is ready once a task round-trips.
        noop.apply_async(args=[{}]).get(timeout=60)
        print(json.dumps(burst(count)), flush=True)
        print(json.dumps(paced(rate, duration_s)), flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


if __name__ == "__main__":
    drive()
