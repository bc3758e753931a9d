"""Who the client is cannot be written by the client, and what it writes is never echoed raw: forged X-Forwarded-For,
X-Real-IP and Forwarded neither name the client in the log nor escape its limit (from an untrusted peer, or left of
the right-most untrusted hop behind a trusted proxy); values gate reflects (the Host, the page asked for, the
front proxy's Retry-After) come back escaped, with no header line of the client's making."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gate_process import GateProcess, started_gates
from tests.support.recording import ANSWER, RecordingUpstream

CURL = "curl/8.5.0"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
RULES = """
agents: [shipped:agents/*.yaml]
limits:
  scripts: {rate: 1/min, burst: 3, per: ip}
rules:
  - {name: scripts, match: {agent_class: [http-library]}, action: throttle, limit: scripts}
  - {name: browsers, match: {agent_class: [browser]}, action: challenge, difficulty: 0}
default: {action: deny}
"""
SCRIPT = b"<script>alert(1)</script>"
INJECTED = b"X-Injected: yes"


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream) -> Iterator[dict[str, GateProcess]]:
    """`direct`: clients connect to gate itself; `behind`: gate behind a trusted proxy on 127.0.0.1."""
    with started_gates(
        tmp_path_factory.mktemp("headers"), upstream.url, RULES, direct=(), behind=("--trusted-proxy", "127.0.0.1")
    ) as gates:
        yield gates


def get(gate: GateProcess, path: str, **headers: str) -> httpx.Response:
    return httpx.get(gate.url + path, headers={"User-Agent": CURL, **headers})


def forged(n: int) -> dict[str, str]:
    address = f"198.51.100.{n}"
    return {"X-Forwarded-For": address, "X-Real-IP": address, "Forwarded": f"for={address}", "True-Client-IP": address}


def test_forged_address_headers_from_an_untrusted_peer_neither_name_the_client_nor_reset_its_limit(
    gates: dict[str, GateProcess],
) -> None:
    gate = gates["direct"]
    statuses = [get(gate, "/forged-direct", **forged(n)).status_code for n in range(1, 5)]
    assert statuses == [200, 200, 200, 429]  # four addresses claimed, one client counted
    assert {line["ip"] for line in gate.access_lines("/forged-direct")} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("6.6.6.6, 203.0.113.20", "203.0.113.20"),
        ("6.6.6.6, 203.0.113.21, 127.0.0.1", "203.0.113.21"),  # trusted hops are skipped, forged ones are not reached
        ("203.0.113.22, not-an-address", "127.0.0.1"),  # a hop the proxy cannot have written stops the walk
    ],
)
def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    gates: dict[str, GateProcess], chain: str, client: str
) -> None:
    gate = gates["behind"]
    path = f"/chain-{client}-{len(chain)}"
    get(gate, path, **{"X-Forwarded-For": chain, "X-Real-IP": "6.6.6.7", "Forwarded": "for=6.6.6.8"})
    assert gate.access_lines(path)[-1]["ip"] == client


def test_behind_a_trusted_proxy_a_forged_left_most_entry_does_not_reset_the_limit(
    gates: dict[str, GateProcess], upstream: RecordingUpstream
) -> None:
    gate = gates["behind"]
    statuses = [
        get(gate, "/forged-behind", **{"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.9"}).status_code
        for n in range(1, 5)
    ]
    assert statuses == [200, 200, 200, 429]
    other = get(gate, "/forged-behind", **{"X-Forwarded-For": "198.51.100.1, 203.0.113.10"})
    assert other.text == ANSWER + "/forged-behind"  # another client behind the proxy has a budget of its own


def reflected(raw: bytes) -> list[bytes]:
    """What in a raw response shows the client's input was taken as markup or as a header line."""
    head, _, body = raw.partition(b"\r\n\r\n")
    found = [line for line in head.split(b"\r\n")[1:] if b":" not in line or line.lower().startswith(b"x-injected")]
    return found + ([SCRIPT] if SCRIPT in body else [])


HOSTILE_REQUESTS = {
    "host-on-the-challenge-page": (b"GET /page HTTP/1.1", [b'Host: "><script>alert(1)</script>'], BROWSER),
    "target-on-the-challenge-page": (
        b"GET /%3Cscript%3Ealert(1)%3C/script%3E?q=%0d%0aX-Injected:%20yes&r=%3Cscript%3Ealert(1)%3C/script%3E "
        b"HTTP/1.1",
        [b"Host: site.example"],
        BROWSER,
    ),
    "accept-language-and-cookies-on-the-challenge-page": (
        b"GET /page HTTP/1.1",
        [
            b"Host: site.example",
            b"Accept-Language: <script>alert(1)</script>",
            b"Cookie: gate_pass=<script>alert(1)</script>; gate_consent=%0d%0aX-Injected:%20yes",
        ],
        BROWSER,
    ),
    "user-agent-and-host-on-the-deny-page": (
        b"GET /page HTTP/1.1",
        [b"Host: <script>alert(1)</script>"],
        "<script>alert(1)</script>%0d%0aX-Injected: yes",
    ),
    "host-on-the-terms-page": (b"GET /.gate/terms HTTP/1.1", [b"Host: <script>alert(1)</script>"], BROWSER),
    "query-on-the-no-javascript-path": (
        b"GET /.gate/challenge/nojs?c=%3Cscript%3Ealert(1)%3C/script%3E%0d%0aX-Injected:%20yes HTTP/1.1",
        [b"Host: site.example"],
        BROWSER,
    ),
    "path-on-gates-own-404": (
        b"GET /.gate/%3Cscript%3Ealert(1)%3C/script%3E%0d%0aX-Injected:%20yes HTTP/1.1",
        [b"Host: site.example"],
        BROWSER,
    ),
    "front-proxy-headers-on-the-refusal-page": (
        b"GET /.gate/refusal HTTP/1.1",
        [
            b"Host: site.example",
            b"X-Gate-Refused: <script>alert(1)</script>",
            b"X-Original-URI: /%0d%0aX-Injected:%20yes<script>alert(1)</script>",
        ],
        BROWSER,
    ),
    "front-proxy-headers-on-the-challenge-page": (
        b"GET /.gate/challenge HTTP/1.1",
        [b"Host: site.example", b"X-Original-URI: /%0d%0aX-Injected:%20yes<script>alert(1)</script>"],
        BROWSER,
    ),
}


@pytest.mark.parametrize("case", HOSTILE_REQUESTS)
def test_reflected_values_come_back_escaped_without_header_lines_of_the_clients_making(
    gates: dict[str, GateProcess], case: str
) -> None:
    line, headers, user_agent = HOSTILE_REQUESTS[case]
    request = b"\r\n".join([line, *headers, b"User-Agent: " + user_agent.encode(), b"Connection: close", b"", b""])
    raw = gates["direct"].exchange(request)
    assert int(raw.split(b" ", 2)[1]) < 500
    assert reflected(raw) == []


@pytest.mark.parametrize(("given", "kept"), [(b"30", "30"), ("²".encode("latin-1"), None), (b"1, 2", None)])
def test_the_refusal_page_passes_on_only_a_plain_number_as_retry_after(
    gates: dict[str, GateProcess], given: bytes, kept: str | None
) -> None:
    response = httpx.get(
        gates["direct"].url + "/.gate/refusal", headers={b"X-Gate-Refused": b"limit", b"X-Gate-Retry-After": given}
    )
    assert response.status_code == 429
    assert response.headers.get("retry-after") == kept
