"""A real nginx on a free loopback port, serving test fixtures (and the page the benchmarks use)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, stop, wait_for_port

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")

# Locations the proxy tests rely on; {uploads} and {websocket_port} are filled in per server.
TEST_LOCATIONS = r"""
    location = /cookies {
        add_header Set-Cookie "a=1; Path=/";
        add_header Set-Cookie "b=2; Path=/";
        return 200 "two cookies\n";
    }
    location /headers {
        default_type text/plain;
        return 200 "xff=$http_x_forwarded_for
real=$http_x_real_ip
proto=$http_x_forwarded_proto
xhost=$http_x_forwarded_host
host=$http_host
foo=$http_x_foo
connection=$http_connection
keepalive=$http_keep_alive
ua=$http_user_agent
accept=$http_accept
forwarded=$http_forwarded
trueclient=$http_true_client_ip
";
    }
    location /uri { default_type text/plain; return 200 "$request_uri"; }
    location = /slow { default_type text/plain; echo_sleep 3; echo "late"; }
    location = /stall { default_type text/plain; echo "first"; echo_flush; echo_sleep 5; echo "second"; }
    location /upload/ {
        root {uploads};
        client_max_body_size 0;
        client_body_buffer_size 1m;
        dav_methods PUT;
        create_full_put_path on;
    }
    location /ws {
        proxy_pass http://127.0.0.1:{websocket_port};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header X-Seen-Cookie $http_cookie;
    }
"""


@dataclass
class Nginx:
    port: int
    root: Path
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.process)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed: `make test` installs it (apt-get install nginx)")
    return found


def start_nginx(directory: Path, root: Path, locations: str = "", workers: int = 1) -> Nginx:
    """Start nginx with its config, logs and temp files under `directory`, serving `root`."""
    port = free_port()
    modules = f"load_module {ECHO_MODULE};" if ECHO_MODULE.exists() and "echo_" in locations else ""
    server = f"""
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {locations}
    }}
"""
    process = start_nginx_with(directory, server, port, workers=workers, modules=modules)
    return Nginx(port=port, root=root, directory=directory, process=process)


def nginx_config(directory: Path, http: str, workers: int = 1, modules: str = "") -> Path:
    """A whole nginx.conf under `directory` around `http` (server blocks, maps, upstreams), with its logs and
    temporary files there too."""
    directory.mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would drop to an unprivileged user that cannot read pytest's private temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    config = f"""
{modules}
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
{http}
}}
"""
    path = directory / "nginx.conf"
    path.write_text(config)
    return path


def check_nginx_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a config written by nginx_config."""
    return subprocess.run(
        [nginx_binary(), "-t", "-p", str(path.parent), "-c", str(path), "-e", str(path.parent / "error.log")],
        capture_output=True,
        text=True,
    )


def start_nginx_with(
    directory: Path, http: str, port: int, workers: int = 1, modules: str = ""
) -> subprocess.Popen[bytes]:
    """Start nginx on nginx_config(directory, http) and wait until it listens on `port`."""
    path = nginx_config(directory, http, workers, modules)
    log = directory / "error.log"
    process = subprocess.Popen(
        [nginx_binary(), "-p", str(directory), "-c", str(path), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    wait_for_port("127.0.0.1", port, process, log)
    return process
