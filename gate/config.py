"""Settings for `gate serve`: every option is a flag and a GATE_* variable, validated once at start.

A flag beats its environment variable, which beats the default. Every invalid value is reported, one line each,
naming the option; the caller exits with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from gate.connection import MAX_TARGET_BYTES
from gate.keys import load_keyring
from gate.limits import DEFAULT_HEAD_BYTES, DEFAULT_HEAD_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_STALL_TIMEOUT
from gate.net import IPNetwork, parse_ip, parse_network
from gate.policy import shipped_rules
from gate.store import DEFAULT_TIMEOUT as DEFAULT_STORE_TIMEOUT
from gate.store import memory_max_keys
from gate.store.redis import sentinel_client
from gate.verify.rdns import DEFAULT_TIMEOUT as DEFAULT_DNS_TIMEOUT
from gate.verify.rdns import DEFAULT_WAIT as DEFAULT_VERIFY_WAIT
from gate.verify.rdns import split_resolver

Mode = Literal["proxy", "auth"]
MAX_AUTH_CACHE_SECONDS = 60
StoreFailure = Literal["open", "closed"]


class ConfigError(Exception):
    """One or more invalid settings; `problems` holds one readable line per option."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where allowed requests go. `origin` is what the forwarding client connects to."""

    origin: str  # "http://host:port", "https://host:port", or "http://localhost" for a unix socket
    base_path: str  # prefix prepended to every forwarded path, "" for none
    host: str  # host[:port] to send as Host when the client's Host is not preserved
    unix_socket: str | None = None

    def __str__(self) -> str:
        return f"unix:{self.unix_socket}" if self.unix_socket else self.origin + self.base_path


DEFAULT_METRICS_BIND = HostPort("127.0.0.1", 9464)


@dataclass(frozen=True, slots=True)
class Settings:
    upstream: Upstream
    bind: HostPort = HostPort("127.0.0.1", 8080)
    metrics_bind: HostPort | None = DEFAULT_METRICS_BIND
    rules: Path = field(default_factory=lambda: shipped_rules())
    store: str = "memory://"
    store_timeout: float = DEFAULT_STORE_TIMEOUT
    store_failure: StoreFailure = "open"
    secret_file: Path | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    workers: int = 1
    dry_run: bool = False
    mode: Mode = "proxy"
    auth_cache: int = 0
    preserve_host: bool = True
    connect_timeout: float = 5.0
    upstream_timeout: float = 60.0
    shutdown_timeout: float = 30.0
    max_header_size: int = DEFAULT_HEAD_BYTES
    header_timeout: float = DEFAULT_HEAD_TIMEOUT
    client_timeout: float = DEFAULT_STALL_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_connections: int = 4096
    metrics_public: bool = False
    own_prefix: str = "/.gate/"
    log_level: str = "info"
    cookie_domain: str | None = None
    pass_lifetime: float = 86400.0
    pass_budget: int = 1000
    contact: str = ""
    resolver: str | None = None  # HOST[:PORT] for reverse DNS; None: the system's
    dns_timeout: float = DEFAULT_DNS_TIMEOUT
    verify_wait: float = DEFAULT_VERIFY_WAIT
    allow_private_key_directories: bool = False


# --- value parsers: each returns the typed value or raises ValueError with a message for the user ---------


def parse_upstream(text: str) -> Upstream:
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: a unix socket upstream needs an absolute path, like unix:/run/app.sock")
        return Upstream(origin="http://localhost", base_path="", host="localhost", unix_socket=path)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: expected http://HOST[:PORT], https://HOST[:PORT] or unix:/PATH")
    if not parts.hostname:
        raise ValueError(f"{text!r}: no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{text!r}: an upstream URL takes no query, fragment or credentials")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{text!r}: invalid port") from error
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    return Upstream(origin=f"{parts.scheme}://{netloc}", base_path=parts.path.rstrip("/"), host=netloc)


def parse_host_port(text: str) -> HostPort:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected HOST:PORT, like 127.0.0.1:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write IPv6 addresses in brackets, like [::1]:8080")
    port = parse_int(port_text, minimum=0)
    if port > 65535:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return HostPort(host, port)


def parse_optional_host_port(text: str) -> HostPort | None:
    return None if text.strip().lower() in ("off", "none", "") else parse_host_port(text)


