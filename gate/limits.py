"""What one client connection may hold, and the uvicorn Config that carries it to gate's HTTP protocol.

Kept apart from gate.connection, which is compiled: uvicorn pickles its Config to every spawned worker, and a
compiled subclass of it cannot be unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uvicorn

DEFAULT_HEAD_BYTES = 65536
DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_STALL_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0  # uvicorn's; the shipped nginx configs close their idle connections to gate at 4 s


@dataclass(frozen=True, slots=True)
class ClientLimits:
    head_bytes: int = DEFAULT_HEAD_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT


class GateServerConfig(uvicorn.Config):
    """uvicorn's Config naming gate's protocol and carrying the client limits to every connection (and to every
    spawned worker: it is pickled)."""

    def __init__(self, app: Any, client_limits: ClientLimits, **options: Any) -> None:
        super().__init__(app, http="gate.connection:GuardedProtocol", **options)
        self.client_limits = client_limits
