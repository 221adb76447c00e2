"""Peer for publish_throughput.rs: the same messages published with pika (the Python client the
original platform used) with publisher confirms, one confirm at a time. Prints msgs/s, median of 5."""
import json
import os
import statistics
import time

import pika

MESSAGES = 2000
RUNS = 5
prefix = f"benchpy{os.getpid()}."
connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
channel = connection.channel()
channel.confirm_delivery()
exchange, queue = prefix + "bench", prefix + "sink"
channel.exchange_declare(exchange, "topic", durable=True)
channel.queue_declare(queue, durable=True)
channel.queue_bind(queue, exchange, "#")
body = json.dumps({"task_id": "0196f0d2-8a8e-7c3e-9d1a-3f1f6f0a9b11", "priority": 5, "payload": {"prompt": "x" * 200}})
properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
rates = []
for _ in range(RUNS):
    started = time.perf_counter()
    for _ in range(MESSAGES):
        channel.basic_publish(exchange, "task.ready.v1", body, properties, mandatory=True)
    rates.append(MESSAGES / (time.perf_counter() - started))
channel.queue_delete(queue)
channel.exchange_delete(exchange)
connection.close()
print(f"pika_sequential_confirm_msgs_per_s {statistics.median(rates):.0f}")
