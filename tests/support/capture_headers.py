"""Captures real clients' request headers, exactly as sent, into JSON files (tests/data/headers/).

Run as `python -m tests.support.capture_headers OUTDIR [--no-headful] [--requests-venv DIR]`.

A raw asyncio server on 127.0.0.1 (free port) reads each request's header block itself, so header order, the
case of names and duplicates are kept exactly as they came over the wire. It serves a small page that loads a
stylesheet, an image and a script; the script runs a same-origin fetch() and a cross-origin one (to
http://localhost on the same port) with a custom header, which costs a CORS preflight. Playwright then clicks a
link (a navigation with user activation) and submits a form (a POST navigation). Debian's Chromium runs that
page headless, and headful under Xvfb when Xvfb is installed. HTTP libraries (curl, wget, httpx, aiohttp,
urllib, requests) fetch the same server once each. One JSON file per client and request kind:

    {"client": ..., "captured": "YYYY-MM-DD", "url_origin": ..., "http_version": "1.1", "method": ...,
     "path": ..., "headers": [[name, value], ...]}

requests is installed into a throwaway venv (default /tmp/gate-capture-requests-venv), never the project's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.browser import chromium_path, launched_chromium

TRUSTWORTHY = "(a potentially trustworthy origin, so client hints and Sec-Fetch-* are sent)"


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    target: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>capture</title>
<link rel="stylesheet" href="/style.css">
</head><body>
<h1>header capture</h1>
<img src="/image.png" alt="" width="1" height="1">
<p><a id="link" href="/next">next page</a></p>
<script src="/script.js"></script>
</body></html>
"""

SCRIPT = """document.title = "script ran";
Promise.all([
  fetch("/api/same-origin").then((r) => r.text()),
  fetch("http://localhost:{port}/api/cross-origin", {{headers: {{"X-Probe": "1"}}}}).then((r) => r.text()),
]).then(() => {{ window.fetchesDone = true; }}, (error) => {{ window.fetchesDone = "error: " + error; }});
"""

NEXT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>next</title></head><body>
<form method="post" action="/form"><input name="q" value="hello"><button id="submit" type="submit">send</button></form>
</body></html>
"""

DONE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>done</title></head><body>done</body></html>
"""


