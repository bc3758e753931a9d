"""The challenge in a real browser: Debian's Chromium, headless, through Playwright, against gate and nginx.

With the shipped rules a headless Chromium is a `headless-browser` and gets a 20-bit challenge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.support.browser import CHROMIUM_ARGS, chromium_path, launched_chromium
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[GateProcess]:
    process = start_gate(tmp_path_factory.mktemp("protected"), nginx.url, "--contact", "owner@blog.example")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as chromium:
        yield chromium


def test_a_browser_solves_lands_on_its_page_and_browses_on(browser: Browser, protected: GateProcess) -> None:
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    started = time.monotonic()
    page.goto(protected.url + "/start.html?from=test")
    assert "gate-challenge" in page.content() or page.url.endswith("/start.html?from=test")
    page.wait_for_url(protected.url + "/start.html?from=test", timeout=20_000)
    page.wait_for_selector("#next")
    assert time.monotonic() - started < 15
    assert any(cookie["name"] == "gate_pass" and cookie["httpOnly"] for cookie in context.cookies())
    page.click("#next")
    page.wait_for_url(protected.url + "/next.html")
    assert page.title() == "next"  # no second challenge
    assert not violations
    context.close()


def test_without_javascript_the_refresh_path_lets_the_browser_in(browser: Browser, protected: GateProcess) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(protected.url + "/next.html")
    assert page.title() != "next"  # the challenge page first
    page.wait_for_url(protected.url + "/next.html", timeout=20_000)
    page.wait_for_selector("#back")
    assert any(cookie["name"] == "gate_pass" for cookie in context.cookies())
    context.close()


def test_a_browser_that_blocks_cookies_is_told_so(browser: Browser, tmp_path: Path, protected: GateProcess) -> None:
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    preferences = {"profile": {"default_content_setting_values": {"cookies": 2}}}  # 2 = block
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    context = browser.browser_type.launch_persistent_context(
        str(profile), executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
    )
    page = context.new_page()
    page.goto(protected.url + "/start.html")
    page.wait_for_url(protected.url + "/.gate/challenge/verify", timeout=20_000)
    assert "cookie" in page.inner_text("body").lower()
    assert not any(cookie["name"] == "gate_pass" for cookie in context.cookies())
    context.close()
