"""The deployment files check out as far as this machine can check them (it has no Docker engine, and systemd is
not running): the systemd units pass `systemd-analyze verify` and score well on `systemd-analyze security`, every
GATE_* setting the files give is one gate accepts, docker-compose.yml mounts only files that exist, the image's
install step installs a working gate, and the sample site's nginx config passes `nginx -t`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gate.config import SERVE_OPTIONS, settings_from
from gate.limits import DEFAULT_KEEP_ALIVE_TIMEOUT
from tests.support.nginx import check_nginx_config, nginx_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("gate.service", "gate-ranges-update.service", "gate-ranges-update.timer")
GATE = Path(sys.executable).parent / "gate"
ENVIRONMENT_NAMES = {option.env for option in SERVE_OPTIONS}


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units as shipped, with /opt/gate's gate replaced by this checkout's (verify checks it exists)."""
    directory = tmp_path_factory.mktemp("units")
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        (directory / name).write_text(text.replace("/opt/gate/bin/gate", str(GATE)))
    return directory


def test_the_systemd_units_pass_systemd_analyze_verify(units: Path) -> None:
    verified = subprocess.run(
        ["systemd-analyze", "verify", *(str(units / name) for name in UNITS)], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr.strip() == ""


def test_the_gate_unit_is_sandboxed(units: Path) -> None:
    """systemd's own exposure score (0 is locked down, 10 is exposed): docs/deployment.md quotes it."""
    scored = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(units / "gate.service")],
        capture_output=True,
        text=True,
    )
    score = re.search(r"Overall exposure level for gate\.service: (\d+\.\d+)", scored.stdout)
    assert score is not None, scored.stdout + scored.stderr
    assert float(score.group(1)) <= 2.0
    unit = (units / "gate.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit  # `systemctl reload gate` reloads the rules


def settings_in_env_file(text: str) -> dict[str, str]:
    """Every GATE_* line of an environment file, commented-out examples included."""
    found = re.findall(r"^#?\s*(GATE_[A-Z_]+)=(\S*)", text, flags=re.M)
    return dict(found)


def test_the_environment_file_names_only_real_options_with_valid_values() -> None:
    variables = settings_in_env_file((DEPLOY / "systemd" / "gate.env").read_text())
    assert set(variables) <= ENVIRONMENT_NAMES
    rules = variables.pop("GATE_RULES")  # an example path of the reader's own
    assert rules.startswith("/etc/gate/")
    settings = settings_from({}, variables)
    assert settings.mode == "auth" and settings.workers == 2


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_is_gate_in_front_of_nginx_with_redis_prometheus_and_grafana(compose: dict[str, object]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    assert {"gate", "web", "redis", "prometheus", "grafana", "keygen"} <= set(services)
    gate, web = services["gate"], services["web"]
    assert gate["ports"] == ["8080:8080"] and "ports" not in web  # only gate faces clients
    assert gate["read_only"] is True and gate["cap_drop"] == ["ALL"]
    environment = dict(gate["environment"])
    assert environment.pop("GATE_SECRET_FILE") == "/keys/secret.key"  # inside the container: the keys volume
    settings = settings_from({}, environment)
    assert settings.upstream.origin == "http://web:80"
    assert settings.store.startswith("redis://redis:")
    assert "maxmemory-policy" in " ".join(services["redis"]["command"])


def test_compose_mounts_only_files_that_exist(compose: dict[str, object]) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    mounted = [
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounted, "no bind mounts found"
    missing = [source for source in mounted if not (ROOT / source).exists()]
    assert missing == []
    for service in services.values():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_the_image_runs_gate_unprivileged_with_a_health_check() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.M):
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "127.0.0.1:9464/healthz" in dockerfile and "GATE_METRICS_BIND=0.0.0.0:9464" in dockerfile
    install = re.search(r"RUN python -m venv /opt/gate && /opt/gate/bin/pip install \.", dockerfile)
    assert install is not None
    assert "python3 -m venv /opt/gate" in (ROOT / "docs" / "deployment.md").read_text()  # the documented steps


def test_the_images_install_step_installs_a_gate_with_its_rules_and_pages(tmp_path: Path) -> None:
    """`pip install .` (not the editable install tests run from) carries the shipped rules, network lists and the
    challenge page's scripts: the installed copy lints its own rules and finds its static files. The wheel is
    built as the image builds it, in an isolated build environment (pip fetches setuptools for it), but without
    compiling: that takes minutes, and the suite itself runs on the compiled modules (tests/test_compiled.py)."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "GATE_PURE_PYTHON": "1"},
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheel_dir.glob("gate-*.whl")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    probe = (
        "import gate, gate.cli, pathlib; from gate.policy import shipped_rules; "
        "assert pathlib.Path(gate.__file__).is_relative_to(pathlib.Path(sys.argv[1])), gate.__file__; "
        "assert (shipped_rules() / 'networks' / 'verified' / 'google-crawlers.txt').is_file(); "
        "assert (pathlib.Path(gate.__file__).parent / 'challenge' / 'static' / 'solver.js').is_file(); "
        "raise SystemExit(gate.cli.main(['rules', 'lint']))"
    )
    linted = subprocess.run(
        [sys.executable, "-c", "import sys; " + probe, str(target)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "ok:" in linted.stdout


def test_the_sample_sites_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    text = (DEPLOY / "nginx" / "site.conf").read_text()
    text = text.replace("listen 80;", "listen 127.0.0.1:8;").replace(
        "/usr/share/nginx/html", str(ROOT / "examples/site")
    )
    checked = check_nginx_config(nginx_config(tmp_path / "nginx", text))
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("name", ["gate-proxy.conf", "gate-auth.conf"])
def test_nginx_closes_its_idle_connections_to_gate_before_gate_does(name: str) -> None:
    """Else nginx can send a request on a connection gate is closing, and a POST fails with 502 (not retried)."""
    upstream = re.search(r"^upstream gate \{(.*?)^\}", (DEPLOY / "nginx" / name).read_text(), flags=re.M | re.S)
    assert upstream is not None
    idle = re.search(r"^\s*keepalive_timeout (\d+)s;", upstream.group(1), flags=re.M)
    assert idle is not None, f"{name}: the gate upstream has no keepalive_timeout (nginx's default is 60 s)"
    assert int(idle.group(1)) < DEFAULT_KEEP_ALIVE_TIMEOUT
