"""Open-redirect payloads as the page a challenged client asked for, in proxy mode (the request line) and in auth mode
(the front proxy's X-Original-URI / X-Forwarded-Uri for gate's challenge page): after a solved challenge (work or
waiting) and in the no-JavaScript page's Refresh, `Location` stays on the site, and no response carries a header line
the input wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest

from tests.support.gate_process import AUTH_MODE, GateProcess, started_gates
from tests.support.recording import RecordingUpstream
from tests.support.solver import PageChallenge, read_challenge

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
SITE = "site.example"
RULES = """
agents: [shipped:agents/*.yaml]
rules:
  - {name: own-pages, match: {path: /.gate/**}, action: allow}
default: {action: challenge, difficulty: 0}
"""
# Where a challenged client says it was going. Every one must bring it back to this site, or be refused.
PAYLOADS: dict[str, bytes] = {
    "protocol-relative": b"//evil.example/x",
    "triple-slash": b"///evil.example/x",
    "slash-backslash": b"/\\evil.example/x",
    "backslash-slash": b"\\/evil.example/x",
    "backslashes": b"/\\\\evil.example/x",
    "encoded-slashes": b"%2f%2fevil.example",
    "slash-encoded-slash": b"/%2fevil.example",
    "encoded-slashes-after-slash": b"/%2F%2Fevil.example",
    "double-encoded-slashes": b"/%252F%252Fevil.example",
    "encoded-backslashes": b"%5c%5cevil.example",
    "slash-encoded-backslash": b"/%5cevil.example",
    "scheme-no-slashes": b"https:evil.example",
    "absolute-url": b"https://evil.example/x",
    "javascript": b"javascript:alert(1)",
    "data": b"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "encoded-crlf-location": b"/%0d%0aLocation:%20https://evil.example/",
    "encoded-crlf-header": b"/x%0D%0AX-Injected:%20yes",
    "encoded-lf": b"/x%0aX-Injected:%20yes",
    "tab-inside-slashes": b"/\t/evil.example",
    "encoded-tab-inside-slashes": b"/%09/evil.example",
    "vertical-tab-inside-slashes": b"/\x0b/evil.example",
    "nbsp-inside-slashes": b"/\xc2\xa0/evil.example",
    "fullwidth-solidus": "/\uff0fevil.example".encode(),
    "fullwidth-solidi": "\uff0f\uff0fevil.example".encode(),
    "fraction-slash": "/\u2044evil.example".encode(),
    "ideographic-full-stop": "//evil\u3002example/".encode(),
    "encoded-fullwidth-solidus": b"/%EF%BC%8F%EF%BC%8Fevil.example",
    "userinfo": b"//site.example@evil.example/",
    "userinfo-after-scheme": b"https://site.example@evil.example/",
    "over-long": b"/" + b"a" * 3000,
    "over-long-protocol-relative": b"//evil.example/" + b"a" * 3000,
}
RAW_ONLY: dict[str, bytes] = {  # bytes that end a header line: only a request line can carry them (and is refused)
    "crlf-injection": b"/x\r\nX-Injected: yes",
    "lf-injection": b"/x\nX-Injected: yes",
}
CASES = [("proxy", name) for name in [*PAYLOADS, *RAW_ONLY]] + [
    (mode, name) for mode in ("auth-original-uri", "auth-forwarded-uri") for name in PAYLOADS
]


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


def parse(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    return Response(int(status_line.split(" ", 2)[1]), headers, body.decode("utf-8", "replace"))


def assert_no_injected_header(response: Response) -> None:
    names = [name for name, _ in response.headers]
    assert "x-injected" not in names
    assert names.count("location") <= 1
    assert not any("\r" in value or "\n" in value for _, value in response.headers)


def assert_stays_on_site(location: str) -> None:
    """A path on this site: one leading slash, nothing a browser strips, maps or reads as another host."""
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert all(" " < character < "\x7f" and character != "\\" for character in location), location
    decoded = unquote(location)
    assert not decoded.startswith(("//", "/\\")), location
    assert urlsplit(urljoin(f"https://{SITE}/a/b", location)).netloc == SITE, location


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream) -> Iterator[dict[str, GateProcess]]:
    with started_gates(tmp_path_factory.mktemp("redirects"), upstream.url, RULES, proxy=(), auth=AUTH_MODE) as gates:
        yield gates


@dataclass
class Issued:
    gate: GateProcess
    page: Response
    challenge: PageChallenge | None  # None when gate refused the request outright
    at: float


def request_for(mode: str, target: bytes) -> bytes:
    if mode == "proxy":
        line, extra = b"GET " + target + b" HTTP/1.1\r\n", b""
    else:
        header = b"X-Original-URI" if mode == "auth-original-uri" else b"X-Forwarded-Uri"
        line, extra = b"GET /.gate/challenge HTTP/1.1\r\n", header + b": " + target + b"\r\n"
    return (
        line
        + b"Host: "
        + SITE.encode()
        + b"\r\nUser-Agent: "
        + UA.encode()
        + b"\r\n"
        + extra
        + b"Connection: close\r\n\r\n"
    )


@pytest.fixture(scope="module")
def issued(gates: dict[str, GateProcess]) -> dict[tuple[str, str], Issued]:
    """Every case's first answer, fetched up front: the no-JavaScript path then waits once for all of them."""
    found = {}
    for mode, name in CASES:
        gate = gates["proxy" if mode == "proxy" else "auth"]
        page = parse(gate.exchange(request_for(mode, {**PAYLOADS, **RAW_ONLY}[name])))
        challenge = read_challenge(page.body) if page.status == 200 else None
        found[mode, name] = Issued(gate, page, challenge, time.monotonic())
    return found


def client(gate: GateProcess) -> httpx.Client:
    browser = httpx.Client(base_url=gate.url, headers={"User-Agent": UA, "Host": SITE}, timeout=10)
    browser.cookies.set("gate_probe", "1", path="/.gate/")
    return browser


@pytest.mark.parametrize(("mode", "name"), CASES)
def test_a_hostile_target_is_refused_or_every_way_through_the_challenge_leads_back_to_this_site(
    issued: dict[tuple[str, str], Issued], mode: str, name: str
) -> None:
    case = issued[mode, name]
    assert_no_injected_header(case.page)
    assert case.page.header("location") is None
    if case.challenge is None:
        assert 400 <= case.page.status < 500, case.page.status
        return
    with client(case.gate) as browser:
        data = {"challenge": case.challenge.token, "nonce": "0", "elapsed_ms": "1"}  # difficulty 0: any nonce
        worked = browser.post(case.challenge.verify_url, data=data, follow_redirects=False)
        time.sleep(max(0.0, case.at + case.challenge.nojs_delay + 0.2 - time.monotonic()))
        waited = browser.get(case.challenge.nojs_url, follow_redirects=False)
    for answer in (worked, waited):
        assert answer.status_code == 303
        assert_stays_on_site(answer.headers["location"])
        assert "x-injected" not in answer.headers


@pytest.mark.parametrize("name", ["protocol-relative", "encoded-crlf-header", "absolute-url", "backslash-slash"])
def test_the_early_no_javascript_page_refreshes_to_itself_whatever_its_query_says(
    gates: dict[str, GateProcess], name: str
) -> None:
    gate = gates["proxy"]
    with client(gate) as browser:
        challenge = read_challenge(browser.get("/refresh-target").text)
    early = parse(gate.exchange(request_for("proxy", challenge.nojs_url.encode() + b"&next=" + PAYLOADS[name])))
    assert early.status == 200 or 400 <= early.status < 500
    assert_no_injected_header(early)
    if early.status == 200:
        refresh = early.header("refresh")
        assert refresh is not None
        delay, _, url = refresh.partition("; url=")
        assert delay.isdigit()
        assert not any(character <= " " or character == "\x7f" for character in url)
        target = urlsplit(urljoin(f"https://{SITE}/a/b", url))
        assert (target.netloc, target.path) == (SITE, "/.gate/challenge/nojs")