def parse_int(text: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a whole number") from error
    if value < minimum:
        raise ValueError(f"{value} is below the minimum of {minimum}")
    return value


def parse_auth_cache(text: str) -> int:
    value = parse_int(text, minimum=0)
    if value > MAX_AUTH_CACHE_SECONDS:
        raise ValueError(f"{value} s: at most {MAX_AUTH_CACHE_SECONDS}")
    return value


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a number of seconds") from error
    if not 0 < value <= 86400:
        raise ValueError(f"{value} must be more than 0 and at most 86400 seconds")
    return value


def parse_header_size(text: str) -> int:
    value = parse_int(text, minimum=MAX_TARGET_BYTES)
    if value > 1 << 20:
        raise ValueError(f"{value} bytes is over the maximum of 1 MiB for a request head")
    return value


def is_private_host(host: str) -> bool:
    """A loopback or private address (or localhost); a wildcard, a public address or another name is not."""
    if host == "localhost":
        return True
    address = parse_ip(host)
    return address is not None and address.is_private and not address.is_unspecified


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, yes/no, on/off or 1/0)")


STORE_SCHEMES = ("memory", "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "unix")


def parse_store(text: str) -> str:
    scheme = urlsplit(text).scheme
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"{text!r}: expected one of " + ", ".join(f"{known}://" for known in STORE_SCHEMES))
    if scheme == "memory":
        memory_max_keys(text)
    if scheme == "redis+sentinel":
        sentinel_client(text)  # only parses: connections are made on first use
    return text


def parse_store_timeout(text: str) -> float:
    value = parse_seconds(text)
    if value > 10:
        raise ValueError(f"{value} s would let a slow store hold every request up: at most 10")
    return value


def parse_store_failure(text: str) -> StoreFailure:
    if text == "open":
        return "open"
    if text == "closed":
        return "closed"
    raise ValueError(f"{text!r}: expected open or closed")


def parse_resolver(text: str) -> str:
    split_resolver(text)
    return text.strip()


def parse_verify_seconds(text: str) -> float:
    value = parse_seconds(text)
    if value > 10:
        raise ValueError(f"{value} s: at most 10")
    return value


def parse_existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise ValueError(f"{text}: no such file or directory")
    return path


def parse_readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"{text}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{text}: not readable by this user")
    return path


def parse_secret_file(text: str) -> Path:
    path = parse_readable_file(text)
    load_keyring(path)  # every problem is reported at start, not on the first signed token
    return path


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(parse_network(item) for value in values for item in value.split(",") if item.strip())


def parse_mode(text: str) -> Mode:
    if text == "proxy":
        return "proxy"
    if text == "auth":
        return "auth"
    raise ValueError(f"{text!r}: expected proxy or auth")


def parse_prefix(text: str) -> str:
    if not (text.startswith("/") and text.endswith("/") and len(text) > 2) or "//" in text:
        raise ValueError(f"{text!r}: expected a path like /.gate/ (leading and trailing slash)")
    return text


def parse_cookie_domain(text: str) -> str | None:
    domain = text.strip().lstrip(".").lower()
    if not domain:
        return None
    if not all(label and label.replace("-", "").isalnum() for label in domain.split(".")):
        raise ValueError(f"{text!r}: expected a domain name like example.org")
    return domain


def parse_contact(text: str) -> str:
    if len(text) > 300 or any(ord(character) < 0x20 for character in text):
        raise ValueError("expected one line of at most 300 characters")
    return text.strip()


def parse_log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("debug", "info", "warning", "error"):
        raise ValueError(f"{text!r}: expected debug, info, warning or error")
    return lowered


@dataclass(frozen=True, slots=True)
class Option:
    """One `gate serve` option: flag, environment variable, the Settings field it fills and how."""

    flag: str
    env: str
    dest: str
    help: str
    parse: Callable[[str], Any] | None = None
    parse_many: Callable[[Sequence[str]], Any] | None = None  # repeatable flags
    metavar: str | None = None
    is_switch: bool = False


