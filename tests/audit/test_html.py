"""The audit's HTML page: everything from the logs escaped, every section there, and a real Chromium draws it."""

from __future__ import annotations

import base64
import html
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from gate.audit.html import ACTION_COLOURS, render_html
from tests.support.browser import launched_chromium

ACTIONS = ["allow", "challenge", "deny", "terms", "throttle"]
NASTY = ["<script>alert(1)</script>", '"onmouseover=alert(2) x="', "</svg><img src=x onerror=alert(3)>", "'&amp;\x00"]
HEADINGS = [
    "gate audit",
    "What gate would have done",
    "Upstream load saved",
    "Requests per hour by action",
    "Requests per hour by agent class",
    "Agent classes and actions",
    "Top agents",
    "AI crawlers",
    "Top networks",
    "Top paths",
    "Fetched by AI crawlers",
    "Fetched by HTTP libraries",
    "Banned clients",
    "robots.txt violators",
    "Malformed lines",
]


def hourly(hours: int, classes: list[str], seed: int = 7) -> list[dict[str, Any]]:
    """Made-up traffic: a daily cycle of browsers, a steady AI crawl, a burst of a scraper; hour 5 is missing."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    entries = []
    for index in range(hours):
        if index == 5:
            continue  # an hour without requests: the chart still shows it, empty
        when = start + timedelta(hours=index)
        day = 1 + (8 <= when.hour <= 22)
        per_class = {name: rng.randint(0, 6) * day for name in classes}
        per_class[classes[0]] += 20 * day
        if 30 <= index < 34:
            per_class[classes[-1]] += 60
        actions = {
            "allow": per_class[classes[0]],
            "challenge": sum(per_class.values()) - per_class[classes[0]] - per_class[classes[1]] - 3,
            "terms": per_class[classes[1]],
            "deny": 1,
            "throttle": 2,
        }
        entries.append({"hour": when.strftime("%Y-%m-%dT%H:00:00Z"), "actions": actions, "classes": per_class})
    return entries


def realistic() -> dict[str, Any]:
    classes = ["browser", "ai-crawler", "search-engine", "http-library", NASTY[0]]
    hours = hourly(48, classes)
    by_action = {action: sum(entry["actions"][action] for entry in hours) for action in ACTIONS}
    requests = sum(by_action.values())
    by_class = {name: {action: 0 for action in ACTIONS} for name in classes}
    for entry in hours:  # spread each class over actions roughly as the policy would
        for name, count in entry["classes"].items():
            action = {"browser": "allow", "ai-crawler": "terms"}.get(name, "challenge")
            by_class[name][action] += count
    agents = [
        {
            "agent": "Chrome 131",
            "agent_class": "browser",
            "requests": 900,
            "bytes": 40_000_000,
            "actions": {"allow": 900},
        },
        {
            "agent": "GPTBot",
            "agent_class": "ai-crawler",
            "requests": 120,
            "bytes": 3_000_000,
            "actions": {"terms": 120},
        },
        {
            "agent": "python-requests",
            "agent_class": "http-library",
            "requests": 77,
            "bytes": 1_500,
            "actions": {"challenge": 70, "throttle": 7},
        },
        {"agent": NASTY[1], "agent_class": NASTY[0], "requests": 9, "bytes": 9, "actions": {NASTY[2]: 9}},
    ]
    return {
        "generated": "2026-11-28T07:40:00Z",
        "files": ["access.log", "access.log.1", NASTY[2]],
        "rules": "shipped rules, version 7c49b64a79ad",
        "lines": {
            "total": 1200,
            "parsed": 1190,
            "malformed": 10,
            "malformed_samples": [
                {"file": "access.log", "line": 17, "reason": "not a combined or common log line", "sample": NASTY[0]},
                {"file": NASTY[2], "line": 18, "reason": NASTY[1], "sample": "GET /" + "A" * 5000},
                {"file": "access.log", "line": 99, "reason": "binary", "sample": NASTY[3]},
            ],
        },
        "period": {"first": "2026-11-20T00:00:03Z", "last": "2026-11-21T23:59:58Z"},
        "totals": {"requests": requests, "bytes": 53_451_234},
        "actions": ACTIONS,
        "by_action": {action: {"requests": count, "bytes": count * 30_000} for action, count in by_action.items()},
        "by_class": by_class,
        "agents": agents,
        "ai_crawlers": [
            {**agents[1], "robots_violations": 4},
            {
                "agent": "Bytespider",
                "agent_class": "ai-crawler",
                "requests": 3_456,
                "bytes": 2_147_483_648,
                "actions": {"deny": 3_456},
                "robots_violations": 33,
            },
        ],
        "networks": [
            {
                "network": "203.0.113.0/24",
                "requests": 400,
                "bytes": 1_200_000,
                "actions": {"throttle": 300, "allow": 100},
            },
            {"network": "2001:db8::/48", "requests": 120, "bytes": 5_000, "actions": {"terms": 120}},
        ],
        "paths": {
            "ai": [
                {"path": "/essays/one.html", "requests": 40},
                {"path": "/" + NASTY[2], "requests": 7},
                {"path": "/very/long/" + "x" * 600, "requests": 2},
            ],
            "libraries": [{"path": "/", "requests": 12}, {"path": "/feed.xml", "requests": 3}],
        },
        "hourly": hours,
        "banned": [
            {"ip": "203.0.113.9", "at": "2026-11-21T10:00:00Z", "limit": "per-client"},
            {"ip": "2001:db8::1", "at": "2026-11-21T11:30:00Z", "limit": NASTY[1]},
        ],
        "robots_violators": [{"agent": "Bytespider", "network": "198.51.100.0/24", "violations": 33}],
        "saved": {"requests": 490, "bytes": 13_451_234, "requests_share": 0.41, "bytes_share": 0.25},
        "unverified_claims": 5,
    }


def empty() -> dict[str, Any]:
    return {
        "generated": "2026-11-28T07:40:00Z",
        "files": ["empty.log"],
        "rules": "shipped rules, version 7c49b64a79ad",
        "lines": {"total": 0, "parsed": 0, "malformed": 0, "malformed_samples": []},
        "period": {"first": None, "last": None},
        "totals": {"requests": 0, "bytes": 0},
        "actions": ACTIONS,
        "by_action": {action: {"requests": 0, "bytes": 0} for action in ACTIONS},
        "by_class": {},
        "agents": [],
        "ai_crawlers": [],
        "networks": [],
        "paths": {"ai": [], "libraries": []},
        "hourly": [],
        "banned": [],
        "robots_violators": [],
        "saved": {"requests": 0, "bytes": 0, "requests_share": 0.0, "bytes_share": 0.0},
        "unverified_claims": 0,
    }


def text_of(document: str) -> str:
    """The document's text, tags stripped and entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", document)).split())


