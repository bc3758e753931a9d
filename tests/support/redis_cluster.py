"""A real Redis Cluster for tests: `nodes` private redis-server masters on free loopback ports, all slots assigned."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port, stop
from tests.support.redis_server import redis_cli, start_redis_server

BUS_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on port + 10000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose bus ports (port + 10000) are free too, none overlapping another's."""
    ports: list[int] = []
    taken: set[int] = set()
    while len(ports) < count:
        port = free_port()
        bus = port + BUS_OFFSET
        if port < 55000 and not {port, bus} & taken and _bindable(bus):
            ports.append(port)
            taken |= {port, bus}
    return ports


def _cluster_ready(cli: str, port: int) -> bool:
    info = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=5
    ).stdout
    return "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info


@contextmanager
def redis_cluster(directory: Path, nodes: int = 3) -> Iterator[str]:
    cli = redis_cli()
    ports = _cluster_ports(nodes)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = directory / f"node-{port}"
            node_dir.mkdir()
            cluster_options = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(directory / f"nodes-{port}.conf"),
            ]
            processes.append(start_redis_server(node_dir, port, *cluster_options, "--cluster-node-timeout", "2000"))
        addresses = [f"127.0.0.1:{port}" for port in ports]
        create = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{(create.stdout + create.stderr)[-4000:]}")
        deadline = time.monotonic() + 20
        while not all(_cluster_ready(cli, port) for port in ports):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Redis Cluster on ports {ports} not ready (cluster_state:ok, 16384 slots) after 20s"
                )
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            stop(process)