SERVE_OPTIONS: tuple[Option, ...] = (
    Option(
        "--upstream",
        "GATE_UPSTREAM",
        "upstream",
        "where allowed requests go: http://, https:// or unix:/path",
        parse_upstream,
        metavar="URL",
    ),
    Option(
        "--bind", "GATE_BIND", "bind", "public listener (default 127.0.0.1:8080)", parse_host_port, metavar="HOST:PORT"
    ),
    Option(
        "--metrics-bind",
        "GATE_METRICS_BIND",
        "metrics_bind",
        "listener for /metrics, /healthz, /readyz; 'off' disables (default 127.0.0.1:9464)",
        parse_optional_host_port,
        metavar="HOST:PORT",
    ),
    Option(
        "--metrics-public",
        "GATE_METRICS_PUBLIC",
        "metrics_public",
        "let --metrics-bind take a public or wildcard address (it serves /metrics and readiness to anyone there)",
        parse_bool,
        is_switch=True,
    ),
    Option(
        "--rules",
        "GATE_RULES",
        "rules",
        "policy file or directory (default: the shipped rules)",
        parse_existing_path,
        metavar="PATH",
    ),
    Option(
        "--store",
        "GATE_STORE",
        "store",
        "memory:// (default, one instance), or redis://, rediss://, redis+sentinel://, redis+cluster:// shared by all",
        parse_store,
        metavar="URL",
    ),
    Option(
        "--store-timeout",
        "GATE_STORE_TIMEOUT",
        "store_timeout",
        f"seconds a shared-store call may take before a fallback answers (default {DEFAULT_STORE_TIMEOUT:g})",
        parse_store_timeout,
        metavar="SECONDS",
    ),
    Option(
        "--store-failure",
        "GATE_STORE_FAILURE",
        "store_failure",
        "while the shared store is down: open (default; limits counted per instance) or closed (503 instead)",
        parse_store_failure,
        metavar="MODE",
    ),
    Option(
        "--secret-file",
        "GATE_SECRET_FILE",
        "secret_file",
        "key file written by `gate keygen`; without it a temporary key is used",
        parse_secret_file,
        metavar="PATH",
    ),
    Option(
        "--trusted-proxy",
        "GATE_TRUSTED_PROXIES",
        "trusted_proxies",
        "CIDR whose X-Forwarded-For is believed; repeatable (env: comma-separated)",
        parse_many=parse_networks,
        metavar="CIDR",
    ),
    Option("--workers", "GATE_WORKERS", "workers", "worker processes (default 1)", parse_int, metavar="N"),
    Option(
        "--dry-run", "GATE_DRY_RUN", "dry_run", "decide, log and count, but always allow", parse_bool, is_switch=True
    ),
    Option(
        "--mode",
        "GATE_MODE",
        "mode",
        "proxy (default) or auth (decision endpoint for nginx auth_request)",
        parse_mode,
        metavar="MODE",
    ),
    Option(
        "--auth-cache",
        "GATE_AUTH_CACHE",
        "auth_cache",
        "auth mode: seconds nginx may reuse a decision that lets a request through, for the same client, URI, "
        "User-Agent and cookies (X-Accel-Expires; default 0, ask gate every time)",
        parse_auth_cache,
        metavar="SECONDS",
    ),
    Option(
        "--preserve-host",
        "GATE_PRESERVE_HOST",
        "preserve_host",
        "send the client's Host upstream (true, default) or the upstream's own (false)",
        parse_bool,
        metavar="BOOL",
    ),
    Option(
        "--connect-timeout",
        "GATE_CONNECT_TIMEOUT",
        "connect_timeout",
        "seconds to connect to the upstream (default 5)",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--upstream-timeout",
        "GATE_UPSTREAM_TIMEOUT",
        "upstream_timeout",
        "seconds the upstream may stay silent before 504 (default 60)",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--shutdown-timeout",
        "GATE_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        "seconds in-flight requests get to finish after SIGTERM (default 30)",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--max-header-size",
        "GATE_MAX_HEADER_SIZE",
        "max_header_size",
        f"bytes a request head (target, headers, cookies) may take before 431 (default {DEFAULT_HEAD_BYTES})",
        parse_header_size,
        metavar="BYTES",
    ),
    Option(
        "--header-timeout",
        "GATE_HEADER_TIMEOUT",
        "header_timeout",
        f"seconds a client has to send a whole request head, from its first byte (default {DEFAULT_HEAD_TIMEOUT:g})",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--client-timeout",
        "GATE_CLIENT_TIMEOUT",
        "client_timeout",
        "seconds an upload may stall, or a client leave a response unread, before the connection is closed "
        f"(default {DEFAULT_STALL_TIMEOUT:g})",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--keep-alive-timeout",
        "GATE_KEEP_ALIVE_TIMEOUT",
        "keep_alive_timeout",
        "seconds an idle keep-alive connection stays open after its last response; a proxy in front must close its "
        f"own idle connections to gate sooner (default {DEFAULT_KEEP_ALIVE_TIMEOUT:g})",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--max-connections",
        "GATE_MAX_CONNECTIONS",
        "max_connections",
        "open client connections per worker; requests beyond get 503 (default 4096)",
        parse_int,
        metavar="N",
    ),
    Option(
        "--own-prefix",
        "GATE_OWN_PREFIX",
        "own_prefix",
        "path prefix of gate's own pages (default /.gate/)",
        parse_prefix,
        metavar="PATH",
    ),
    Option(
        "--cookie-domain",
        "GATE_COOKIE_DOMAIN",
        "cookie_domain",
        "domain of the pass cookie, to share it with subdomains (default: this host only)",
        parse_cookie_domain,
        metavar="DOMAIN",
    ),
    Option(
        "--pass-lifetime",
        "GATE_PASS_LIFETIME",
        "pass_lifetime",
        "seconds a solved challenge's pass token lasts (default 86400)",
        parse_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--pass-budget",
        "GATE_PASS_BUDGET",
        "pass_budget",
        "requests one pass token may make before a new challenge (default 1000; a tenth without JavaScript)",
        parse_int,
        metavar="N",
    ),
    Option(
        "--contact",
        "GATE_CONTACT",
        "contact",
        "how visitors reach the site owner, shown on the challenge page (e.g. an email address)",
        parse_contact,
        metavar="TEXT",
    ),
    Option(
        "--resolver",
        "GATE_RESOLVER",
        "resolver",
        "DNS server for verifying crawlers by reverse DNS, IP[:PORT] (default: the system's, /etc/resolv.conf)",
        parse_resolver,
        metavar="IP[:PORT]",
    ),
    Option(
        "--dns-timeout",
        "GATE_DNS_TIMEOUT",
        "dns_timeout",
        f"seconds one reverse DNS verification may take in all (default {DEFAULT_DNS_TIMEOUT:g})",
        parse_verify_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--verify-wait",
        "GATE_VERIFY_WAIT",
        "verify_wait",
        "seconds a request waits for an uncached reverse DNS lookup or key directory before it is decided as "
        f"unconfirmed (default {DEFAULT_VERIFY_WAIT:g}; the lookup goes on and later requests use its answer)",
        parse_verify_seconds,
        metavar="SECONDS",
    ),
    Option(
        "--allow-private-key-directories",
        "GATE_ALLOW_PRIVATE_KEY_DIRECTORIES",
        "allow_private_key_directories",
        "fetch Web Bot Auth key directories from loopback and private addresses too (tests, closed networks)",
        parse_bool,
        is_switch=True,
    ),
    Option(
        "--log-level",
        "GATE_LOG_LEVEL",
        "log_level",
        "debug, info (default), warning or error",
        parse_log_level,
        metavar="LEVEL",
    ),
)


