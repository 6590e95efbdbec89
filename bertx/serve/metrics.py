"""The server's Prometheus metrics, in a registry of its own (two servers in one process do not mix)."""

from __future__ import annotations

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        self.registry = CollectorRegistry()
        self.content_type = CONTENT_TYPE_LATEST
        self.requests = Counter("bertx_requests", "Prediction requests by model and HTTP status.", ["model", "status"], registry=self.registry)
        self.latency = Histogram("bertx_request_seconds", "Prediction request latency.", ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batches = Histogram(
            "bertx_batch_size", "Inputs per model call (after micro-batching).", ["model"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.depth = Gauge("bertx_queue_depth", "Inputs waiting for the model.", ["model"], registry=self.registry)

    def request(self, model: str, status: int, seconds: float) -> None:
        self.requests.labels(model, str(status)).inc()
        if status == 200:
            self.latency.labels(model).observe(seconds)

    def batch(self, model: str, size: int) -> None:
        self.batches.labels(model).observe(size)

    def queue(self, model: str, depth: int) -> None:
        self.depth.labels(model).set(depth)

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")
