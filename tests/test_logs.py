"""The request log line (gate/logs.py AccessLog): valid JSON with the exact values, whatever a client puts in it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from gate.logs import AccessLog

HOSTILE = 'a "quoted" \\ back\\slash,\ttab\nnewline \x00\x1f\x7f é 漢 \U0001f600 </script>'
REQUEST: dict[str, Any] = {
    "ip": "2001:db8::1",
    "method": "GET",
    "host": HOSTILE,
    "path": "/" + HOSTILE,
    "status": 429,
    "action": "throttle",
    "decided": "allow",
    "rule": None,
    "agent_class": "browser",
    "agent": HOSTILE,
    "proof": None,
    "signer": "https://signer.example/.well-known/http-message-signatures-directory",
    "upstream_ms": None,
    "duration_ms": 0.37,
    "error": "timeout",
    "passed": True,
    "consented": False,
}


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def lines_written(log: AccessLog, read_end: int) -> list[dict[str, Any]]:
    log.flush()
    return [json.loads(line) for line in os.read(read_end, 1 << 16).decode("ascii").splitlines()]


async def test_a_request_line_is_json_with_every_field_as_given(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    log = AccessLog(enabled=True, fd=write_end)
    log.write(**REQUEST)
    log.write(**{**REQUEST, "rule": "default", "upstream_ms": 12.5, "passed": False, "consented": True})
    first, second = lines_written(log, read_end)
    expected = {key: value for key, value in REQUEST.items() if key not in ("passed", "consented")}
    assert first == {
        "time": first["time"],
        "level": "info",
        "logger": "gate.access",
        "message": "request",
        **expected,
        "pass": True,
        "consent": False,
    }
    assert (second["rule"], second["upstream_ms"], second["pass"], second["consent"]) == ("default", 12.5, False, True)


def test_nothing_is_written_when_request_lines_are_off(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    log = AccessLog(enabled=False, fd=write_end)
    log.write(**REQUEST)
    os.set_blocking(read_end, False)
    log.flush()
    with pytest.raises(BlockingIOError):
        os.read(read_end, 1)