def test_strings_from_the_logs_are_escaped_everywhere() -> None:
    document = render_html(realistic())
    assert "<script" not in document.lower()
    assert "onerror" not in document.replace(html.escape(NASTY[2]), "")  # only ever inside escaped text
    assert '"onmouseover' not in document
    assert "<img" not in document
    assert document.count("<svg") == document.count("</svg>") == 4
    assert "\x00" not in document.replace(html.escape(NASTY[3]), "")  # NUL only inside escaped text, never raw markup
    for nasty in NASTY:
        assert html.escape(nasty) in document
    assert html.escape(NASTY[0]) in document.split("<svg")[2]  # an agent class in a chart's legend and tooltips


def test_every_section_and_its_key_numbers() -> None:
    report = realistic()
    document = render_html(report)
    text = text_of(document)
    for heading in HEADINGS:
        assert f">{heading}<" in document, heading
    requests = report["totals"]["requests"]
    assert f"{requests:,}" in text
    assert "1,200 read, 1,190 parsed, 10 malformed" in text
    assert "2026-11-20T00:00:03Z to 2026-11-21T23:59:58Z" in text
    assert "shipped rules, version 7c49b64a79ad" in text
    assert "51.0 MiB" in text  # total bytes, in human units
    assert "490" in text and "41.0%" in text and "12.8 MiB" in text and "25.0%" in text  # load saved
    share = 100 * report["by_action"]["allow"]["requests"] / requests
    assert f"{share:.1f}%" in text
    assert "GPTBot" in text and "2.9 MiB" in text and "2.0 GiB" in text and "3,456" in text
    assert "33" in text and "robots.txt violations" in text
    assert "203.0.113.0/24" in text and "2001:db8::/48" in text and "at least" in text and "lower bounds" in text
    assert "/essays/one.html" in text and "/feed.xml" in text
    assert "203.0.113.9" in text and "per-client" in text
    assert "198.51.100.0/24" in text
    assert "not a combined or common log line" in text and "3 of 10 shown" in text
    for action in ACTIONS:
        assert f'fill="{ACTION_COLOURS[action]}"' in document  # every action drawn in the hourly chart


def test_samples_and_labels_are_truncated() -> None:
    document = render_html(realistic())
    sample = "GET /" + "A" * 5000
    assert sample[:199] + "…" in document
    assert sample[:200] not in document
    assert "x" * 488 in document and "x" * 489 not in document  # the long path: its tooltip has 500 characters
    assert "/very/long/" + "x" * 42 + "…<" in document  # and its label 54


