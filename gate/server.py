"""Running `gate serve`: the public listener (one or more uvicorn workers) and the metrics listener.

With one worker both listeners share one event loop. With several, uvicorn's supervisor spawns the workers
(SIGHUP restarts them, SIGTERM drains them) and the metrics listener runs in a thread of the supervisor, reading
every worker's metrics from a fresh prometheus-client multiprocess directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import resource
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from uvicorn.supervisors import Multiprocess

from gate.app import Gate, build_app
from gate.config import HostPort, Settings
from gate.keys import write_key_file
from gate.limits import ClientLimits, GateServerConfig
from gate.store import Store

log = logging.getLogger("gate")
MAX_OPEN_FILES = 1 << 20
FILES_BESIDES_CLIENTS = 256  # upstream and store connections, the rules and range files, logs
# The collector's first generation is collected after this many more container objects were made than freed.
# Python's default (700) is less than what 64 requests in flight hold: every few requests a collection ran over all
# of them, and moved them on to be scanned again in the older generations. That was 6-7 % of a worker's time under
# load; with 10,000 it collected 4 times in 20 s, at the same resident memory (docs/benchmarks.md, "Garbage
# collection").
YOUNG_COLLECTION_THRESHOLD = 10_000


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to gate (so two servers can share a process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(app: Any, bind: HostPort, settings: Settings, **options: Any) -> uvicorn.Config:
    return GateServerConfig(
        app,
        ClientLimits(
            settings.max_header_size, settings.header_timeout, settings.client_timeout, settings.keep_alive_timeout
        ),
        host=bind.host,
        port=bind.port,
        loop="uvloop",
        ws="websockets-sansio",
        lifespan="on",
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,  # gate resolves client addresses itself, from --trusted-proxy only
        server_header=False,
        date_header=False,  # the upstream's Date header is forwarded; a second one would be wrong
        timeout_graceful_shutdown=round(settings.shutdown_timeout),
        limit_concurrency=settings.max_connections,
        **options,
    )


def public_config(settings: Settings) -> uvicorn.Config:
    return uvicorn_config(
        functools.partial(serving_app, settings), settings.bind, settings, factory=True, workers=settings.workers
    )


def serving_app(settings: Settings) -> Gate:
    """The app a serving process runs (each worker builds its own), with the collector tuned for serving."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
    return build_app(settings)


def admin_server(settings: Settings, shared_store: Store | None = None) -> EmbeddedServer | None:
    if settings.metrics_bind is None:
        return None
    from gate.admin import build_admin_app

    return EmbeddedServer(uvicorn_config(build_admin_app(settings, shared_store), settings.metrics_bind, settings))


def serve(settings: Settings) -> None:
    raise_open_file_limit(settings.max_connections)
    if settings.workers > 1:
        serve_workers(settings)
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_single(settings))


def raise_open_file_limit(connections: int) -> None:
    """Raise the soft limit on open files to the hard one, as Go servers do at start: the usual soft limit of 1024
    would refuse connections long before --max-connections (workers inherit the raised limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    if soft != resource.RLIM_INFINITY and soft < connections + FILES_BESIDES_CLIENTS:
        log.warning(
            "the open-file limit (%d) is below --max-connections (%d): raise LimitNOFILE or ulimit -n",
            soft,
            connections,
        )


async def serve_single(settings: Settings) -> None:
    app = serving_app(settings)
    public = EmbeddedServer(uvicorn_config(app, settings.bind, settings))
    admin = admin_server(settings, app.store)  # one process: the admin listener sees the app's own store
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        log.info("received %s: draining in-flight requests", signal.Signals(signum).name)
        public.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    admin_task = asyncio.ensure_future(admin.serve()) if admin else None
    try:
        await public.serve()
    finally:
        if admin and admin_task:
            admin.should_exit = True
            await admin_task


def serve_workers(settings: Settings) -> None:
    metrics_dir = tempfile.mkdtemp(prefix="gate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by every spawned worker's prometheus-client
    if settings.secret_file is None:
        # Workers must sign with one key, or a challenge issued by one is refused by the next.
        log.warning(
            "no --secret-file: the workers share a temporary key; pass tokens end at restart and other instances"
            " will not accept them (write a key with `gate keygen PATH`)"
        )
        key_file = Path(metrics_dir) / "temporary.key"
        write_key_file(key_file)
        settings = dataclasses.replace(settings, secret_file=key_file)
    admin = admin_server(settings)
    admin_thread = threading.Thread(target=admin.run, name="gate-metrics", daemon=True) if admin else None
    try:
        if admin_thread:
            admin_thread.start()
        config = public_config(settings)
        socket = config.bind_socket()
        Multiprocess(config, sockets=[socket]).run()
    finally:
        if admin and admin_thread:
            admin.should_exit = True
            admin_thread.join(timeout=5)
        shutil.rmtree(metrics_dir, ignore_errors=True)
