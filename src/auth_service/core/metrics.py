"""Prometheus metrics, on a registry owned by the app so each app instance counts alone."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        # Set by /ready, which the kubelet's readiness probe calls every few seconds.
        self.dependency_up = Gauge(
            "auth_service_dependency_up",
            "1 when the last readiness check of the dependency succeeded, else 0.",
            ["dependency"],
            registry=self.registry,
        )
        # Creation time of the key that signs machine tokens (0 with HS256: no rotation).
        self.signing_key_created = Gauge(
            "auth_service_signing_key_created_timestamp_seconds",
            "Unix time the active signing key was created.",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
