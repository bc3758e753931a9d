"""The nginx configs in deploy/nginx/, as shipped (only ports, certificate and site paths substituted), in front of
a running gate: TLS terminated by a real nginx, a browser challenged and let in after solving, an AI crawler given
the terms, a scanner denied, refusals rendered by gate, and in auth mode no request body ever sent to gate."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.policy.helpers import browser_headers, write_rules
from tests.support.gate_process import GateProcess, start_gate
from tests.support.http_server import http_server
from tests.support.nginx import Nginx, check_nginx_config, nginx_config, start_nginx_with
from tests.support.ports import free_port, stop
from tests.support.solver import read_challenge, submit
from tests.support.tls import Certificate, self_signed_certificate

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "nginx"
CLAUDEBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"
SCANNER = "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"


@dataclass
class Front:
    """nginx in front, on https (and http, which redirects)."""

    https: str
    http: str
    certificate: Certificate

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.certificate.client_context(), headers=headers)


def render(
    name: str, *, gate_port: int, http_port: int, https_port: int, certificate: Certificate, root: Path, cache: Path
) -> str:
    """A shipped config with this machine's ports and paths: every line replaced must be in the file as shipped."""
    text = (DEPLOY / name).read_text()
    replacements = {
        "    listen [::]:80;\n": "",
        "    listen [::]:443 ssl http2;\n": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl;",
        "/etc/letsencrypt/live/example.org/fullchain.pem": str(certificate.cert),
        "/etc/letsencrypt/live/example.org/privkey.pem": str(certificate.key),
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{gate_port};",
        "/var/www/example.org": str(root),
        "/run/nginx-gate-decisions": str(cache),
    }
    auth_only = ("/var/www/example.org", "/run/nginx-gate-decisions")
    for shipped, local in replacements.items():
        if shipped in auth_only and name != "gate-auth.conf":
            continue
        assert shipped in text, f"{name} no longer has {shipped.strip()!r}: update this test's substitutions"
        text = text.replace(shipped, local)
    return text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("front-tls"))


@contextmanager
def front_of(directory: Path, config: str, gate_port: int, certificate: Certificate, root: Path) -> Iterator[Front]:
    http_port, https_port = free_port(), free_port()
    text = render(
        config,
        gate_port=gate_port,
        http_port=http_port,
        https_port=https_port,
        certificate=certificate,
        root=root,
        cache=directory / "gate-decisions",
    )
    process = start_nginx_with(directory, text, https_port)
    try:
        yield Front(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", certificate)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def proxy_front(
    tmp_path_factory: pytest.TempPathFactory, nginx: Nginx, certificate: Certificate
) -> Iterator[tuple[Front, GateProcess]]:
    """nginx (gate-proxy.conf) -> gate (shipped rules) -> the test site."""
    directory = tmp_path_factory.mktemp("proxy-mode")
    gate = start_gate(directory / "gate", nginx.url, "--trusted-proxy", "127.0.0.1/32")
    try:
        with front_of(directory / "nginx", "gate-proxy.conf", gate.port, certificate, nginx.root) as front:
            yield front, gate
    finally:
        gate.stop()


@pytest.fixture(scope="module")
def auth_front(
    tmp_path_factory: pytest.TempPathFactory, nginx: Nginx, certificate: Certificate
) -> Iterator[tuple[Front, GateProcess]]:
    """nginx (gate-auth.conf) serving the test site itself, asking gate (--mode auth, shipped rules)."""
    directory = tmp_path_factory.mktemp("auth-mode")
    gate = start_gate(directory / "gate", "http://127.0.0.1:9", "--mode", "auth", "--trusted-proxy", "127.0.0.1/32")
    try:
        with front_of(directory / "nginx", "gate-auth.conf", gate.port, certificate, nginx.root) as front:
            yield front, gate
    finally:
        gate.stop()


@pytest.mark.parametrize("config", ["gate-proxy.conf", "gate-auth.conf"])
def test_every_shipped_config_passes_nginx_t(tmp_path: Path, certificate: Certificate, config: str) -> None:
    text = render(
        config,
        gate_port=8080,
        http_port=free_port(),
        https_port=free_port(),
        certificate=certificate,
        root=tmp_path,
        cache=tmp_path / "gate-decisions",
    )
    checked = check_nginx_config(nginx_config(tmp_path / "nginx", text))
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("mode", ["proxy", "auth"])
def test_a_browser_is_challenged_solves_and_reaches_the_page(
    request: pytest.FixtureRequest, mode: str, nginx: Nginx
) -> None:
    front, _ = request.getfixturevalue(f"{mode}_front")
    with front.client(**dict(browser_headers())) as browser:
        first = browser.get("/page.html")
        assert "gate-challenge" in first.text and first.headers["cache-control"] == "no-store"
        challenge = read_challenge(first.text)
        answer = submit(browser, challenge)
        assert answer.status_code == 303 and answer.headers["location"] == "/page.html"
        page = browser.get("/page.html")
    assert page.status_code == 200
    assert page.text == (nginx.root / "page.html").read_text()


