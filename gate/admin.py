"""The metrics listener (--metrics-bind): /metrics, /healthz and /readyz, never on the public listener; and /bans
and /consents, which `gate bans` and `gate consent` read and edit, answered only to this machine (loopback peers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from gate.store import FallbackStore, Store, StoreError, open_store
from gate.terms.consent import CONSENT_ID, RECORD_PREFIX, record_key, revocation_key
from gate.throttle import BAN_PREFIX, ban_key, banned_address, strike_key

READY_CHECK_SECONDS = 2.0
MAX_LISTED = 10_000
FORBIDDEN = JSONResponse({"error": "bans and consents are managed from this machine only"}, status_code=403)
log = logging.getLogger("gate.admin")


def build_admin_app(settings: Settings, shared_store: Store | None = None) -> Starlette:
    """The admin app; `shared_store` is the public app's own store when both run in one process (it must be, for a
    memory:// store's bans to be seen)."""
    forwarder = Forwarder(settings.upstream, settings.preserve_host, READY_CHECK_SECONDS, READY_CHECK_SECONDS)
    opened = open_store(settings.store, settings.store_timeout) if shared_store is None else shared_store
    # Bans, consents and readiness ask the shared store itself, never the in-process fallback in front of it (an
    # empty fallback would list nothing and lift nothing, and say so with a 200).
    store: Store = opened.shared if isinstance(opened, FallbackStore) else opened
    registry = metrics.registry()

    async def serve_metrics(_: Request) -> Response:
        metrics.flush()  # what this process counted in batches (with several workers, each adds its own)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        """Ready when the upstream answers and the store does, or, failing open, while the fallback stands in for
        it (taking every instance out of service during a Redis outage would turn it into a site outage)."""
        checks = {"upstream": await check(forwarder.ping()), "store": await check(store.ping())}
        ready = checks["upstream"] == "ok" and (checks["store"] == "ok" or settings.store_failure == "open")
        if checks["store"] != "ok" and ready:
            checks["store"] += " (the in-process fallback answers: limits are per instance)"
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @managed
    async def list_bans(request: Request) -> Response:
        found = await store.scan(BAN_PREFIX, MAX_LISTED)
        bans = [ban_entry(key, value, left) for key, value, left in found]
        return JSONResponse({"bans": sorted(bans, key=lambda ban: -ban["seconds_left"])})

    @managed
    async def remove_ban(request: Request) -> Response:
        address = parse_ip(request.path_params["address"])
        if address is None:
            return JSONResponse({"error": "not an IP address"}, status_code=400)
        ip, prefix = str(address), client_prefix(address)
        removed = await store.delete(ban_key(ip, prefix))
        await store.delete(strike_key(ip, prefix))  # a fresh start: the next refusal does not ban again
        return JSONResponse({"address": ip, "removed": removed}, status_code=200 if removed else 404)

    @managed
    async def list_consents(request: Request) -> Response:
        found = await store.scan(RECORD_PREFIX, MAX_LISTED)
        records = [json.loads(value) for _, value, _ in found]
        for record in records:
            record["revoked"] = await store.get(revocation_key(record["id"])) is not None
        return JSONResponse({"consents": sorted(records, key=lambda record: -record["accepted_at"])})

    @managed
    async def revoke_consent(request: Request) -> Response:
        consent_id = request.path_params["id"]
        if not CONSENT_ID.match(consent_id):
            return JSONResponse({"error": "not a consent id"}, status_code=400)
        record = await store.get(record_key(consent_id))
        if record is None:
            return JSONResponse({"error": f"no consent {consent_id}"}, status_code=404)
        left = max(1.0, json.loads(record)["expires"] - time.time())
        await store.set(revocation_key(consent_id), b"1", left)
        log.warning("consent %s revoked", consent_id)
        return JSONResponse({"id": consent_id, "revoked": True})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await forwarder.start()
        try:
            yield
        finally:
            await forwarder.close()
            if shared_store is None:
                await opened.close()

    return Starlette(
        routes=[
            Route("/metrics", serve_metrics),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/bans", list_bans),
            Route("/bans/{address}", remove_ban, methods=["DELETE"]),
            Route("/consents", list_consents),
            Route("/consents/{id}", revoke_consent, methods=["DELETE"]),
        ],
        lifespan=lifespan,
    )


def managed(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A bans or consents endpoint: answered to this machine only, and a store that cannot answer is a 503."""

    async def guarded(request: Request) -> Response:
        if not from_this_machine(request):
            return FORBIDDEN
        try:
            return await handler(request)
        except StoreError as error:
            return JSONResponse({"error": f"store: {error}"}, status_code=503)

    return guarded


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
