"""The metrics listener (--metrics-bind): /metrics, /healthz and /readyz, never on the public listener."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gate import metrics
from gate.config import Settings
from gate.proxy import Forwarder
from gate.store import Store, StoreError, open_store

READY_CHECK_SECONDS = 2.0


def build_admin_app(settings: Settings) -> Starlette:
    forwarder = Forwarder(settings.upstream, settings.preserve_host, READY_CHECK_SECONDS, READY_CHECK_SECONDS)
    store: Store = open_store(settings.store)
    registry = metrics.registry()

    async def serve_metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        checks = {"upstream": await check(forwarder.ping()), "store": await check(store.ping())}
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await forwarder.start()
        try:
            yield
        finally:
            await forwarder.close()
            await store.close()

    return Starlette(
        routes=[
            Route("/metrics", serve_metrics),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )


async def check(probe: Awaitable[None]) -> str:
    """'ok', or a short reason the dependency is not ready."""
    try:
        await asyncio.wait_for(probe, READY_CHECK_SECONDS)
    except TimeoutError:
        return f"error: no answer within {READY_CHECK_SECONDS:g}s"
    except (StoreError, aiohttp.ClientError, OSError) as error:
        return f"error: {error or type(error).__name__}"
    return "ok"
