"""The command line: `gate serve` refuses invalid settings at start (one clear line per problem, exit status 2, no
traceback), and what the other commands take is read as meant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import build_parser
from gate.config import SERVE_OPTIONS
from gate.terms.consent import ConsentToken


def gate_serve(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", "serve", *arguments],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize(
    ("arguments", "env", "expected"),
    [
        (["--upstream", "ftp://files.example"], {}, "--upstream: 'ftp://files.example': expected http://"),
        (["--upstream", "unix:relative.sock"], {}, "--upstream: 'unix:relative.sock': a unix socket upstream needs"),
        (["--upstream", "http://127.0.0.1:1", "--bind", "8080"], {}, "--bind: '8080': expected HOST:PORT"),
        (["--upstream", "http://127.0.0.1:1", "--workers", "0"], {}, "--workers: 0 is below the minimum of 1"),
        (["--upstream", "http://127.0.0.1:1", "--trusted-proxy", "10.0.0.0/33"], {}, "--trusted-proxy: '10.0.0.0/33'"),
        (["--upstream", "http://127.0.0.1:1", "--mode", "sidecar"], {}, "--mode: 'sidecar': expected proxy or auth"),
        (["--upstream", "http://127.0.0.1:1", "--store", "mongodb://x"], {}, "--store: 'mongodb://x': expected"),
        ([], {"GATE_UPSTREAM": "http://127.0.0.1:1", "GATE_DRY_RUN": "perhaps"}, "GATE_DRY_RUN: 'perhaps' is not a"),
        (
            [],
            {"GATE_UPSTREAM": "http://127.0.0.1:1", "GATE_UPSTREAM_TIMEOUT": "-1"},
            "GATE_UPSTREAM_TIMEOUT: -1.0 must",
        ),
        ([], {}, "--upstream: required"),
        (["--upstream", "http://127.0.0.1:1", "--rules", "/nonexistent/rules"], {}, "--rules: /nonexistent/rules: no"),
        (["--upstream", "http://127.0.0.1:1", "--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
        (["--upstream", "http://127.0.0.1:1", "--workers", "2"], {}, "--workers: each worker process would keep"),
    ],
)
def test_invalid_value_is_one_line_and_exit_2(arguments: list[str], env: dict[str, str], expected: str) -> None:
    result = gate_serve(*arguments, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gate: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_every_problem_is_reported_together() -> None:
    result = gate_serve("--upstream", "gopher://x", "--workers", "many", "--bind", "nowhere")
    assert result.returncode == 2
    problems = result.stderr.strip().splitlines()
    assert [line.split(":")[2].strip() for line in problems] == ["--upstream", "--bind", "--workers"]


def test_malformed_secret_file_names_file_and_line(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# comment\nnot-a-key!\n")
    result = gate_serve("--upstream", "http://127.0.0.1:1", "--secret-file", str(key_file))
    assert result.returncode == 2
    assert f"--secret-file: {key_file}:2: " in result.stderr


def test_every_serve_option_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [o.flag for o in SERVE_OPTIONS if o.flag not in readme or o.env not in readme]
    assert not missing, f"options missing from README.md: {missing}"


def test_a_consent_id_never_looks_like_an_option_and_an_older_one_can_still_be_named() -> None:
    """`gate consent revoke ID` reads an id starting with "-" as an option: new ids never start with one (about one
    in 64 did), and an older one is given after "--"."""
    ids = [ConsentToken.mint("GPTBot", "train-ai", "1", 60, 0).id for _ in range(2000)]
    assert not [consent_id for consent_id in ids if consent_id.startswith("-")]
    assert build_parser().parse_args(["consent", "revoke", "--", "-AbC"]).id == "-AbC"
