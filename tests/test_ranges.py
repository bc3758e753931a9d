"""`gate ranges update`: operators' lists fetched (from a local server here), checked, written atomically, and
picked up by a running gate; a payload that is not a list of prefixes is never written."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.ranges import RangesError, prefixes_of
from tests.policy.helpers import GOOGLEBOT_UA
from tests.support.gate_process import start_gate
from tests.support.http_server import QuietFiles, http_server
from tests.support.nginx import Nginx

GOOD = {
    "creationTime": "2026-11-28T00:00:00",
    "prefixes": [{"ipv4Prefix": "192.0.2.0/24"}, {"ipv6Prefix": "2001:db8::/32"}],
}
ACTION_NEEDED = b"<!doctype html><title>Action needed</title><p>This file has moved."


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[str]:
    """A local web server standing in for the operators' sites."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "good.json").write_text(json.dumps(GOOD))
    (served / "moved.json").write_bytes(ACTION_NEEDED)
    (served / "empty.json").write_text(json.dumps({"prefixes": []}))
    with http_server(functools.partial(QuietFiles, directory=str(served))) as url:
        yield url


def ranges_update(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", "ranges", "update", *arguments], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (ACTION_NEEDED, "not JSON"),
        (b'{"creationTime": "x"}', "no `prefixes`"),
        (b'{"prefixes": []}', "no `prefixes`"),
        (b'{"prefixes": [{"ipv4": "192.0.2.0/24"}]}', "without ipv4Prefix"),
        (b'{"prefixes": [{"ipv4Prefix": "999.0.2.0/24"}]}', "999.0.2.0/24"),
        (b"[" * 5000, "not JSON"),
        (b'{"ips": [{"address": "192.0.2.1"}]}', "without ip_address"),
        (b'{"ips": [{"ip_address": "192.0.2.300"}]}', "192.0.2.300"),
    ],
)
def test_a_payload_that_is_not_a_list_of_prefixes_is_refused(payload: bytes, problem: str) -> None:
    with pytest.raises(RangesError, match=problem.replace("`", ".")):
        prefixes_of(payload, "https://operator.example/list.json")


def test_ahrefs_list_of_addresses_is_read_as_single_address_prefixes() -> None:
    payload = b'{"ips": [{"ip_address": "192.0.2.7"}, {"ip_address": "2001:db8::7"}]}'
    assert prefixes_of(payload, "https://api.ahrefs.com/v3/public/crawler-ips") == ["192.0.2.7/32", "2001:db8::7/128"]


def test_good_lists_are_written_and_bad_ones_left_as_they_were(tmp_path: Path, operator: str) -> None:
    (tmp_path / "bingbot.txt").write_text("# the list before\n198.51.100.0/24\n")
    result = ranges_update(
        "google-crawlers",
        "bingbot",
        "--dir",
        str(tmp_path),
        "--source",
        f"google-crawlers={operator}/good.json",
        "--source",
        f"bingbot={operator}/moved.json",
    )
    assert result.returncode == 1
    assert result.stdout == "google-crawlers: 2 prefixes (new)\n"
    assert "bingbot: not written" in result.stderr and "not JSON" in result.stderr
    written = (tmp_path / "google-crawlers.txt").read_text().splitlines()
    assert written[0].startswith("# google-crawlers:") and f"{operator}/good.json" in written[1]
    assert [line for line in written if not line.startswith("#")] == ["192.0.2.0/24", "2001:db8::/32"]
    assert (tmp_path / "bingbot.txt").read_text() == "# the list before\n198.51.100.0/24\n"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left


def test_unknown_lists_and_sources_are_refused(tmp_path: Path) -> None:
    assert ranges_update("no-such-list", "--dir", str(tmp_path)).returncode == 2
    assert ranges_update("--dir", str(tmp_path), "--source", "bingbot=ftp://x/").returncode == 2
    assert ranges_update("--dir", str(tmp_path / "missing")).returncode == 2


def test_a_running_gate_verifies_against_the_updated_list(tmp_path: Path, operator: str, nginx: Nginx) -> None:
    lists = tmp_path / "networks"
    lists.mkdir()
    (lists / "google-crawlers.txt").write_text("198.51.100.0/24\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "import: [shipped:default.yaml]\n"
        "networks:\n  google-crawlers: networks/google-crawlers.txt\n"
        "verified:\n  Googlebot: [google-crawlers]\n"  # the published ranges alone, no reverse DNS
    )
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--trusted-proxy", "127.0.0.1/32")
    googlebot = {"User-Agent": GOOGLEBOT_UA, "X-Forwarded-For": "192.0.2.10"}
    try:
        assert httpx.get(gate.url + "/page.html", headers=googlebot).status_code == 403  # an impostor, for now
        result = ranges_update(
            "google-crawlers", "--dir", str(lists), "--source", f"google-crawlers={operator}/good.json"
        )
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while httpx.get(gate.url + "/page.html", headers=googlebot).status_code != 200:
            assert time.monotonic() < deadline, "gate did not pick the updated list up"
            time.sleep(0.2)
    finally:
        gate.stop()
