"""`gate audit` on synthetic logs with a known mix: browsers, declared AI crawlers, an impostor Googlebot, a single
address scraping at 40 requests a second, and a scraper rotating through a /24; plain, gzip and damaged input."""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.audit.html import render_html
from gate.audit.logs import COMBINED, DEFAULT_FORMATS, MAX_LINE, LogFormat, read_entries
from gate.audit.report import TopCounter
from gate.audit.run import audit
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.store.memory import MemoryStore
from gate.verify import Verifier
from gate.verify.directory import KeyDirectories
from gate.verify.rdns import ReverseDns
from tests.policy.helpers import CHROME_UA, CLAUDEBOT_UA, GOOGLEBOT_UA, GPTBOT_UA
from tests.policy.test_engine import an_address_listed_in
from tests.support.dns_server import Zone, dns_server

START = 1_795_800_000  # 2026-11-27 14:40 UTC
SCRAPER = "203.0.113.9"
IMPOSTOR = "192.0.2.50"


def line(ip: str, moment: float, path: str, user_agent: str, status: int = 200, size: int = 1000) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(moment))
    return f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" {status} {size} "-" "{user_agent}"'


def known_mix() -> list[str]:
    lines = []
    for browser in range(1, 11):  # 10 readers, 20 pages each, 30 s apart
        lines += [
            line(f"198.51.100.{browser}", START + 30 * page, f"/essays/{page}.html", CHROME_UA) for page in range(20)
        ]
    gptbot = an_address_listed_in("verified/openai-gptbot")
    lines += [line(gptbot, START + 10 * page, f"/essays/{page}.html", GPTBOT_UA, size=5000) for page in range(30)]
    lines += [line("198.51.100.200", START + 20 * page, f"/essays/{page}.html", CLAUDEBOT_UA) for page in range(15)]
    lines += [line(IMPOSTOR, START + 5 * page, f"/essays/{page}.html", GOOGLEBOT_UA) for page in range(12)]
    lines += [line(SCRAPER, START + page / 40, f"/p/{page}", CHROME_UA, size=2000) for page in range(2400)]
    lines += [
        line(f"198.18.0.{host}", START + host + round_ / 10, f"/list?page={host}", "python-requests/2.32.3")
        for host in range(256)
        for round_ in range(3)
    ]
    lines += ["\x00\x01 binary junk", "not a log line at all", '198.51.100.1 - - [garbage] "GET / HTTP/1.1" 200 1']
    return lines


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


@pytest.fixture(scope="module")
def mix_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "access.log"
    path.write_text("\n".join(known_mix()) + "\n")
    return path


async def report_of(paths: list[Path], policy: Policy, verifier: Verifier | None = None) -> dict[str, Any]:
    return (await audit(paths, policy, DEFAULT_FORMATS, "shipped rules", verifier)).to_json()


def of(report: dict[str, Any], key: str, name: str, field: str) -> dict[str, Any]:
    return next(item for item in report[key] if item[field] == name)


async def test_a_known_mix_is_counted_as_gate_would_have_decided(shipped: Policy, mix_log: Path) -> None:
    report = await report_of([mix_log], shipped)
    assert report["lines"] == report["lines"] | {"total": 3428, "parsed": 3425, "malformed": 3}
    assert len(report["lines"]["malformed_samples"]) == 3
    browsers = of(report, "networks", "198.51.100.0/24", "network")
    assert browsers["actions"]["challenge"] == 10  # each reader's first page; the pass covers the rest
    assert report["passed"] >= 190
    gptbot = of(report, "ai_crawlers", "GPTBot", "agent")
    assert (gptbot["requests"], gptbot["actions"], gptbot["bytes"]) == (30, {"terms": 30}, 150_000)
    assert gptbot["robots_violations"] == 30  # gate's robots.txt opens only the terms to AI crawlers
    assert of(report, "ai_crawlers", "ClaudeBot", "agent")["actions"] == {"terms": 15}
    googlebot = of(report, "agents", "Googlebot", "agent")
    assert googlebot["actions"] == {"challenge": 12}  # not verifiable offline: unconfirmed, challenged
    assert report["unverified_claims"] == 12
    assert report["by_class"]["http-library"] == {"challenge": 768}
    assert report["by_class_bytes"]["ai-crawler"] == {"terms": 30 * 5000 + 15 * 1000}
    rotating = of(report, "networks", "198.18.0.0/24", "network")
    assert rotating["requests"] == 768
    scraper = report["networks"][0]
    assert (scraper["network"], scraper["requests"]) == ("203.0.113.0/24", 2400)
    assert scraper["actions"].get("throttle", 0) > 0  # over its limit, then banned
    assert [ban["ip"] for ban in report["banned"]] == [SCRAPER]
    assert report["banned"][0]["limit"] == "per-client"
    saved = report["saved"]
    not_forwarded = sum(
        report["by_action"][action]["requests"] for action in ("challenge", "deny", "terms", "throttle")
    )
    assert saved["requests"] == not_forwarded and 0 < saved["requests_share"] < 1
    assert report["totals"]["requests"] == 3425
    assert sum(hour["actions"].get("terms", 0) for hour in report["hourly"]) == 45


