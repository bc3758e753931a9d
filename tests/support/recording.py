"""A real nginx as the upstream, writing down every request that reaches it and answering with the path it resolved:
for tests that must show what got past gate, and as what."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.nginx import start_nginx_with
from tests.support.ports import free_port, stop

PREVIEW_AGENT = "gate (link preview passthrough)"  # gate's own fetch of a challenged page's preview tags
ANSWER = "upstream uri="


@dataclass(frozen=True)
class Seen:
    target: str  # the request-target as it arrived
    uri: str  # nginx's normalised path: what it would serve
    user_agent: str


@dataclass(frozen=True)
class RecordingUpstream:
    url: str
    log: Path

    def seen(self) -> list[Seen]:
        """Every request that reached the upstream, in order (nginx writes each line as the request ends)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="latin-1").splitlines()
        return [Seen(*line.split("\t", 2)) for line in lines if line.count("\t") >= 2]

    def forwarded(self, marker: str) -> list[Seen]:
        """Requests forwarded on a client's behalf whose target contains `marker` (not gate's preview fetches)."""
        return [seen for seen in self.seen() if marker in seen.target and seen.user_agent != PREVIEW_AGENT]


@contextmanager
def recording_upstream(directory: Path) -> Iterator[RecordingUpstream]:
    port = free_port()
    log = directory / "seen.log"
    http = f"""
    log_format seen '$request_uri\t$uri\t$http_user_agent';
    server {{
        listen 127.0.0.1:{port};
        access_log {log} seen;
        location / {{ default_type text/plain; return 200 "{ANSWER}$uri"; }}
    }}
"""
    process = start_nginx_with(directory, http, port)
    try:
        yield RecordingUpstream(f"http://127.0.0.1:{port}", log)
    finally:
        stop(process)
