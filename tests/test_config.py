"""settings_from: flag beats environment beats default; every invalid value is reported, one line each."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from gate.config import (
    ConfigError,
    HostPort,
    Settings,
    Upstream,
    parse_host_port,
    parse_upstream,
    settings_from,
)
from gate.keys import write_key_file
from gate.policy import shipped_rules

UPSTREAM = "http://127.0.0.1:8081"

SHARED = "redis://127.0.0.1:6379/0"  # several workers need a shared store


def settings(environ: dict[str, str] | None = None, **flags: Any) -> Settings:
    flags.setdefault("upstream", UPSTREAM)
    return settings_from(flags, environ or {})


def problems(environ: dict[str, str] | None = None, **flags: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from(flags, environ or {})
    return caught.value.problems


# --- precedence --------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    result = settings()
    assert result.bind == HostPort("127.0.0.1", 8080)
    assert result.metrics_bind == HostPort("127.0.0.1", 9464)
    assert result.store == "memory://"
    assert result.workers == 1
    assert result.trusted_proxies == ()
    assert result.dry_run is False
    assert result.mode == "proxy"
    assert result.preserve_host is True
    assert result.own_prefix == "/.gate/"
    assert result.rules == shipped_rules()
    assert (result.rules / "default.yaml").is_file()


def test_environment_beats_default() -> None:
    assert settings({"GATE_WORKERS": "4", "GATE_STORE": SHARED}).workers == 4


def test_flag_beats_environment() -> None:
    assert settings({"GATE_WORKERS": "4", "GATE_STORE": SHARED}, workers="8").workers == 8


def test_absent_flag_falls_back_to_environment() -> None:
    assert settings({"GATE_WORKERS": "4", "GATE_STORE": SHARED}, workers=None).workers == 4


def test_upstream_from_environment() -> None:
    result = settings_from({}, {"GATE_UPSTREAM": "http://backend:9000"})
    assert result.upstream.origin == "http://backend:9000"


def test_upstream_flag_beats_environment() -> None:
    result = settings_from({"upstream": "http://flag:1"}, {"GATE_UPSTREAM": "http://env:2"})
    assert result.upstream.origin == "http://flag:1"


def test_valid_flag_hides_an_invalid_environment_value() -> None:
    assert settings({"GATE_WORKERS": "many", "GATE_STORE": SHARED}, workers="2").workers == 2


# --- trusted proxies ---------------------------------------------------------------------------------------------


def test_trusted_proxies_from_environment_are_comma_separated() -> None:
    result = settings({"GATE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16,fd00::/8"})
    assert result.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_trusted_proxy_flag_is_repeatable() -> None:
    result = settings(trusted_proxies=["10.0.0.0/8", "127.0.0.1"])
    assert result.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


def test_trusted_proxy_flags_replace_the_environment() -> None:
    result = settings({"GATE_TRUSTED_PROXIES": "192.168.0.0/16"}, trusted_proxies=["10.0.0.0/8"])
    assert result.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


def test_empty_trusted_proxy_flag_list_falls_back_to_environment() -> None:
    result = settings({"GATE_TRUSTED_PROXIES": "192.168.0.0/16"}, trusted_proxies=[])
    assert result.trusted_proxies == (ipaddress.ip_network("192.168.0.0/16"),)


def test_invalid_trusted_proxy_names_the_value() -> None:
    found = problems(upstream=UPSTREAM, trusted_proxies=["10.0.0.0/8", "10.0.0.0/33"])
    assert len(found) == 1
    assert found[0].startswith("--trusted-proxy: ")
    assert "'10.0.0.0/33'" in found[0]


# --- upstream ----------------------------------------------------------------------------------------------------


def test_upstream_http_with_base_path() -> None:
    assert parse_upstream("http://127.0.0.1:8081/app/") == Upstream(
        origin="http://127.0.0.1:8081", base_path="/app", host="127.0.0.1:8081"
    )


def test_upstream_https_without_port() -> None:
    upstream = parse_upstream("https://backend.example")
    assert upstream.origin == "https://backend.example"
    assert upstream.base_path == ""
    assert upstream.host == "backend.example"
    assert upstream.unix_socket is None


def test_upstream_ipv6_host_keeps_brackets() -> None:
    upstream = parse_upstream("http://[::1]:8081")
    assert upstream.origin == "http://[::1]:8081"
    assert upstream.host == "[::1]:8081"


def test_upstream_unix_socket() -> None:
    upstream = parse_upstream("unix:/run/app.sock")
    assert upstream.unix_socket == "/run/app.sock"
    assert upstream.origin == "http://localhost"
    assert str(upstream) == "unix:/run/app.sock"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://files.example", "expected http://"),
        ("unix:run/app.sock", "absolute path"),
        ("http://backend/?debug=1", "no query"),
        ("http://backend/#top", "no query, fragment"),
        ("http://user:secret@backend", "credentials"),
        ("http://backend:99999", "invalid port"),
        ("http://backend:http", "invalid port"),
        ("http:///path", "no host"),
        ("127.0.0.1:8081", "expected http://"),
    ],
)
def test_upstream_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_upstream(text)


def test_invalid_upstream_is_reported_once_and_not_also_as_missing() -> None:
    assert problems(upstream="ftp://files.example") == [
        "--upstream: 'ftp://files.example': expected http://HOST[:PORT], https://HOST[:PORT] or unix:/PATH"
    ]


def test_invalid_upstream_from_environment_names_the_variable() -> None:
    found = problems({"GATE_UPSTREAM": "unix:relative.sock"})
    assert len(found) == 1
    assert found[0].startswith("GATE_UPSTREAM: ")


def test_missing_upstream_is_an_error() -> None:
    found = problems()
    assert len(found) == 1
    assert found[0].startswith("--upstream: required")


# --- host:port ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", HostPort("127.0.0.1", 8080)),
        ("0.0.0.0:0", HostPort("0.0.0.0", 0)),
        ("localhost:65535", HostPort("localhost", 65535)),
        ("[::1]:8080", HostPort("::1", 8080)),
        ("[::]:443", HostPort("::", 443)),
    ],
)
def test_host_port_parses(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected


def test_host_port_prints_ipv6_in_brackets() -> None:
    assert str(HostPort("::1", 8080)) == "[::1]:8080"
    assert str(HostPort("127.0.0.1", 8080)) == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::1:8080", "brackets"),
        ("8080", "expected HOST:PORT"),
        (":8080", "expected HOST:PORT"),
        ("localhost", "expected HOST:PORT"),
        ("127.0.0.1:65536", "0-65535"),
        ("127.0.0.1:-1", "minimum"),
        ("127.0.0.1:http", "not a whole number"),
    ],
)
def test_host_port_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_host_port(text)


def test_bind_from_flag_and_metrics_off() -> None:
    result = settings(bind="[::1]:9000", metrics_bind="off")
    assert result.bind == HostPort("::1", 9000)
    assert result.metrics_bind is None


# --- booleans ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("true", True), ("Yes", True), ("ON", True)])
def test_true_booleans(text: str, expected: bool) -> None:
    assert settings({"GATE_DRY_RUN": text}).dry_run is expected


@pytest.mark.parametrize("text", ["0", "false", "No", "off", ""])
def test_false_booleans(text: str) -> None:
    assert settings({"GATE_PRESERVE_HOST": text}).preserve_host is False


def test_dry_run_switch_beats_environment() -> None:
    assert settings({"GATE_DRY_RUN": "false"}, dry_run=True).dry_run is True


def test_preserve_host_flag_beats_environment() -> None:
    assert settings({"GATE_PRESERVE_HOST": "true"}, preserve_host="false").preserve_host is False


def test_invalid_boolean_is_reported() -> None:
    assert problems({"GATE_DRY_RUN": "perhaps"}, upstream=UPSTREAM) == [
        "GATE_DRY_RUN: 'perhaps' is not a boolean (use true/false, yes/no, on/off or 1/0)"
    ]


# --- other values ------------------------------------------------------------------------------------------------


def test_other_values_parse() -> None:
    result = settings(
        {"GATE_CONNECT_TIMEOUT": "2.5", "GATE_LOG_LEVEL": "DEBUG"},
        mode="auth",
        store="redis://127.0.0.1:6379/0",
        upstream_timeout="30",
        own_prefix="/_gate/",
    )
    assert result.connect_timeout == 2.5
    assert result.log_level == "debug"
    assert result.mode == "auth"
    assert result.store == "redis://127.0.0.1:6379/0"
    assert result.upstream_timeout == 30.0
    assert result.own_prefix == "/_gate/"


def test_store_rejects_unknown_schemes() -> None:
    found = problems(upstream=UPSTREAM, store="mongodb://db")
    assert len(found) == 1
    assert found[0].startswith("--store: ")


@pytest.mark.parametrize("store", ["memory://?max_keys=abc", "memory://?max_keys=0"])
def test_store_with_invalid_memory_bound_is_reported_at_start(store: str) -> None:
    # open_store() would otherwise fail later with a traceback instead of a one-line --store problem.
    found = problems(upstream=UPSTREAM, store=store)
    assert len(found) == 1
    assert found[0].startswith("--store: ")


def test_rules_path_must_exist(tmp_path: Path) -> None:
    found = problems(upstream=UPSTREAM, rules=str(tmp_path / "missing"))
    assert found == [f"--rules: {tmp_path / 'missing'}: no such file or directory"]


# --- several problems --------------------------------------------------------------------------------------------


def test_several_invalid_values_are_reported_together_one_line_each() -> None:
    found = problems(
        {"GATE_WORKERS": "0", "GATE_MODE": "sidecar", "GATE_CONNECT_TIMEOUT": "-1"},
        upstream="gopher://x",
        bind="nowhere",
        own_prefix="gate",
    )
    assert [line.split(":", 1)[0] for line in found] == [
        "--upstream",
        "--bind",
        "GATE_WORKERS",
        "GATE_MODE",
        "GATE_CONNECT_TIMEOUT",
        "--own-prefix",
    ]
    assert all("\n" not in line for line in found)


def test_config_error_message_is_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({"bind": "nowhere"}, {"GATE_WORKERS": "0"})
    assert str(caught.value).splitlines() == caught.value.problems
    assert len(caught.value.problems) == 3


# --- secret file -------------------------------------------------------------------------------------------------


def test_secret_file_is_loaded_at_start(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    write_key_file(key_file)
    assert settings(secret_file=str(key_file)).secret_file == key_file


def test_malformed_secret_file_names_file_and_line(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# gate keys\n\ntoo-short\n")
    found = problems(upstream=UPSTREAM, secret_file=str(key_file))
    assert len(found) == 1
    assert found[0].startswith(f"--secret-file: {key_file}:3: ")


def test_missing_secret_file_is_reported(tmp_path: Path) -> None:
    found = problems({"GATE_SECRET_FILE": str(tmp_path / "nope")}, upstream=UPSTREAM)
    assert found == [f"GATE_SECRET_FILE: {tmp_path / 'nope'}: no such file"]


def test_secret_file_without_keys_is_reported(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# only a comment\n")
    found = problems(upstream=UPSTREAM, secret_file=str(key_file))
    assert len(found) == 1
    assert "no key in the file" in found[0]


def test_several_workers_need_a_shared_store() -> None:
    with pytest.raises(ConfigError) as error:
        settings({"GATE_WORKERS": "2"})
    assert any("--store redis://" in problem for problem in error.value.problems)


# --- client limits and the metrics listener --------------------------------------------------------------------


def test_client_limits_parse_and_have_safe_defaults() -> None:
    assert settings().max_header_size == 65536
    result = settings(
        {"GATE_HEADER_TIMEOUT": "5", "GATE_MAX_CONNECTIONS": "100", "GATE_KEEP_ALIVE_TIMEOUT": "75"},
        max_header_size="16384",
        client_timeout="20",
    )
    limits = (result.max_header_size, result.header_timeout, result.client_timeout, result.max_connections)
    assert limits == (16384, 5.0, 20.0, 100)
    assert (settings().keep_alive_timeout, result.keep_alive_timeout) == (5.0, 75.0)


@pytest.mark.parametrize("size", ["100", "4000000", "lots"])
def test_a_header_limit_below_a_request_line_or_over_a_mebibyte_is_refused(size: str) -> None:
    assert problems(upstream=UPSTREAM, max_header_size=size)[0].startswith("--max-header-size:")


@pytest.mark.parametrize("bind", ["0.0.0.0:9464", "[::]:9464", "1.1.1.1:9464", "metrics.example.org:9464"])
def test_a_public_or_wildcard_metrics_listener_needs_its_own_flag(bind: str) -> None:
    [problem] = problems(upstream=UPSTREAM, metrics_bind=bind)
    assert problem.startswith("--metrics-bind:") and "--metrics-public" in problem
    assert settings(metrics_bind=bind, metrics_public=True).metrics_bind is not None
    assert settings({"GATE_METRICS_BIND": bind, "GATE_METRICS_PUBLIC": "true"}).metrics_public


@pytest.mark.parametrize("bind", ["127.0.0.1:9464", "[::1]:9464", "10.0.0.5:9464", "localhost:9464", "off"])
def test_loopback_and_private_metrics_listeners_need_no_flag(bind: str) -> None:
    settings(metrics_bind=bind)


def test_auth_cache_is_off_by_default_and_whole_seconds_up_to_a_minute() -> None:
    assert settings().auth_cache == 0
    assert settings({"GATE_AUTH_CACHE": "2"}).auth_cache == 2
    for refused in ("-1", "61", "1.5", "soon"):
        assert problems(upstream=UPSTREAM, auth_cache=refused)[0].startswith("--auth-cache:")
