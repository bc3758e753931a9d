"""Whatever a client sends, fingerprinting and evaluation answer with a Decision and never raise.

Scopes are built directly, as the ASGI server hands them over: headers as (bytes, bytes) pairs in any case, any
order, repeated, with any byte (decoded as latin-1 by Facts), huge values, and any path, query, method and version.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.facts import Facts
from gate.net import TrustedProxies
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action, Decision

EVERY_FEATURE = Path(__file__).resolve().parent.parent / "data" / "rules" / "good"
NO_PROXIES = TrustedProxies(())
FRONT_PROXY = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

USER_AGENTS = [
    "",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/7.0)",
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.32.3",
]
HEADER_NAMES = [
    b"host", b"user-agent", b"accept", b"accept-language", b"accept-encoding", b"sec-ch-ua", b"sec-ch-ua-platform",
    b"sec-ch-ua-mobile", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest", b"sec-fetch-user", b"cookie",
    b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto", b"x-forwarded-host", b"x-ja4",
    b"access-control-request-method",
]  # fmt: skip
HEADER_VALUES = [
    b"", b"?1", b"none", b"navigate", b"document", b'"Linux"', b'"Windows"', b"*/*", b"gzip, deflate",
    b'"Chromium";v="156", "Not:A-Brand";v="8"', b'"HeadlessChrome";v="120"', b'"Chromium";v="1x.", "";v=""',
    b"t13d1516h2_8daaf6152771_e5627efa2ab1", b"[::1]:8080", b"example.org:99999", b"::ffff:10.0.0.1, nonsense",
]  # fmt: skip

latin1_text = st.text(st.characters(max_codepoint=0xFF), max_size=300)
huge = st.builds(lambda chunk, times: chunk * times, st.binary(min_size=1, max_size=8), st.integers(1000, 20000))
header_name = st.sampled_from(HEADER_NAMES).map(lambda name: name.upper() if len(name) % 2 else name) | st.binary(
    max_size=30
)
header_value = (
    st.sampled_from(HEADER_VALUES)
    | st.binary(max_size=200)
    | latin1_text.map(lambda text: text.encode("latin-1"))
    | huge
)
user_agent = (
    st.sampled_from(USER_AGENTS)
    | latin1_text
    | st.tuples(st.sampled_from(USER_AGENTS), latin1_text, st.booleans()).map(
        lambda parts: parts[0] + parts[1] if parts[2] else parts[1] + parts[0]
    )
)
path = st.text(max_size=200) | st.sampled_from(["/", "/robots.txt", "/feed/", "/a/b.xml", "/.well-known/x", "//"])
client = st.none() | st.tuples(
    st.sampled_from(["203.0.113.7", "10.0.0.2", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0", "unix", ""]),
    st.integers(0, 65535),
)


@st.composite
def scopes(draw: st.DrawFn) -> dict[str, Any]:
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=16))
    ua = draw(user_agent).encode("latin-1")
    for _ in range(draw(st.integers(0, 2))):  # none, one, or a repeated User-Agent, anywhere
        headers.insert(draw(st.integers(0, len(headers))), (b"User-Agent", ua))
    return {
        "type": "http",
        "http_version": draw(st.sampled_from(["1.0", "1.1", "2", "3"]) | st.text(max_size=4)),
        "method": draw(st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "get"]) | st.text(max_size=12)),
        "scheme": draw(st.sampled_from(["http", "https", "HTTPS", "ws"])),
        "path": draw(path),
        "raw_path": b"/",
        "query_string": draw(st.binary(max_size=200) | st.sampled_from([b"page=1&debug", b"replytocom=&=&&"])),
        "headers": headers,
        "client": draw(client),
        "server": None,
    }


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


@pytest.fixture(scope="module")
def every_feature() -> list[Policy]:
    """The good fixtures that compile regexes, header and query tests, networks and JA4 lists."""
    names = ["match-keys.yaml", "combinators.yaml", "networks.yaml", "fingerprints.yaml", "scoring.yaml"]
    return [load_policy(EVERY_FEATURE / name) for name in names]


def decide(policy: Policy, scope: dict[str, Any], proxies: TrustedProxies) -> Decision:
    facts = Facts.from_scope(scope, proxies)
    decision = policy.evaluate(facts, policy.fingerprint(facts))
    assert isinstance(decision, Decision)
    assert decision.action in set(Action)
    assert decision.action is not Action.WEIGH  # weigh never decides
    assert decision.rule
    return decision


@SETTINGS
@given(scope=scopes())
def test_the_shipped_policy_never_raises(shipped: Policy, scope: dict[str, Any]) -> None:
    decide(shipped, scope, NO_PROXIES)


@SETTINGS
@given(scope=scopes())
def test_the_shipped_policy_never_raises_behind_a_trusted_proxy(shipped: Policy, scope: dict[str, Any]) -> None:
    decide(shipped, scope, FRONT_PROXY)


@SETTINGS
@given(scope=scopes())
def test_rules_with_every_feature_never_raise(every_feature: list[Policy], scope: dict[str, Any]) -> None:
    for policy in every_feature:
        decide(policy, scope, FRONT_PROXY)