def settings_from(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Build Settings from parsed flags (None or [] when absent) and the environment; all problems at once."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for option in SERVE_OPTIONS:
        raw = flags.get(option.dest)
        source = option.flag
        if raw is None or raw == []:
            if option.env not in environ:
                continue
            raw = environ[option.env]
            source = option.env
        try:
            if option.parse_many is not None:
                values[option.dest] = option.parse_many([raw] if isinstance(raw, str) else raw)
            elif option.is_switch and raw is True:
                values[option.dest] = True
            else:
                assert option.parse is not None
                values[option.dest] = option.parse(raw)
        except ValueError as error:
            problems.append(f"{source}: {error}")
    if values.get("workers", 1) > 1 and urlsplit(values.get("store", "memory://")).scheme == "memory":
        problems.append(
            "--workers: each worker process would keep its own memory:// store, so a solved challenge could be spent"
            " once per worker and budgets counted apart: use --store redis://… with several workers"
        )
    metrics_bind = values.get("metrics_bind", DEFAULT_METRICS_BIND)
    if metrics_bind is not None and not values.get("metrics_public") and not is_private_host(metrics_bind.host):
        problems.append(
            f"--metrics-bind: {metrics_bind} is a public or wildcard address; /metrics and /readyz would answer anyone"
            " who reaches it. Bind a loopback or private address, or pass --metrics-public (GATE_METRICS_PUBLIC=true)"
            " if a firewall or a container network keeps it private"
        )
    if "upstream" not in values and not any(p.startswith(("--upstream", "GATE_UPSTREAM")) for p in problems):
        problems.append("--upstream: required (or set GATE_UPSTREAM), e.g. --upstream http://127.0.0.1:8081")
    if problems:
        raise ConfigError(problems)
    return Settings(**values)