@pytest.mark.parametrize("mode", ["proxy", "auth"])
def test_an_ai_crawler_gets_the_terms_and_a_scanner_is_denied(request: pytest.FixtureRequest, mode: str) -> None:
    front, _ = request.getfixturevalue(f"{mode}_front")
    with front.client(**{"User-Agent": CLAUDEBOT}) as crawler:
        terms = crawler.get("/page.html")
    assert terms.status_code == 403
    assert json.loads(terms.text)["error"] == "terms"
    assert "content-usage" in terms.headers or "link" in terms.headers
    with front.client(**{"User-Agent": SCANNER}) as scanner:
        denied = scanner.get("/page.html")
    assert denied.status_code == 403 and "Access denied" in denied.text


@pytest.mark.parametrize("mode", ["proxy", "auth"])
def test_gate_sees_the_client_nginx_saw_not_the_one_it_claims(request: pytest.FixtureRequest, mode: str) -> None:
    front, gate = request.getfixturevalue(f"{mode}_front")
    with front.client(
        **{"User-Agent": SCANNER, "X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66"}
    ) as client:
        client.get("/uri/forwarded")
    line = gate.access_lines("/uri/forwarded")[-1]
    assert line["ip"] == "127.0.0.1"


def test_plain_http_redirects_to_https(proxy_front: tuple[Front, GateProcess]) -> None:
    front, _ = proxy_front
    answer = httpx.get(front.http + "/page.html?x=1")
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://") and answer.headers["location"].endswith("/page.html?x=1")


def test_auth_mode_renders_a_limit_refusal_with_its_status_and_retry_after(
    tmp_path: Path, nginx: Nginx, certificate: Certificate
) -> None:
    rules = write_rules(
        tmp_path,
        """
        limits: {tight: {rate: 1/min, burst: 1, per: ip}}
        guards: [tight]
        rules: [{name: everyone, action: allow}]
        """,
    )
    gate = start_gate(
        tmp_path / "gate",
        "http://127.0.0.1:9",
        "--mode",
        "auth",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--rules",
        str(rules),
    )
    try:
        with (
            front_of(tmp_path / "nginx", "gate-auth.conf", gate.port, certificate, nginx.root) as front,
            front.client(**{"User-Agent": "curl/8.5.0"}) as client,
        ):
            assert client.get("/page.html").status_code == 200
            refused = client.get("/page.html")
    finally:
        gate.stop()
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "Too many requests" in refused.text


@pytest.mark.parametrize("auth_cache", [0, 2])
def test_with_auth_cache_nginx_reuses_a_let_through_for_the_same_request_only(
    tmp_path: Path, nginx: Nginx, certificate: Certificate, auth_cache: int
) -> None:
    rules = write_rules(
        tmp_path,
        """
        rules:
          - {name: open, match: {path: /page.html}, action: allow}
          - {name: counted, match: {path: /article.html}, action: throttle, limit: crawl}
          - {name: others, action: challenge}
        limits: {crawl: {rate: 1000/min, burst: 50, per: ip}}
        """,
    )
    gate = start_gate(
        tmp_path / "gate",
        "http://127.0.0.1:9",
        *("--mode", "auth", "--trusted-proxy", "127.0.0.1/32", "--rules", str(rules)),
        *("--auth-cache", str(auth_cache)),
    )
    try:
        with front_of(tmp_path / "nginx", "gate-auth.conf", gate.port, certificate, nginx.root) as front:
            with front.client(**{"User-Agent": "curl/8.5.0"}) as client:
                pages = [client.get("/page.html") for _ in range(4)]
                queried = client.get("/page.html?q=1")
                other_agent = client.get("/page.html", headers={"User-Agent": "curl/8.6.0"})
                throttled = [client.get("/article.html") for _ in range(3)]
                challenged = [client.get("/nowhere.html") for _ in range(3)]
            with front.client(**{"User-Agent": "curl/8.5.0", "Cookie": "session=2"}) as other_cookies:
                other_cookies.get("/page.html")
            time.sleep(0.3)  # the access log is written in batches
            asked = {
                path: len(gate.access_lines(path, wait=0)) for path in ("/page.html", "/article.html", "/nowhere.html")
            }
    finally:
        gate.stop()
    assert [page.status_code for page in pages] == [200] * 4 and queried.status_code == other_agent.status_code == 200
    assert [answer.status_code for answer in throttled] == [200] * 3
    assert all("gate-challenge" in answer.text for answer in challenged)
    # Without the option gate decides every request; with it, the repeats of one let-through request are nginx's.
    # A new query, User-Agent or cookie is a new request; a throttle rule and a challenge are decided every time.
    assert asked["/page.html"] == (7 if auth_cache == 0 else 4)
    assert asked["/article.html"] == 3
    assert asked["/nowhere.html"] >= 3