class HeaderServer:
    """Raw HTTP/1.1 server on 127.0.0.1 in a background thread; records every request in arrival order."""

    def __init__(self) -> None:
        self.port = 0
        self._requests: list[CapturedRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="header-server", daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self) -> list[CapturedRequest]:
        with self._lock:
            taken, self._requests = self._requests, []
        return taken

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers: list[tuple[str, str]] = []
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers.append((name, value.strip(" \t")))
                lower = {name.lower(): value for name, value in headers}
                if "chunked" in lower.get("transfer-encoding", "").lower():
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(lower.get("content-length", "0") or "0"))
                with self._lock:
                    self._requests.append(CapturedRequest(method, target, version.removeprefix("HTTP/"), headers, body))
                status, extra, payload = self._respond(method, target.split("?", 1)[0], lower)
                close = version == "HTTP/1.0" or lower.get("connection", "").lower() == "close"
                response = [f"HTTP/1.1 {status}", f"Content-Length: {len(payload)}", "Cache-Control: no-store"]
                response += [f"{name}: {value}" for name, value in extra]
                response.append("Connection: close" if close else "Connection: keep-alive")
                writer.write(("\r\n".join(response) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if close:
                    return
        finally:
            self._connections.discard(task)
            writer.close()

    def _respond(self, method: str, path: str, headers: dict[str, str]) -> tuple[str, list[tuple[str, str]], bytes]:
        html = ("Content-Type", "text/html; charset=utf-8")
        cors = [
            ("Access-Control-Allow-Origin", headers.get("origin", "*")),
            ("Access-Control-Allow-Headers", "X-Probe"),
            ("Access-Control-Allow-Methods", "GET"),
            ("Vary", "Origin"),
        ]
        if method == "OPTIONS":
            return "204 No Content", cors, b""
        if path == "/":
            return "200 OK", [html], PAGE.encode()
        if path == "/style.css":
            return "200 OK", [("Content-Type", "text/css")], b"body { font-family: sans-serif; }\n"
        if path == "/image.png":
            return "200 OK", [("Content-Type", "image/png")], _png_1x1()
        if path == "/script.js":
            return "200 OK", [("Content-Type", "text/javascript")], SCRIPT.format(port=self.port).encode()
        if path.startswith("/api/"):
            return "200 OK", [("Content-Type", "application/json"), *cors], b'{"ok": true}'
        if path == "/next":
            return "200 OK", [html], NEXT_PAGE.encode()
        if path == "/form" and method == "POST":
            return "200 OK", [html], DONE_PAGE.encode()
        if path.startswith("/lib/"):
            return "200 OK", [("Content-Type", "text/plain")], b"ok\n"
        return "404 Not Found", [("Content-Type", "text/plain")], b"not found\n"


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size + 2)


@contextmanager
def header_server() -> Iterator[HeaderServer]:
    server = HeaderServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# What each browser request is, by method and path: (file name suffix, origin the request went to).
BROWSER_KINDS: dict[tuple[str, str], str] = {
    ("GET", "/"): "navigation",
    ("GET", "/next"): "click-navigation",
    ("POST", "/form"): "form-post",
    ("GET", "/style.css"): "stylesheet",
    ("GET", "/image.png"): "image",
    ("GET", "/script.js"): "script",
    ("GET", "/api/same-origin"): "fetch",
    ("OPTIONS", "/api/cross-origin"): "fetch-preflight",
    ("GET", "/api/cross-origin"): "fetch-cross-origin",
    ("GET", "/favicon.ico"): "favicon",
}


def record(client: str, request: CapturedRequest, *, browser: bool = True) -> dict[str, object]:
    host = next((value for name, value in request.headers if name.lower() == "host"), "127.0.0.1")
    origin = "http://localhost" if host.startswith("localhost") else "http://127.0.0.1"
    return {
        "client": client,
        "captured": datetime.date.today().isoformat(),
        "url_origin": f"{origin} {TRUSTWORTHY}" if browser else origin,
        "http_version": request.http_version,
        "method": request.method,
        "path": request.target,
        "headers": [[name, value] for name, value in request.headers],
    }


def write_record(outdir: Path, name: str, data: dict[str, object]) -> None:
    """JSON with one header pair per line, so diffs between captures stay readable."""
    headers = data["headers"]
    assert isinstance(headers, list)
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in data.items() if key != "headers"]
    pairs = ",\n".join(f"    {json.dumps(pair)}" for pair in headers)
    (outdir / f"{name}.json").write_text("{\n" + "\n".join(lines) + '\n  "headers": [\n' + pairs + "\n  ]\n}\n")


def _debian_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def capture_browser(server: HeaderServer, outdir: Path, *, headful_display: str | None = None) -> list[str]:
    """One browser run over the test page; returns the names of the files written."""
    playwright_version = importlib.metadata.version("playwright")
    mode = f"headful under Xvfb ({headful_display})" if headful_display else "headless"
    prefix = "chromium-headful" if headful_display else "chromium"
    env = {**os.environ, "DISPLAY": headful_display} if headful_display else None
    server.take()
    with launched_chromium(headless=headful_display is None, env=env) as browser:
        client = f"Debian chromium {_debian_version('chromium')}, {mode} via Playwright {playwright_version}"
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_function("window.fetchesDone !== undefined", timeout=10_000)
        done = page.evaluate("window.fetchesDone")
        if done is not True:
            raise RuntimeError(f"the page's fetches failed: {done}")
        details = page.evaluate(
            "({ua: navigator.userAgent, brands: navigator.userAgentData && navigator.userAgentData.brands,"
            " webdriver: navigator.webdriver, languages: navigator.languages})"
        )
        page.click("#link")
        page.wait_for_url("**/next")
        page.click("#submit")
        page.wait_for_url("**/form")
        page.wait_for_load_state("load")
        time.sleep(0.3)  # a late favicon request, if any
    print(f"{prefix}: {client}\n  in page: {details}")
    written: list[str] = []
    for request in server.take():
        kind = BROWSER_KINDS.get((request.method, request.target))
        if kind is None:
            print(f"  unclassified request: {request.method} {request.target}")
            continue
        name = f"{prefix}-{kind}"
        write_record(outdir, name, record(client, request))
        written.append(name)
    return written


