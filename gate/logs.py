"""Logging as JSON lines on standard output: one per request, and gate's (and uvicorn's) own messages.

Request lines bypass the logging module and are written in batches (a flush every 200 ms or every few KB):
at thousands of requests per second, a LogRecord and a write() per request cost more than the forwarding itself.
They are formatted field by field rather than by json's encoder, which took 4 µs a line (a fifth of that here).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from json.encoder import encode_basestring_ascii as json_string
from typing import Any

from gate.later import FlushLater

# Writes up to PIPE_BUF bytes to a pipe are atomic, so several workers sharing one stdout never interleave a line.
PIPE_BUF = 4096
FLUSH_SECONDS = 0.2


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text: formatting costs a microsecond


def timestamp(seconds: float) -> str:
    whole = int(seconds)
    if whole != _second[0]:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(seconds % 1 * 1000):03d}Z"


def json_optional(text: str | None) -> str:
    return "null" if text is None else json_string(text)


def json_bool(flag: bool) -> str:
    return "true" if flag else "false"


class Event:
    """A named event and its fields, carried on a log record (see `event`)."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: dict[str, Any]) -> None:
        self.name = name
        self.fields = fields


def event(name: str, **fields: Any) -> dict[str, Event]:
    """`extra=` for a log call that reports an event: the JSON line gets `"event": name` and the fields."""
    return {"event": Event(name, fields)}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, Event):  # log.info(..., extra=event(...)): fields a log pipeline can filter on
            line.update(event.fields, event=event.name)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


class RepeatedWarnings(logging.Filter):
    """uvicorn logs a warning for every malformed request and every request over --max-connections, so a flood of
    either would become a flood of log lines. Each kind is logged at most once a minute, saying how many were left
    out (gate_client_errors_total counts every one)."""

    INTERVAL = 60.0
    MAX_KINDS = 64  # the kinds are uvicorn's message templates: a handful

    def __init__(self) -> None:
        super().__init__()
        self.last_logged: dict[str, float] = {}
        self.left_out: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        kind = str(record.msg)
        now = time.monotonic()
        last = self.last_logged.get(kind)
        if last is not None and now - last < self.INTERVAL:
            self.left_out[kind] = self.left_out.get(kind, 0) + 1
            return False
        if len(self.last_logged) >= self.MAX_KINDS:
            self.last_logged.clear()
        self.last_logged[kind] = now
        if left_out := self.left_out.pop(kind, 0):
            record.msg = f"{kind} ({left_out} more like it since the last such line were not logged)"
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # gate writes its own request lines
    uvicorn_messages = logging.getLogger("uvicorn.error")
    uvicorn_messages.filters[:] = [RepeatedWarnings()]


class AccessLog:
    """One JSON line per request, buffered and written in atomic chunks."""

    def __init__(self, enabled: bool, fd: int | None = None) -> None:
        self.enabled = enabled
        self.fd = sys.stdout.fileno() if fd is None else fd
        self._lines: list[str] = []
        self._size = 0
        self.flusher = FlushLater(FLUSH_SECONDS, self.flush)

    def write(
        self,
        *,
        ip: str,
        method: str,
        host: str,
        path: str,
        status: int,
        action: str,
        decided: str,
        rule: str | None,
        agent_class: str,
        agent: str | None,
        proof: str | None,
        signer: str | None,
        upstream_ms: float | None,
        duration_ms: float,
        error: str | None,
        passed: bool,
        consented: bool,
    ) -> None:
        """One request's line; every text is escaped to ASCII, so the line is valid JSON whatever the client sent."""
        if not self.enabled:
            return
        line = (
            f'{{"time":"{timestamp(time.time())}","level":"info","logger":"gate.access","message":"request",'
            f'"ip":{json_string(ip)},"method":{json_string(method)},"host":{json_string(host)},'
            f'"path":{json_string(path)},"status":{status:d},"action":{json_string(action)},'
            f'"decided":{json_string(decided)},"rule":{json_optional(rule)},"agent_class":{json_string(agent_class)},'
            f'"agent":{json_optional(agent)},"proof":{json_optional(proof)},"signer":{json_optional(signer)},'
            f'"upstream_ms":{"null" if upstream_ms is None else repr(upstream_ms)},"duration_ms":{duration_ms!r},'
            f'"error":{json_optional(error)},"pass":{json_bool(passed)},"consent":{json_bool(consented)}}}'
        )
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size >= PIPE_BUF:
            self.flush()
        else:
            self.flusher.schedule()

    def flush(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:
            data = line.encode() + b"\n"
            if chunk and chunk_size + len(data) > PIPE_BUF:
                self._write(b"".join(chunk))
                chunk, chunk_size = [], 0
            chunk.append(data)
            chunk_size += len(data)
        if chunk:
            self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BlockingIOError:
            pass  # stdout set non-blocking and full: drop the rest of this chunk rather than stall requests
