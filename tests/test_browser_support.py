"""The real-browser test support: Debian's Chromium through Playwright, and the captured header profiles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.browser import chromium_path, launched_chromium
from tests.support.http_server import http_server

HEADERS_DIR = Path(__file__).parent / "data" / "headers"

PAGES = {
    "/": (
        "text/html; charset=utf-8",
        b'<!doctype html><html><head><title>not run</title><script src="/app.js"></script></head>'
        b"<body>browser test</body></html>",
    ),
    "/app.js": ("text/javascript", b'document.title = "script ran: " + (6 * 7);'),
}


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        content_type, body = PAGES.get(self.path, ("text/plain", b"not found"))
        self.send_response(200 if self.path in PAGES else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[str]:
    with http_server(PageHandler) as url:
        yield url


def test_chromium_is_debians() -> None:
    assert Path(chromium_path()).name == "chromium"


def test_launched_chromium_runs_page_scripts(page_server: str) -> None:
    with launched_chromium() as browser:
        page = browser.new_page()
        page.goto(page_server + "/", timeout=10_000)
        page.wait_for_function("document.title !== 'not run'", timeout=5_000)
        assert page.title() == "script ran: 42"
        assert "HeadlessChrome/" in page.evaluate("navigator.userAgent")
        assert browser.is_connected()
    assert not browser.is_connected()


HEADER_FILES = sorted(HEADERS_DIR.glob("*.json"))


def test_header_captures_exist() -> None:
    names = {path.stem for path in HEADER_FILES}
    expected = {
        "chromium-navigation",
        "chromium-click-navigation",
        "chromium-stylesheet",
        "chromium-image",
        "chromium-script",
        "chromium-fetch",
        "chromium-form-post",
        "curl",
        "wget",
        "python-httpx",
        "aiohttp",
        "python-urllib",
        "python-requests",
    }
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", HEADER_FILES, ids=lambda path: path.name)
def test_header_capture_is_well_formed(path: Path) -> None:
    data = json.loads(path.read_text())
    for key in ("client", "captured", "url_origin", "http_version", "method"):
        assert isinstance(data[key], str) and data[key], key
    headers = data["headers"]
    assert headers, "no headers"
    assert all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair) for pair in headers)
    assert any(name.lower() == "user-agent" and value for name, value in headers)
