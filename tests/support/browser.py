"""A real headless Chromium for tests: Debian's `chromium` package, driven by Playwright's sync API.

Playwright only drives the browser here; it never downloads one (`playwright install` cannot reach its CDN from
this network). `make system-deps` installs the Debian package, `make test` does both that and the Python deps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

DEBIAN_CHROMIUM = "/usr/bin/chromium"

# Flags that let Chromium start as root in this closed network: no sandbox (root), no GPU, and none of the
# background connections (component updates, sync, field trials, QUIC probes) that would be refused here.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """Debian's Chromium: /usr/bin/chromium, else `chromium` on PATH."""
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    raise FileNotFoundError(
        "Debian's chromium is not installed (no /usr/bin/chromium, no `chromium` on PATH): "
        "run `make test` (or `make system-deps`), which installs it with apt-get"
    )


@contextmanager
def launched_chromium(
    *, headless: bool = True, extra_args: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> Iterator[Browser]:
    """A Browser on Debian's Chromium with a fresh temporary profile; closes it and stops Playwright on exit.

    headless=False needs an X display: run under `xvfb-run`, or pass env with DISPLAY set to a running Xvfb.
    """
    executable = chromium_path()
    launch_env: dict[str, str | float | bool] | None = dict(env) if env is not None else None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=headless,
            args=[*CHROMIUM_ARGS, *extra_args],
            timeout=30_000,
            env=launch_env,
        )
        try:
            yield browser
        finally:
            browser.close()