async def test_reverse_dns_turns_the_impostor_googlebot_into_a_denial(shipped: Policy, mix_log: Path) -> None:
    zone = Zone()  # knows no PTR record for the impostor's address
    with dns_server(zone) as resolver:
        store = MemoryStore()
        verifier = Verifier(store, ReverseDns(store, resolver, 2.0, 2.0), KeyDirectories(1.0))
        try:
            report = await report_of([mix_log], shipped, verifier)
        finally:
            await verifier.close()
    assert of(report, "agents", "Googlebot", "agent")["actions"] == {"deny": 12}
    assert report["unverified_claims"] == 0


async def test_a_gzip_log_reads_like_the_plain_one(shipped: Policy, mix_log: Path, tmp_path: Path) -> None:
    packed = tmp_path / "access.log.1.gz"
    packed.write_bytes(gzip.compress(mix_log.read_bytes()))
    plain, zipped = await report_of([mix_log], shipped), await report_of([packed], shipped)
    assert zipped["by_action"] == plain["by_action"] and zipped["lines"]["total"] == plain["lines"]["total"]


def damaged_lines() -> Iterator[bytes]:
    good = line("198.51.100.7", START, "/", CHROME_UA).encode()
    yield good
    yield bytes(byte for byte in range(256) if byte != ord("\n"))  # binary garbage
    yield b"x" * (MAX_LINE * 3)  # an enormous line
    yield good[:30]  # truncated in its timestamp
    yield '198.51.100.8 - - [27/Nov/2026:14:40:00 +0000] "GET /caf\u00e9 HTTP/1.1" 200 5 "-" "\u2603"'.encode()
    yield good


