"""Throttling on every store: what a limit counts by (address, network, pass token), refusals escalating to a ban,
failing closed, and the site's load measured across instances."""

from __future__ import annotations

import uuid

import pytest

from gate.check import NO_PROXIES, scope_for
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy.model import Bans, Limit, LoadThresholds
from gate.site_load import WINDOW_SECONDS, SiteLoad, percentile
from gate.store import FallbackStore, RedisStore, Store
from gate.throttle import Throttle, strike_key
from tests.support.ports import free_port

BOT = Signals("http-library")
BANS = Bans(after=3, window=60.0, duration=600.0)


def client(ip: str) -> Facts:
    return Facts.from_scope(scope_for("GET", "https://example.org/", ip, []), NO_PROXIES)


def fresh_limit(burst: int, per: tuple[str, ...] = ("ip",)) -> Limit:
    """A limit no earlier test has charged (the session's Redis outlives each test)."""
    return Limit(f"test-{uuid.uuid4().hex}", rate=1, period=60.0, burst=burst, per=per)


def fresh_address() -> str:
    number = uuid.uuid4().int
    return f"10.{number % 250}.{number // 250 % 250}.{number // 62500 % 250 + 1}"


async def test_a_limit_per_pass_counts_each_token_apart(store: Store) -> None:
    throttle = Throttle(store)
    limit = fresh_limit(burst=2, per=("pass",))
    facts = client(fresh_address())
    for pass_id in ("token-a", "token-b"):
        assert [await throttle.charge([limit], facts, BOT, None, pass_id) for _ in range(2)] == [None, None]
        assert await throttle.charge([limit], facts, BOT, None, pass_id) is not None
    assert [await throttle.charge([limit], facts, BOT, None) for _ in range(2)] == [None, None]  # no pass: by address


async def test_a_limit_per_network_counts_the_neighbours_together(store: Store) -> None:
    throttle = Throttle(store)
    limit = fresh_limit(burst=2, per=("network",))
    first = fresh_address()
    neighbour = first.rpartition(".")[0] + ".250"
    assert await throttle.charge([limit], client(first), BOT, None) is None
    assert await throttle.charge([limit], client(neighbour), BOT, None) is None
    refusal = await throttle.charge([limit], client(first), BOT, None)
    assert refusal is not None and refusal.reason == "limit"


async def test_refusals_escalate_to_a_ban_that_refuses_everything(store: Store) -> None:
    throttle = Throttle(store)
    tight, roomy = fresh_limit(burst=1), fresh_limit(burst=100)
    facts = client(fresh_address())
    assert await throttle.charge([tight], facts, BOT, BANS) is None
    refusals = [await throttle.charge([tight], facts, BOT, BANS) for _ in range(3)]
    assert [(refusal.reason, refusal.strikes) for refusal in refusals if refusal] == [
        ("limit", 1),
        ("limit", 2),
        ("limit", 3),
    ]
    banned = await throttle.charge([roomy], facts, BOT, BANS)  # even within every limit
    assert banned is not None and banned.reason == "ban" and banned.status == 403
    assert 590 < banned.retry_after <= 600
    assert await throttle.charge([roomy], client(fresh_address()), BOT, BANS) is None  # only that address


async def test_without_bans_refusals_still_count_as_strikes(store: Store) -> None:
    throttle = Throttle(store)
    limit = fresh_limit(burst=1)
    facts = client(fresh_address())
    await throttle.charge([limit], facts, BOT, None)
    strikes = [refusal.strikes for _ in range(4) if (refusal := await throttle.charge([limit], facts, BOT, None))]
    assert strikes == [1, 2, 3, 4]


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_with_the_store_down_limits_hold_per_instance_or_refuse(fail_closed: bool) -> None:
    down = FallbackStore(RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0"), 0.05)
    throttle = Throttle(down, fail_closed=fail_closed)
    limit = fresh_limit(burst=2)
    try:
        refusals = [await throttle.charge([limit], client("192.0.2.1"), BOT, BANS) for _ in range(3)]
    finally:
        await down.close()
    if fail_closed:
        assert [(refusal.reason, refusal.status) for refusal in refusals if refusal] == [("unavailable", 503)] * 3
    else:
        assert [refusal.reason if refusal else None for refusal in refusals] == [None, None, "limit"]


async def test_the_site_load_adds_up_every_instance_and_holds_busy(store: Store) -> None:
    thresholds = LoadThresholds(requests_per_second=5.0, upstream_p90=None, hold=30.0)
    first, second = SiteLoad(store, lambda: thresholds), SiteLoad(store, lambda: thresholds)
    now = 4_000_000_000.0 + uuid.uuid4().int % 1_000_000 * 100  # a second of its own in the shared Redis
    for _ in range(40):
        first.note(0.02)
        second.note(0.02)
    await first.tick(now)
    await second.tick(now + 0.5)
    assert not first.busy  # the second being counted is not complete yet
    await first.tick(now + 1)
    assert first.requests_per_second == 80 / WINDOW_SECONDS
    assert first.busy and first.upstream_p90 is not None and 0.01 < first.upstream_p90 <= 0.025
    await first.tick(now + 1 + WINDOW_SECONDS)  # the burst has left the window ...
    assert first.requests_per_second == 0 and first.busy  # ... but busy holds
    await first.tick(now + 31 + WINDOW_SECONDS)
    assert not first.busy


async def test_a_slow_upstream_makes_the_site_busy(store: Store) -> None:
    thresholds = LoadThresholds(requests_per_second=None, upstream_p90=0.5, hold=0.0)
    load = SiteLoad(store, lambda: thresholds)
    now = 4_200_000_000.0 + uuid.uuid4().int % 1_000_000 * 100
    for _ in range(15):
        load.note(0.05)
    for _ in range(15):
        load.note(3.0)
    await load.tick(now)
    await load.tick(now + 1)
    assert load.upstream_p90 is not None and load.upstream_p90 > 2.5
    assert load.busy


def test_the_p90_is_interpolated_within_its_bucket() -> None:
    assert percentile([0] * 13, 0.9) is None
    assert percentile([10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.9) == pytest.approx(0.0045)
    assert percentile([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4], 0.9) == 30.0  # beyond the last bound: at least


async def test_a_store_that_refuses_the_strike_still_refuses_the_request(store: Store) -> None:
    throttle = Throttle(store)
    limit = fresh_limit(burst=1)
    facts = client(fresh_address())
    await store.set(strike_key(facts.ip, facts.prefix), b"not a number", 60)  # incr on it is refused
    assert await throttle.charge([limit], facts, BOT, BANS) is None
    refusal = await throttle.charge([limit], facts, BOT, BANS)
    assert refusal is not None and (refusal.reason, refusal.strikes) == ("limit", 0)
