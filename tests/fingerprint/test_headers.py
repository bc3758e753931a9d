"""Header consistency against profiles captured from a real Chromium and real HTTP libraries (tests/data/headers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.check import NO_PROXIES
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy

HEADERS = Path(__file__).parent.parent / "data" / "headers"
HEADFUL_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
LIBRARIES = ["curl", "wget", "python-httpx", "aiohttp", "python-urllib", "python-requests"]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(shipped_rules())


def captured(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HEADERS / f"{name}.json").read_text())
    return data


def signals_for(
    policy: Policy,
    headers: list[tuple[str, str]],
    *,
    method: str = "GET",
    scheme: str = "http",
    http_version: str = "1.1",
    user_agent: str | None = None,
    drop: tuple[str, ...] = (),
    host: str | None = None,
) -> Signals:
    """Fingerprint a request with these headers (optionally another User-Agent or Host, or some headers dropped)."""
    raw = []
    for name, value in headers:
        lower = name.lower()
        if lower in drop:
            continue
        if lower == "user-agent" and user_agent is not None:
            value = user_agent
        if lower == "host" and host is not None:
            value = host
        raw.append((lower.encode("latin-1"), value.encode("latin-1")))
    scope = {"type": "http", "http_version": http_version, "method": method, "scheme": scheme, "path": "/",
             "raw_path": b"/", "query_string": b"", "headers": raw, "client": ("203.0.113.7", 50000)}  # fmt: skip
    return policy.fingerprint(Facts.from_scope(scope, NO_PROXIES))


HEADFUL_KINDS = sorted(path.stem for path in HEADERS.glob("chromium-headful-*.json"))


@pytest.mark.parametrize("kind", HEADFUL_KINDS)
def test_a_real_chromium_raises_no_signal(policy: Policy, kind: str) -> None:
    capture = captured(kind)
    signals = signals_for(policy, capture["headers"], method=capture["method"])
    assert signals.agent_class == "browser"
    assert signals.findings == ()


@pytest.mark.parametrize("kind", [kind.replace("-headful", "") for kind in HEADFUL_KINDS])
def test_headless_chromium_is_named_by_its_user_agent(policy: Policy, kind: str) -> None:
    capture = captured(kind)
    signals = signals_for(policy, capture["headers"], method=capture["method"])
    assert signals.agent_class == "headless-browser"
    assert signals.agent_name == "HeadlessChrome"


def test_headless_chromium_with_a_desktop_user_agent_is_header_identical(policy: Policy) -> None:
    # A limit worth knowing: new headless mode differs from a desktop Chromium only in its User-Agent.
    signals = signals_for(policy, captured("chromium-navigation")["headers"], user_agent=HEADFUL_UA)
    assert (signals.agent_class, signals.findings) == ("browser", ())


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_are_named_by_their_user_agent(policy: Policy, library: str) -> None:
    signals = signals_for(policy, captured(library)["headers"])
    assert signals.agent_class == "http-library"


@pytest.mark.parametrize("library", LIBRARIES)
def test_library_faking_a_browser_user_agent_is_caught_by_its_headers(policy: Policy, library: str) -> None:
    signals = signals_for(policy, captured(library)["headers"], user_agent=HEADFUL_UA)
    assert signals.agent_class == "browser"
    assert {"no-client-hints", "no-accept-language"} <= signals.names
    decision = policy.evaluate(Facts.from_scope(_scope_stub(), NO_PROXIES), signals)
    assert decision.score >= 6
    assert decision.rule == "inconsistent-browser"


def _scope_stub() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")], "client": ("203.0.113.7", 1)}  # fmt: skip


def test_plain_http_to_a_public_host_expects_no_client_hints(policy: Policy) -> None:
    # Over http:// to a non-local host Chromium sends neither client hints nor Sec-Fetch-*, and no br/zstd.
    headers = [
        (name, "gzip, deflate" if name == "Accept-Encoding" else value)
        for name, value in captured("chromium-headful-navigation")["headers"]
        if not name.lower().startswith(("sec-ch-", "sec-fetch-"))
    ]
    signals = signals_for(policy, headers, host="blog.example")
    assert signals.findings == ()


def test_the_same_request_over_https_misses_client_hints(policy: Policy) -> None:
    headers = [
        (name, value)
        for name, value in captured("chromium-headful-navigation")["headers"]
        if not name.lower().startswith(("sec-ch-", "sec-fetch-"))
    ]
    signals = signals_for(policy, headers, host="blog.example", scheme="https")
    assert {"no-client-hints", "sec-fetch-missing"} <= signals.names


def browser_headers(**replace: str) -> list[tuple[str, str]]:
    headers = dict(captured("chromium-headful-navigation")["headers"])
    headers.update(replace)
    return list(headers.items())


@pytest.mark.parametrize(
    ("replace", "signal"),
    [
        ({"sec-ch-ua-platform": '"Windows"'}, "client-hints-mismatch"),
        ({"sec-ch-ua": '"Chromium";v="120", "Not:A-Brand";v="8"'}, "client-hints-mismatch"),
        ({"sec-ch-ua": '"HeadlessChrome";v="156", "Chromium";v="156"'}, "headless-client-hints"),
        ({"Sec-Fetch-Mode": "teleport"}, "sec-fetch-invalid"),
        ({"Sec-Fetch-Dest": "Document'; DROP"}, "sec-fetch-invalid"),
        (
            {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
            "client-hints-not-chromium",
        ),
    ],
)
def test_contradictions_are_named(policy: Policy, replace: dict[str, str], signal: str) -> None:
    assert signal in signals_for(policy, browser_headers(**replace)).names


def test_headless_client_hints_make_it_a_headless_browser(policy: Policy) -> None:
    signals = signals_for(policy, browser_headers(**{"sec-ch-ua": '"HeadlessChrome";v="120"'}))
    assert signals.agent_class == "headless-browser"


def test_android_desktop_mode_is_not_a_contradiction(policy: Policy) -> None:
    # Chrome for Android's "desktop site" sends a Linux User-Agent with Sec-CH-UA-Platform "Android".
    assert signals_for(policy, browser_headers(**{"sec-ch-ua-platform": '"Android"'})).findings == ()


def test_http_1_0_and_empty_user_agent(policy: Policy) -> None:
    signals = signals_for(policy, [("Host", "127.0.0.1")], http_version="1.0")
    assert signals.names == {"http-1.0", "empty-user-agent"}
    assert signals.agent_class == "unknown"


@pytest.mark.parametrize(
    "user_agent",
    [
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/85.0.4183.83 Safari/537.36",
    ],
)
def test_browsers_that_never_send_client_hints_are_not_faulted_for_it(policy: Policy, user_agent: str) -> None:
    headers = [(name, value) for name, value in browser_headers() if not name.lower().startswith("sec-ch-")]
    signals = signals_for(policy, headers, user_agent=user_agent, scheme="https", host="blog.example")
    assert "no-client-hints" not in signals.names