async def test_damaged_input_is_counted_and_sampled_never_fatal(shipped: Policy, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.log"
    damaged.write_bytes(b"\n".join(damaged_lines()) + b"\n\x00\x00")
    report = await report_of([damaged], shipped)
    assert report["lines"]["parsed"] == 3
    assert report["lines"]["malformed"] == 4  # garbage, enormous, truncated, the NUL tail
    reasons = {sample["reason"] for sample in report["lines"]["malformed_samples"]}
    assert f"longer than {MAX_LINE} bytes" in reasons
    truncated_gzip = tmp_path / "cut.log.gz"
    truncated_gzip.write_bytes(gzip.compress(b"\n".join([*damaged_lines()][:1] * 500) + b"\n")[:-40])
    report = await report_of([truncated_gzip], shipped)
    assert 0 < report["lines"]["parsed"] <= 500  # the lines before the cut count


def test_a_custom_log_format_is_read() -> None:
    log_format = LogFormat(
        '$host $remote_addr [$time_iso8601] "$request" $status $bytes_sent $request_time "$http_user_agent"'
    )
    entry = log_format.parse(
        'blog.example 2001:db8::7 [2026-11-27T14:40:00+00:00] "POST /form?x=1 HTTP/2.0" 201 512 0.004 "curl/8"'
    )
    assert entry is not None
    assert (entry.ip, entry.host, entry.method, entry.target, entry.status, entry.bytes) == (
        "2001:db8::7", "blog.example", "POST", "/form?x=1", 201, 512,
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs"):
        LogFormat("$remote_addr $status")
    assert LogFormat(COMBINED).parse('1.2.3.4 - - [27/Nov/2026:14:40:00 +0000] "-" 400 0 "-" "-"') is None


def test_network_counts_stay_bounded_and_keep_the_heavy_hitters() -> None:
    counter = TopCounter(capacity=100)
    for number in range(50_000):
        counter.add(f"rotating-{number}", "challenge")
        if number % 10 == 0:
            counter.add("heavy", "throttle", 100)
    assert len(counter.counts) <= 200
    top = counter.top(1)[0]
    assert top["key"] == "heavy" and top["requests"] >= 4_000  # a lower bound of its 5,000


def test_reading_a_file_streams_it(tmp_path: Path) -> None:
    path = tmp_path / "many.log"
    path.write_text("\n".join(line("198.51.100.9", START + n, f"/{n}", CHROME_UA) for n in range(5000)) + "\n")
    seen: list[int] = []
    entries = read_entries([path], progress=seen.append)
    first = next(entries)
    assert seen == [] and first.ip == "198.51.100.9"  # type: ignore[union-attr]  # read lazily, not all at once
    assert sum(1 for _ in entries) == 4999
    assert seen[-1] == path.stat().st_size


def test_the_command_prints_a_summary_and_writes_json_and_html(mix_log: Path, tmp_path: Path) -> None:
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "gate", "audit", str(mix_log), "--json", str(data), "--html", str(html)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "upstream load saved" in result.stdout and "GPTBot" in result.stdout
    assert json.loads(data.read_text())["lines"]["parsed"] == 3425
    assert "<svg" in html.read_text()
    missing = subprocess.run(
        [sys.executable, "-m", "gate", "audit", str(tmp_path / "nope.log")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such log file" in missing.stderr
    not_a_log = subprocess.run([sys.executable, "-m", "gate", "audit", "/etc/hostname"], capture_output=True, text=True)
    assert not_a_log.returncode == 1 and "no line read as a request" in not_a_log.stderr


def test_memory_stays_bounded_on_a_long_log_of_distinct_clients(tmp_path: Path) -> None:
    """60,000 lines, every one from a new address: the audit's structures are bounded, so its peak memory is the
    interpreter, the policy and those bounds (the 1-million-line figure is in docs/benchmarks.md)."""
    path = tmp_path / "long.log"
    with path.open("w") as log:
        for number in range(60_000):
            address = f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"
            log.write(line(address, START + number / 20, f"/p/{number}", CHROME_UA) + "\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [sys.executable, "-m", "gate", "audit", str(path), "--json", "-"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    peak_mib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    assert json.loads(result.stdout)["lines"]["parsed"] == 60_000
    assert peak_mib < 300, f"peak {peak_mib:.0f} MiB"


@pytest.mark.parametrize(
    "text",
    [
        '198.51.100.7 - - [28/Nov/0000:06:08:16 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',  # year 0
        '198.51.100.7 - - [28/Nov/9999:06:08:16 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',  # far future
        '198.51.100.7 - - [27/Nov/2026:14:40:00 +0000] "GET http://[ HTTP/1.1" 200 5 "-" "x"',  # no URL
        'crawl.example.org - - [27/Nov/2026:14:40:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',  # a host name
    ],
)
async def test_lines_gate_could_not_have_received_are_malformed_not_fatal(
    shipped: Policy, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "odd.log"
    path.write_text(text + "\n" + line("198.51.100.8", START, "/", CHROME_UA) + "\n")
    report = await report_of([path], shipped)
    assert (report["lines"]["parsed"], report["lines"]["malformed"]) == (1, 1)


async def test_files_are_replayed_oldest_first_whatever_their_order(shipped: Policy, tmp_path: Path) -> None:
    """`access.log*` lists the newest file first: replayed in that order, the older requests would meet rate
    limits from the future. One client, a request every 2 s for two hours, is never over its limit."""
    older, newer = tmp_path / "access.log.1", tmp_path / "access.log"
    older.write_text("".join(line("198.51.100.9", START + 2 * n, "/", "curl/8") + "\n" for n in range(1800)))
    newer.write_text("".join(line("198.51.100.9", START + 3600 + 2 * n, "/", "curl/8") + "\n" for n in range(1800)))
    report = await report_of([newer, older], shipped)
    assert report["files"] == ["access.log.1", "access.log"]
    assert report["by_action"]["throttle"]["requests"] == 0 and report["banned"] == []


def test_extended_combined_lines_and_escapes_are_read() -> None:
    extended = (
        '198.51.100.7 - - [27/Nov/2026:14:40:00 +0000] "GET /caf\\xC3\\xA9 HTTP/1.1" 200 5 "-" '
        '"say \\"hi\\"" 0.004 "203.0.113.1, 10.0.0.1"'
    )
    entry = DEFAULT_FORMATS[0].parse(extended)
    assert entry is not None
    assert (entry.target, entry.user_agent) == ("/café", 'say "hi"')
    quoted = LogFormat('$remote_addr [$time_local] "$request" $status "$http_x_forwarded_for" "$http_user_agent"')
    assert quoted.parse('1.2.3.4 [27/Nov/2026:14:40:00 +0000] "GET / HTTP/1.1" 200 "5.6.7.8, 9.9.9.9" "ua"')


async def test_a_log_spanning_decades_draws_only_the_days_with_requests(shipped: Policy, tmp_path: Path) -> None:
    path = tmp_path / "ancient.log"
    path.write_text(
        line("198.51.100.7", 800_000_000, "/", CHROME_UA) + "\n" + line("198.51.100.7", START, "/", CHROME_UA)
    )
    page = render_html(await report_of([path], shipped))
    assert len(page) < 100_000 and page.count("<rect") < 50