def test_hours_without_requests_are_empty_bars_and_long_periods_become_days() -> None:
    report = realistic()
    document = render_html(report)
    by_action = document.split("<svg")[1]
    x = {
        hour: float(match.group(1))
        for hour in (3, 4, 5, 6)
        if (match := re.search(rf'<rect x="([0-9.]+)"[^>]*><title>2026-11-20 0{hour}:00 UTC', by_action))
    }
    assert set(x) == {3, 4, 6}  # the hour without requests has no segment...
    assert x[6] - x[4] == pytest.approx(2 * (x[4] - x[3]), abs=0.02)  # ...but keeps its slot

    long = {**report, "hourly": hourly(24 * 30, ["browser", "ai-crawler"])}
    document = render_html(long)
    assert ">Requests per day by action<" in document and "per hour" not in document
    by_action = document.split("<svg")[1]
    assert by_action.count("<rect") <= 30 * len(ACTIONS)
    assert "<title>2026-12-19 UTC" in by_action and "2026-11-20 01:00" not in by_action


def test_many_classes_share_one_other_series() -> None:
    classes = [f"class-{index}" for index in range(14)]
    report = {
        **realistic(),
        "hourly": hourly(24, classes),
        "by_class": {name: {"allow": 20 - int(name[6:])} for name in classes},
    }
    document = render_html(report)
    by_class = document.split("Requests per hour by agent class")[1].split("</section>")[0]
    assert ">other</li>" in by_class
    assert ">class-13</li>" not in by_class
    assert "class-13" in document.split("Agent classes and actions")[1]  # the table still lists every class


def test_an_empty_report_renders() -> None:
    document = render_html(empty())
    text = text_of(document)
    for heading in HEADINGS:
        assert heading in text, heading
    assert text.count("No data.") == 4  # two stacked charts, two path charts
    assert "no requests" in text and "0 read, 0 parsed, 0 malformed" in text
    assert "<svg" not in document
    assert "nan" not in text.lower().split() and "inf" not in text.lower().split()


# In a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as chromium:
        yield chromium


def load(browser: Browser, document: str, path: Path, *, dark: bool = False) -> tuple[Page, list[str]]:
    """The page opened from a file, with every console error, page error and network request collected."""
    path.write_text(document, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="dark" if dark else "light")
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: problems.append(request.url) if request.url != path.as_uri() else None)
    page.goto(path.as_uri())
    return page, problems


COUNT_COLOURS = """async ([data, wanted]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + data;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += 4) seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  return [seen.size, wanted.filter((hex) => seen.has(parseInt(hex.slice(1), 16)))];
}"""


def colours_in(browser: Browser, png: bytes, wanted: list[str]) -> tuple[int, list[str]]:
    """How many distinct colours a PNG has and which of `wanted` are among them, decoded by a blank page."""
    page = browser.new_page()
    try:
        count, found = page.evaluate(COUNT_COLOURS, [base64.b64encode(png).decode(), wanted])
    finally:
        page.close()
    return int(count), list(found)


def test_chromium_draws_the_report(browser: Browser, tmp_path: Path) -> None:
    page, problems = load(browser, render_html(realistic()), tmp_path / "report.html")
    assert page.title().startswith("gate audit: access.log")
    assert page.locator("script").count() == 0
    assert page.get_by_text(NASTY[0], exact=True).first.is_visible()  # shown as text, not run
    assert page.locator("svg").count() == 4
    rects = page.locator("svg rect")
    assert rects.count() > 100
    for index in (0, rects.count() // 2, rects.count() - 1):
        box = rects.nth(index).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
    for chart in page.locator("svg.chart").all():
        box = chart.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 40
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280  # long agents, paths and samples wrap instead of widening the page

    screenshot = page.screenshot(path=tmp_path / "report.png", full_page=True)
    blank = browser.new_page(viewport={"width": 1280, "height": 900})
    blank_screenshot = blank.screenshot(full_page=True)
    blank.close()
    assert len(screenshot) > 10 * len(blank_screenshot)
    count, found = colours_in(browser, screenshot, list(ACTION_COLOURS.values()))
    assert count > 50
    assert sorted(found) == sorted(ACTION_COLOURS.values())  # every action's colour painted in the charts
    assert problems == []

    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.close()
    dark, problems = load(browser, render_html(realistic()), tmp_path / "dark.html", dark=True)
    assert dark.evaluate("getComputedStyle(document.body).backgroundColor") != light
    dark.screenshot(path=tmp_path / "dark.png", full_page=True)
    assert problems == []
    dark.close()


def test_chromium_draws_an_empty_report(browser: Browser, tmp_path: Path) -> None:
    page, problems = load(browser, render_html(empty()), tmp_path / "empty.html")
    assert page.locator(".nodata").filter(has_text="No data.").count() == 4
    assert page.locator("h2").count() == len(HEADINGS) - 4  # h1, two h3 under "Top paths" and the saved-load h3
    page.screenshot(path=tmp_path / "empty.png", full_page=True)
    assert problems == []
    page.close()
