"""The Prometheus metrics /metrics serves (docs/operations.md lists them).

Nothing here counts in this process: every figure belongs to another process (an ingest
process's streams, the workers' arrivals, every web process's sockets, the database's rows), so
one collector reads them when Prometheus scrapes: the published stream states
(`ingest.health`), the shared telemetry (`config.telemetry`), the broker's queue lengths and the
newest intent and decision ids. A figure whose source does not answer is left out of that
scrape (and logged) rather than failing the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Max
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from config import telemetry
from ingest.health import stream_statuses
from ingest.models import ExecutionIntent
from simulator import arrival_scheduler
from simulator.models import Decision

logger = logging.getLogger(__name__)

_STREAM_COUNTERS = {
    "messages": "Messages received on the stream since its ingest process started.",
    "updates": "Book updates applied from the stream since its ingest process started.",
    "reconnects": "Reconnections of the stream since its ingest process started.",
    "resnapshots": "Books asked for whole again after a sequence gap, a crossed book, a book hash that "
    "did not verify or a subscription the venue ended.",
    "hash_checks_stopped": "Connections on which book hashes stopped being checked: a fresh book's hash "
    "did not verify either (Polymarket).",
}


class ArbsimCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        for source in (self._streams, self._rows, self._arrivals, self._websockets, self._queues):
            try:
                yield from source()
            # KeyError, TypeError: a stream status from an ingest process of another version.
            except (redis.RedisError, DatabaseError, KeyError, TypeError) as error:
                logger.warning(
                    "event=metrics_source_failed source=%s error=%s", source.__name__, type(error).__name__
                )

    def _streams(self) -> Iterator[Metric]:
        labels = ["venue", "shard"]
        counters = {
            name: CounterMetricFamily(f"arbsim_stream_{name}", doc, labels=labels)
            for name, doc in _STREAM_COUNTERS.items()
        }
        up = GaugeMetricFamily("arbsim_stream_up", "1 when the stream is live, else 0.", labels=labels)
        lag = GaugeMetricFamily(
            "arbsim_stream_lag_seconds",
            "Receive time minus venue time, median of recent updates.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "arbsim_stream_data_age_seconds", "Time since the stream's last book data.", labels=labels
        )
        instruments = GaugeMetricFamily("arbsim_stream_instruments", "Instruments subscribed.", labels=labels)
        stale = GaugeMetricFamily(
            "arbsim_stream_stale_instruments",
            "Instruments whose book is not whole (resnapshot pending).",
            labels=labels,
        )
        now_ms = time.time_ns() // 1_000_000
        for status in stream_statuses():
            key = [status["venue"], status["shard"]]
            for name, family in counters.items():
                # A counter an older ingest process does not publish yet reads 0, so a rolling
                # deploy keeps every stream's figures in the scrape.
                family.add_metric(key, status.get(name, 0))
            up.add_metric(key, 1 if status["state"] == "live" else 0)
            if status["lag_ms_p50"] is not None:
                lag.add_metric(key, status["lag_ms_p50"] / 1000)
            if status["last_data_ms"] is not None:
                age.add_metric(key, (now_ms - status["last_data_ms"]) / 1000)
            instruments.add_metric(key, status["instruments"])
            stale.add_metric(key, status["stale_instruments"])
        yield from (*counters.values(), up, lag, age, instruments, stale)

    def _rows(self) -> Iterator[Metric]:
        # The newest id, read from the primary key's index: constant time however long the service
        # has run (a count would scan). Ids come from a sequence, so a rolled-back insert counts too:
        # a rate, not an audit.
        for model, name, doc in (
            (ExecutionIntent, "arbsim_intents", "Execution intents written by ingest."),
            (Decision, "arbsim_decisions", "Decisions written by the simulator (decisions/s: its rate)."),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], model.objects.aggregate(newest=Max("id"))["newest"] or 0)
            yield family

    def _arrivals(self) -> Iterator[Metric]:
        buckets, total_s = telemetry.arrival_lateness()
        family = HistogramMetricFamily(
            "arbsim_arrival_lateness_seconds",
            "How late an order's arrival step asks for its book, after the order's arrival time.",
        )
        family.add_metric([], buckets, total_s)
        yield family
        if settings.SIMULATOR_ARRIVALS == "scheduler":
            yield GaugeMetricFamily(
                "arbsim_arrival_steps_waiting",
                "Arrival steps sent to the arrival scheduler and not yet taken by one.",
                value=arrival_scheduler.backlog(),
            )

    def _websockets(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "arbsim_websocket_clients",
            "Open /ws/simulator/ sockets over every web process.",
            value=telemetry.websocket_clients(),
        )

    def _queues(self) -> Iterator[Metric]:
        if not settings.REDIS_URL:
            return
        family = GaugeMetricFamily(
            "arbsim_celery_queue_length",
            "Tasks waiting in the broker's queue (not yet taken by a worker).",
            labels=["queue"],
        )
        # Celery's default queue and every routed one; with the Redis transport a queue is a list.
        queues = sorted({"celery", *(route["queue"] for route in settings.CELERY_TASK_ROUTES.values())})
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                pipe.llen(queue)
            for queue, length in zip(queues, pipe.execute(), strict=True):
                family.add_metric([queue], length)
        finally:
            client.close()
        yield family


registry = CollectorRegistry(auto_describe=False)
registry.register(ArbsimCollector())
