"""Access log lines in, entries out: nginx/Apache combined and common formats, or an nginx `log_format`-style
pattern; plain or gzip; read as a stream, so a multi-GB file takes constant memory.

Nothing in a log can stop the reading: a line that does not parse (binary garbage, a truncated line, one longer than
MAX_LINE) is a `Malformed` entry, counted and sampled by the report.
"""

from __future__ import annotations

import calendar
import gzip
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

MAX_LINE = 64 * 1024  # longer lines are skipped whole (an access log line is a few hundred bytes)
GZIP_MAGIC = b"\x1f\x8b"
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
)
COMMON = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent'
QUOTED = r"(?:[^\"\\]|\\.)*+"  # a quoted field's content, with \" and \xHH escapes
# What each nginx variable may hold in a line; any other $variable matches a run of non-space characters, or a
# quoted field's content between quotes. Possessive quantifiers: a line that does not match fails in linear time.
VARIABLES = {
    "remote_addr": r"(?P<ip>[^\s\"]++)",  # an address, or a host name (Apache's %h with HostnameLookups)
    "time_local": r"(?P<time_local>[^\]]++)",
    "time_iso8601": r"(?P<time_iso>[0-9T:+.Z-]++)",
    "request": f"(?P<request>{QUOTED})",
    "status": r"(?P<status>\d{3})",
    "body_bytes_sent": r"(?P<bytes>\d++|-)",
    "bytes_sent": r"(?P<bytes>\d++|-)",
    "http_referer": f"(?P<referer>{QUOTED})",
    "http_user_agent": f"(?P<user_agent>{QUOTED})",
    "host": r"(?P<host>[^\s\"]*+)",
    "http_host": r"(?P<host>[^\s\"]*+)",
}
EARLIEST = calendar.timegm((1990, 1, 1, 0, 0, 0))  # times outside [EARLIEST, now + a day] are not a log's


@dataclass(frozen=True, slots=True)
class LogEntry:
    ip: str
    time: float  # seconds since the epoch
    method: str
    target: str  # the request target as logged: path and query
    protocol: str  # "HTTP/1.1"; "" for an HTTP/0.9-style request line
    status: int
    bytes: int
    referer: str
    user_agent: str
    host: str = ""
    file: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Malformed:
    file: str
    line: int
    reason: str
    sample: str  # the start of the line, as text


class LogFormat:
    """A line pattern in nginx `log_format` syntax, compiled to one regular expression."""

    def __init__(self, pattern: str, more_fields: bool = False) -> None:
        """`more_fields`: a line may go on after the pattern (the built-in formats, which sites often extend)."""
        self.pattern = pattern
        parts = re.split(r"\$([a-z_][a-z0-9_]*)", pattern)
        regex = []
        seen: set[str] = set()
        for index, part in enumerate(parts):
            if index % 2 == 0:
                regex.append(re.escape(part))
                continue
            quoted = parts[index - 1].endswith('"') and parts[index + 1].startswith('"')
            group = VARIABLES.get(part, QUOTED if quoted else r"[^\s\"]*+")
            name = re.match(r"\(\?P<(\w+)>", group)
            if name is not None and name.group(1) in seen:  # a second $bytes_sent and the like: match, do not keep
                group = re.sub(r"\(\?P<\w+>", "(?:", group, count=1)
            elif name is not None:
                seen.add(name.group(1))
            regex.append(group)
        if not {"ip", "request", "status"} <= seen or not {"time_local", "time_iso"} & seen:
            raise ValueError("a log format needs $remote_addr, $request, $status and $time_local (or $time_iso8601)")
        self.regex = re.compile("".join(regex) + (r"(?:\s.*)?$" if more_fields else r"\s*$"))

    def parse(self, line: str) -> LogEntry | None:
        match = self.regex.match(line)
        if match is None:
            return None
        fields = match.groupdict()
        moment = parse_time(fields.get("time_local"), fields.get("time_iso"))
        request = unescape(fields["request"]).split(" ")
        if moment is None or len(request) not in (2, 3) or not request[1].startswith(("/", "http")):
            return None  # "-" (nginx's request line for a connection that sent none) and junk are not requests
        method, target, protocol = request if len(request) == 3 else (*request, "")
        size = fields.get("bytes") or "-"
        return LogEntry(
            ip=fields["ip"].split("%", 1)[0],  # an IPv6 zone id (fe80::1%eth0) is not part of the address
            time=moment,
            method=method,
            target=target,
            protocol=protocol,
            status=int(fields["status"]),
            bytes=int(size) if size.isdigit() else 0,
            referer=unescape(fields.get("referer") or ""),
            user_agent=unescape(fields.get("user_agent") or ""),
            host=fields.get("host") or "",
        )


MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}
TIME_LOCAL = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$")


def parse_time(local: str | None, iso: str | None) -> float | None:
    """Seconds since the epoch of `[28/Nov/2026:06:08:16 +0000]` (nginx's $time_local) or an ISO 8601 time."""
    if local is not None:
        match = TIME_LOCAL.match(local)
        month = MONTHS.get(match[2]) if match else None
        if match is None or month is None:
            return None
        day, year, hour, minute, second = int(match[1]), int(match[3]), int(match[4]), int(match[5]), int(match[6])
        if not (1970 <= year <= 9999 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            return None
        offset = (int(match[8]) * 3600 + int(match[9]) * 60) * (1 if match[7] == "+" else -1)
        moment = float(calendar.timegm((year, month, day, hour, minute, second)) - offset)
    elif iso is not None:
        try:
            parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        except ValueError:
            return None
        moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()  # no offset: UTC
    else:
        return None
    return moment if EARLIEST <= moment <= time.time() + 86400 else None


def unescape(text: str) -> str:
    r"""nginx writes bytes outside ASCII and `"` as `\xHH` (UTF-8, byte by byte), Apache `"` as `\"`."""
    if "\\" not in text:
        return text
    text = re.sub(
        r"(?:\\x[0-9A-Fa-f]{2})+",
        lambda m: bytes.fromhex(m[0].replace("\\x", "")).decode("utf-8", "replace"),
        text,
    )
    return re.sub(r"\\(.)", r"\1", text)


DEFAULT_FORMATS = (LogFormat(COMBINED, more_fields=True), LogFormat(COMMON, more_fields=True))


def read_entries(
    paths: Sequence[Path],
    formats: Sequence[LogFormat] = DEFAULT_FORMATS,
    progress: Callable[[int], None] | None = None,
) -> Iterator[LogEntry | Malformed]:
    """Every line of every file as an entry, in order; `progress` is told the bytes read so far (compressed bytes
    for a gzip file), every few thousand lines."""
    done = 0
    for path in paths:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream: LineReader = gzip.GzipFile(fileobj=raw) if gzipped else raw
            for number, line in enumerate(lines_of(stream), start=1):
                if progress is not None and number % 4096 == 0:
                    progress(done + raw.tell())
                yield parse_line(line, formats, path.name, number)
            done += raw.tell()
    if progress is not None:
        progress(done)


class LineReader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def first_time(path: Path, formats: Sequence[LogFormat], lines: int = 1000) -> float:
    """The time of the file's first request among its first `lines` lines (infinity when there is none): files are
    replayed oldest first, whatever order they are given in (access.log* lists the newest first)."""
    for number, item in enumerate(read_entries([path], formats), start=1):
        if isinstance(item, LogEntry):
            return item.time
        if number >= lines:
            break
    return float("inf")


def lines_of(stream: LineReader) -> Iterator[bytes | None]:
    """The stream's lines without their line ends; None for a line longer than MAX_LINE (skipped to its end)."""
    while True:
        try:
            line = stream.readline(MAX_LINE + 1)
        except (OSError, EOFError, zlib.error):  # a truncated or corrupt gzip file: the lines read so far count
            return
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                try:
                    line = stream.readline(MAX_LINE + 1)
                except (OSError, EOFError, zlib.error):
                    return
            yield None
            continue
        yield line.rstrip(b"\r\n")


def parse_line(line: bytes | None, formats: Sequence[LogFormat], file: str, number: int) -> LogEntry | Malformed:
    if line is None:
        return Malformed(file, number, f"longer than {MAX_LINE} bytes", "")
    text = line.decode("utf-8", errors="replace")
    if "\x00" not in text:
        for log_format in formats:
            entry = log_format.parse(text)
            if entry is not None:
                return replace(entry, file=file, line=number)
    return Malformed(file, number, "not a line of the log format", text[:200])
