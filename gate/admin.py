"""The metrics listener (--metrics-bind): /metrics, /healthz and /readyz, never on the public listener; and /bans,
which `gate bans` reads and edits, answered only to this machine (loopback peers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gate import metrics
from gate.config import Settings
from gate.net import client_prefix, parse_ip
from gate.proxy import Forwarder
from gate.store import Store, StoreError, open_store
from gate.throttle import BAN_PREFIX, ban_key, banned_address, strike_key

READY_CHECK_SECONDS = 2.0
MAX_LISTED_BANS = 10_000
FORBIDDEN = JSONResponse({"error": "bans are managed from this machine only"}, status_code=403)


def build_admin_app(settings: Settings, shared_store: Store | None = None) -> Starlette:
    """The admin app; `shared_store` is the public app's own store when both run in one process (it must be, for a
    memory:// store's bans to be seen)."""
    forwarder = Forwarder(settings.upstream, settings.preserve_host, READY_CHECK_SECONDS, READY_CHECK_SECONDS)
    store: Store = open_store(settings.store, settings.store_timeout) if shared_store is None else shared_store
    registry = metrics.registry()

    async def serve_metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        checks = {"upstream": await check(forwarder.ping()), "store": await check(store.ping())}
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def list_bans(request: Request) -> Response:
        if not from_this_machine(request):
            return FORBIDDEN
        try:
            found = await store.scan(BAN_PREFIX, MAX_LISTED_BANS)
        except StoreError as error:
            return JSONResponse({"error": f"store: {error}"}, status_code=503)
        bans = [ban_entry(key, value, left) for key, value, left in found]
        return JSONResponse({"bans": sorted(bans, key=lambda ban: -ban["seconds_left"])})

    async def remove_ban(request: Request) -> Response:
        if not from_this_machine(request):
            return FORBIDDEN
        address = parse_ip(request.path_params["address"])
        if address is None:
            return JSONResponse({"error": "not an IP address"}, status_code=400)
        ip, prefix = str(address), client_prefix(address)
        try:
            removed = await store.delete(ban_key(ip, prefix))
            await store.delete(strike_key(ip, prefix))  # a fresh start: the next refusal does not ban again
        except StoreError as error:
            return JSONResponse({"error": f"store: {error}"}, status_code=503)
        return JSONResponse({"address": ip, "removed": removed}, status_code=200 if removed else 404)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await forwarder.start()
        try:
            yield
        finally:
            await forwarder.close()
            if shared_store is None:
                await store.close()

    return Starlette(
        routes=[
            Route("/metrics", serve_metrics),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/bans", list_bans),
            Route("/bans/{address}", remove_ban, methods=["DELETE"]),
        ],
        lifespan=lifespan,
    )


def from_this_machine(request: Request) -> bool:
    """Bans are changed only from this machine, even when the metrics listener is open to a Prometheus server."""
    address = parse_ip(request.client.host) if request.client else None
    return address is not None and address.is_loopback


def ban_entry(key: str, value: bytes, seconds_left: float) -> dict[str, Any]:
    """One ban as `gate bans list` shows it: the address, time left and what the ban record says."""
    try:
        record = json.loads(value)
    except ValueError:
        record = {}
    details = record if isinstance(record, dict) else {}
    return {
        "address": banned_address(key),
        "seconds_left": round(seconds_left),
        "limit": details.get("limit"),
        "strikes": details.get("strikes"),
        "banned_at": details.get("at"),
    }


async def check(probe: Awaitable[None]) -> str:
    """'ok', or a short reason the dependency is not ready."""
    try:
        await asyncio.wait_for(probe, READY_CHECK_SECONDS)
    except TimeoutError:
        return f"error: no answer within {READY_CHECK_SECONDS:g}s"
    except (StoreError, aiohttp.ClientError, OSError) as error:
        return f"error: {error or type(error).__name__}"
    return "ok"