@contextmanager
def xvfb() -> Iterator[str | None]:
    """A private Xvfb display (":N"), or None when Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        yield None
        return
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as display_pipe:
            number = display_pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not report a display")
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _first_line(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[0].strip()


def _requests_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "requests"], check=True)
    return python


def capture_libraries(server: HeaderServer, outdir: Path, requests_venv: Path) -> list[str]:
    def url(name: str) -> str:
        return f"{server.url}/lib/{name}"

    def run(command: list[str]) -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=30)

    def with_aiohttp() -> None:
        import aiohttp

        async def get() -> None:
            async with aiohttp.ClientSession() as session, session.get(url("aiohttp")) as response:
                await response.read()

        asyncio.run(get())

    def with_httpx() -> None:
        import httpx

        httpx.get(url("python-httpx")).raise_for_status()

    def with_urllib() -> None:
        with urllib.request.urlopen(url("python-urllib"), timeout=10) as response:
            response.read()

    import aiohttp
    import httpx

    python = _requests_python(requests_venv)
    requests_version = subprocess.run(
        [str(python), "-c", "import requests; print(requests.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    python_version = sys.version.split()[0]
    curl = " ".join(_first_line(["curl", "--version"]).split()[:2])
    wget = " ".join(_first_line(["wget", "--version"]).split()[:3])
    clients: list[tuple[str, str, Callable[[], None]]] = [
        (
            "curl",
            f"{curl} (Debian curl {_debian_version('curl')}): curl -s URL",
            lambda: run(["curl", "-s", url("curl")]),
        ),
        (
            "wget",
            f"{wget} (Debian wget {_debian_version('wget')}): wget -qO- URL",
            lambda: run(["wget", "-qO-", url("wget")]),
        ),
        ("python-httpx", f"python-httpx {httpx.__version__} (Python {python_version}): httpx.get(URL)", with_httpx),
        (
            "aiohttp",
            f"aiohttp {aiohttp.__version__} (Python {python_version}): ClientSession().get(URL)",
            with_aiohttp,
        ),
        ("python-urllib", f"Python {python_version} urllib: urllib.request.urlopen(URL)", with_urllib),
        (
            "python-requests",
            f"python-requests {requests_version} (Python {python_version}, throwaway venv): requests.get(URL)",
            lambda: run([str(python), "-c", f"import requests; requests.get({url('python-requests')!r})"]),
        ),
    ]
    written: list[str] = []
    for name, client, fetch in clients:
        server.take()
        fetch()
        requests = server.take()
        if len(requests) != 1:
            raise RuntimeError(f"{name}: expected one request, got {len(requests)}")
        write_record(outdir, name, record(client, requests[0], browser=False))
        written.append(name)
        print(f"{name}: {client}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--no-headful", action="store_true", help="skip headful Chromium under Xvfb")
    parser.add_argument("--requests-venv", type=Path, default=Path("/tmp/gate-capture-requests-venv"))
    args = parser.parse_args(argv)
    outdir: Path = args.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    chromium_path()  # fail early, with the hint to run `make test`
    started = time.monotonic()
    written: list[str] = []
    with header_server() as server:
        written += capture_libraries(server, outdir, args.requests_venv)
        written += capture_browser(server, outdir)
        if not args.no_headful:
            with xvfb() as display:
                if display is None:
                    print("no Xvfb (apt-get install xvfb): skipping headful Chromium")
                else:
                    written += capture_browser(server, outdir, headful_display=display)
    print(f"wrote {len(written)} files to {outdir} in {time.monotonic() - started:.1f}s: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
