"""Every Prometheus metric gate exports, defined in one place. Labels stay low-cardinality: never IPs or paths."""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from prometheus_client.registry import REGISTRY

import gate
from gate.later import FlushLater

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the output and no dashboard reads them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

requests_total = Counter(
    "gate_requests_total",
    "Requests decided, by the action taken, the rule that decided and the client's agent class.",
    ["action", "rule", "agent_class"],
)
agent_requests_total = Counter(
    "gate_agent_requests_total",
    "Requests from named agents (the agent lists: crawlers, assistants, tools), by agent, its class and the action "
    "taken: who is scraping and what they got.",
    ["agent", "agent_class", "action"],
)
request_duration = Histogram(
    "gate_request_duration_seconds",
    "Time from receiving a request to the end of gate's response, by action.",
    ["action"],
    buckets=LATENCY_BUCKETS,
)
upstream_duration = Histogram(
    "gate_upstream_duration_seconds",
    "Time from forwarding a request to the upstream's response headers.",
    buckets=LATENCY_BUCKETS,
)
upstream_errors_total = Counter(
    "gate_upstream_errors_total",
    "Forwarded requests that failed: connect (502), timeout (504), protocol (502), aborted (mid-response).",
    ["kind"],
)
challenges_issued_total = Counter(
    "gate_challenges_issued_total", "Challenge pages served, by the rule that asked for them.", ["rule"]
)
challenges_solved_total = Counter(
    "gate_challenges_solved_total", "Challenges redeemed: js (proof of work) or nojs (waited).", ["kind"]
)
challenges_failed_total = Counter(
    "gate_challenges_failed_total",
    "Submissions refused: malformed, unknown-key, bad-signature, expired, binding, insufficient-work, replayed, "
    "too-early, no-cookies, too-large.",
    ["reason"],
)
challenge_solve_seconds = Histogram(
    "gate_challenge_solve_seconds",
    "Solve time the client reported (bounded to 120 s).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0),
)
challenge_difficulty = Histogram(
    "gate_challenge_difficulty_bits",
    "Difficulty of the challenges served, in leading zero bits.",
    buckets=(8, 12, 14, 16, 18, 20, 22, 24, 26),
)
pass_tokens_minted_total = Counter(
    "gate_pass_tokens_minted_total", "Pass tokens issued after a solved challenge, by how they were earned.", ["earned"]
)
pass_budgets_exhausted_total = Counter(
    "gate_pass_budgets_exhausted_total", "Requests that found their pass token's request budget used up."
)
throttled_total = Counter(
    "gate_throttled_total",
    "Requests refused by a rate limit (answered 429, or a challenge for browsers), by limit and agent class.",
    ["limit", "agent_class"],
)
client_errors_total = Counter(
    "gate_client_errors_total",
    "Requests and connections refused before any rule saw them, by reason: malformed (400), target-too-long (414), "
    "head-too-large (431), head-timeout (408), silent (connected, sent nothing), upload-stalled, download-stalled, "
    "over-connections (503).",
    ["reason"],
)
store_errors_total = Counter(
    "gate_store_errors_total",
    "Shared-store calls that failed or timed out, by operation; the in-process fallback answered them.",
    ["operation"],
)
store_duration = Histogram(
    "gate_store_duration_seconds",
    "Time the shared store took to answer, by operation (calls past --store-timeout are in gate_store_errors_total).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
store_fallback = Gauge(
    "gate_store_fallback",
    "1 while the shared store is unreachable and an in-process fallback answers instead (counts are per instance).",
    multiprocess_mode="max",
)
bans_total = Counter(
    "gate_bans_total",
    "Addresses banned after repeated rate-limit refusals, by the limit that refused last.",
    ["limit"],
)
banned_requests_total = Counter(
    "gate_banned_requests_total", "Requests refused because their address is banned (403 with Retry-After)."
)
site_requests_per_second = Gauge(
    "gate_site_requests_per_second",
    "Requests per second across every gate instance sharing the store, over the last 10 s.",
    multiprocess_mode="max",
)
site_upstream_p90 = Gauge(
    "gate_site_upstream_p90_seconds",
    "The upstream's 90th-percentile response time across every instance over the last 10 s (NaN: too few).",
    multiprocess_mode="max",
)
site_busy = Gauge(
    "gate_site_busy",
    "1 while the site counts as busy by the rules' load: thresholds (rules matching load: busy apply).",
    multiprocess_mode="max",
)
terms_served_total = Counter(
    "gate_terms_served_total",
    "Requests answered with the terms (403) instead of the content, by agent and why: no-consent, invalid-token, "
    "expired, other-agent, unverified-agent, outdated-terms, not-opened, revoked.",
    ["agent", "reason"],
)
consents_accepted_total = Counter(
    "gate_consents_accepted_total", "Terms accepted by crawler operators, by agent and purpose.", ["agent", "purpose"]
)
consent_refusals_total = Counter(
    "gate_consent_refusals_total",
    "Acceptances refused, by the status answered (400, 409, 413, 415, 422, 429).",
    ["status"],
)
consented_requests_total = Counter(
    "gate_consented_requests_total", "Requests let in on a consent token, by agent.", ["agent"]
)
robots_fetches_total = Counter(
    "gate_robots_fetches_total", "robots.txt fetched by declared crawlers, by agent.", ["agent"]
)
robots_violations_total = Counter(
    "gate_robots_violations_total",
    "Requests by declared crawlers for paths gate's robots.txt disallows them, by agent.",
    ["agent"],
)
verifications_total = Counter(
    "gate_verifications_total",
    "Proofs checked that needed a lookup, by method (dns: reverse DNS of a claimed crawler; signature: Web Bot Auth) "
    "and result (verified, impostor, unconfirmed for dns; verified, invalid, unverified for signature).",
    ["method", "result"],
)
rules_reloads_total = Counter(
    "gate_rules_reloads_total",
    "Rules reloads (on SIGHUP or a changed file), by outcome: success, or failure (the old rules keep running).",
    ["outcome"],
)
rules_info = Gauge(
    "gate_rules_info",
    "1 for the rules files in force (the version label is a hash of them), 0 for versions replaced since start.",
    ["version"],
    multiprocess_mode="liveall",
)
build_info = Gauge(
    "gate_build_info",
    "Always 1; the version label says which gate is running.",
    ["version"],
    multiprocess_mode="max",
)


class CountLater:
    """A counter's increments for one set of label values, added to it in a batch (see `flush`)."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        first = not self.pending
        self.pending += amount
        if first:
            _mark_dirty(self)

    def flush(self) -> None:
        pending, self.pending = self.pending, 0.0
        if pending:
            self.child.inc(pending)


class ObserveLater:
    """A histogram's observations for one set of label values, bucketed here and added to it in a batch."""

    __slots__ = ("bounds", "child", "counts", "dirty", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        # prometheus-client has no public way to add many observations at once: the bounds, buckets and sum used
        # here are its own (stable since its first releases; tests/test_metrics_batches.py compares the result with
        # observations made one by one).
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.dirty = False

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value (+Inf last)
        self.total += value
        if not self.dirty:
            self.dirty = True
            _mark_dirty(self)

    def flush(self) -> None:
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        self.dirty = False
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self.child._sum.inc(total)


Later = CountLater | ObserveLater
FLUSH_SECONDS = 0.5
_dirty: list[Later] = []


def _mark_dirty(batch: Later) -> None:
    _dirty.append(batch)
    try:
        _flusher.schedule()
    except RuntimeError:  # no event loop (a command, a test): nothing to batch with
        flush()


def flush() -> None:
    """Add what was counted in batches to the metrics: every FLUSH_SECONDS while requests come, at shutdown, and
    before a scrape that runs in the same process."""
    batches, _dirty[:] = list(_dirty), []
    for batch in batches:
        batch.flush()


_flusher = FlushLater(FLUSH_SECONDS, flush)


class Children:
    """The per-request metrics, counted in batches by label values: with several workers, every update of a value
    takes a lock, asks the kernel for the process id and writes to a memory-mapped file; three to six per request
    cost 6-7 % of a worker's time (docs/benchmarks.md, "Metrics in batches"). Added up every FLUSH_SECONDS, a
    scrape sees them that much later. Label values must be bounded (actions, rule names, agent classes and names):
    a batch is kept per combination."""

    def __init__(self, metric: Counter | Histogram) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        batch = self.children.get(values)
        if batch is None:
            batch = self.children[values] = batched(self.metric.labels(*values) if values else self.metric)
        return batch


def batched(child: Counter | Histogram) -> Later:
    return CountLater(child) if isinstance(child, Counter) else ObserveLater(child)


request_counts = Children(requests_total)
agent_request_counts = Children(agent_requests_total)
request_durations = Children(request_duration)
upstream_durations = Children(upstream_duration)
store_durations = Children(store_duration)


def registry() -> CollectorRegistry:
    """The registry /metrics serves: the process's own, or every worker's files in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


def record_start() -> None:
    build_info.labels(gate.__version__).set(1)


_rules_version: list[str] = []  # the version this process last reported


def record_rules(version: str) -> None:
    """Mark `version` as the rules in force: the previous one is set to 0, not removed, because multiprocess mode
    keeps every series a worker ever wrote."""
    if _rules_version and _rules_version[0] != version:
        rules_info.labels(_rules_version[0]).set(0)
    _rules_version[:] = [version]
    rules_info.labels(version).set(1)