def test_auth_mode_never_sends_a_request_body_to_gate(tmp_path: Path, nginx: Nginx, certificate: Certificate) -> None:
    """A stand-in for gate records what nginx sends it: the decision request and the refusal page, never a body."""
    seen: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                seen.append((self.path, len(body), self.headers.get("X-Original-URI", "")))
            refuse = "refuse" in self.headers.get("X-Original-URI", "") and self.path == "/.gate/auth"
            self.send_response(403 if refuse else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:
            return None

    with http_server(Recorder) as recorder:
        port = int(recorder.rsplit(":", 1)[1])
        with (
            front_of(tmp_path / "nginx", "gate-auth.conf", port, certificate, nginx.root) as front,
            front.client() as client,
        ):
            client.post("/page.html", content=b"x" * 100_000)
            client.post("/refuse/me", content=b"y" * 100_000)
    assert {path for path, _, _ in seen} == {"/.gate/auth", "/.gate/refusal"}
    assert all(length == 0 for _, length, _ in seen), seen


@pytest.mark.parametrize("mode", ["proxy", "auth"])
def test_a_solved_challenge_never_redirects_off_the_site(request: pytest.FixtureRequest, mode: str) -> None:
    """A protocol-relative request target (`//evil.example/...`) is a path here, never where a solver is sent."""
    front, _ = request.getfixturevalue(f"{mode}_front")
    with front.client(**dict(browser_headers())) as browser:
        page = browser.get(front.https + "//evil.example/landing")
        answer = submit(browser, read_challenge(page.text))
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location


def test_in_auth_mode_nginxs_own_403_stays_nginxs_and_gates_pages_are_internal(
    tmp_path: Path, auth_front: tuple[Front, GateProcess], certificate: Certificate
) -> None:
    """A directory without an index is nginx's 403, not gate's "Access denied"; the page locations answer only
    through error_page."""
    _, gate = auth_front
    site = tmp_path / "site"
    (site / "feed").mkdir(parents=True)  # /feed/ is open to everyone by the shipped rules: gate allows it
    with (
        front_of(tmp_path / "nginx", "gate-auth.conf", gate.port, certificate, site) as front,
        front.client(**{"User-Agent": "curl/8.5.0"}) as client,
    ):
        forbidden = client.get("/feed/")
        direct = [client.get(path).status_code for path in ("/.gate/refusal", "/.gate/challenge")]
    assert forbidden.status_code == 403
    assert "Access denied" not in forbidden.text and "nginx" in forbidden.text
    assert direct == [404, 404]


def test_proxy_mode_keeps_connections_to_gate_open_and_clears_auth_mode_headers(
    tmp_path: Path, certificate: Certificate, nginx: Nginx
) -> None:
    """A stand-in for gate records what nginx sends it: no `Connection: close` (the keepalive pool is used), and
    none of the headers a client wrote to describe a request to gate in auth mode."""
    seen: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({name.lower(): value for name, value in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return None

    written = {"X-Original-URI": "/forged", "X-Gate-Refused": "ban", "X-Forwarded-Method": "PUT"}
    with (
        http_server(Recorder) as recorder,
        front_of(
            tmp_path / "nginx", "gate-proxy.conf", int(recorder.rsplit(":", 1)[1]), certificate, nginx.root
        ) as front,
        front.client(**written) as client,
    ):
        for _ in range(3):
            assert client.get("/page.html").status_code == 200
    assert len(seen) == 3
    assert all(headers.get("connection", "").lower() != "close" for headers in seen)
    assert not any({"x-original-uri", "x-gate-refused", "x-forwarded-method"} & set(headers) for headers in seen)
