"""Per-request metrics are counted in batches: after a flush, a scrape reads exactly what unbatched
prometheus-client metrics would hold."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram

from gate import metrics
from gate.metrics import LATENCY_BUCKETS, Children

OBSERVED = (0.0004, 0.001, 0.0011, 0.04, 0.04, 7.5, 120.0)  # below, on and between bounds, beyond the last
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_by_prefix(registry: CollectorRegistry) -> dict[str, Samples]:
    """Each metric's samples, by the first word of its name ("batched", "direct") and the rest of the name."""
    found: dict[str, Samples] = {"batched": {}, "direct": {}}
    for family in registry.collect():
        prefix = family.name.partition("_")[0]
        for sample in family.samples:
            found[prefix][(sample.name.partition("_")[2], tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_a_flush_adds_exactly_what_direct_updates_would_have() -> None:
    registry = CollectorRegistry()
    batched_histogram = Histogram("batched_seconds", "t", ["action"], buckets=LATENCY_BUCKETS, registry=registry)
    direct_histogram = Histogram("direct_seconds", "t", ["action"], buckets=LATENCY_BUCKETS, registry=registry)
    batched_counter = Counter("batched_requests", "t", ["action"], registry=registry)
    direct_counter = Counter("direct_requests", "t", ["action"], registry=registry)
    observations, counts = Children(batched_histogram), Children(batched_counter)
    for value in OBSERVED:
        for action in ("allow", "deny"):
            observations(action).observe(value)
            counts(action).inc()
            direct_histogram.labels(action).observe(value)
            direct_counter.labels(action).inc()
    assert registry.get_sample_value("batched_requests_total", {"action": "allow"}) == 0  # not added yet
    metrics.flush()
    metrics.flush()  # a second flush adds nothing more
    found = samples_by_prefix(registry)
    assert found["batched"] == found["direct"]
    assert found["batched"][("seconds_count", (("action", "allow"),))] == len(OBSERVED)


async def test_batches_are_added_by_themselves_within_the_flush_interval() -> None:
    registry = CollectorRegistry()
    counter = Counter("later_requests", "t", ["action"], registry=registry)
    Children(counter)("allow").inc(3)
    assert registry.get_sample_value("later_requests_total", {"action": "allow"}) == 0
    await asyncio.sleep(metrics.FLUSH_SECONDS + 0.2)
    assert registry.get_sample_value("later_requests_total", {"action": "allow"}) == 3


def test_without_an_event_loop_updates_are_added_at_once() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("at_once_seconds", "t", buckets=LATENCY_BUCKETS, registry=registry)
    Children(histogram)().observe(0.002)
    assert registry.get_sample_value("at_once_seconds_count") == 1
    assert registry.get_sample_value("at_once_seconds_bucket", {"le": "0.0025"}) == 1
    assert registry.get_sample_value("at_once_seconds_bucket", {"le": "0.001"}) == 0
