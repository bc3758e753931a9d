"""A few seconds of coverage-guided fuzzing (atheris, libFuzzer) of the token and cookie parsers on every test run:
no input may make them raise anything but their documented refusals. `make fuzz` runs the same harnesses for longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has wheels for x86_64 only")

REPOSITORY = Path(__file__).resolve().parent.parent.parent
SECONDS = 2


@pytest.mark.parametrize("target", ["tokens", "cookies"])
def test_a_short_fuzzing_run_finds_no_input_that_escapes_the_parsers(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", f"fuzz.{target}", str(corpus), f"-max_total_time={SECONDS}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=0"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert len(list(corpus.iterdir())) > 2  # the seeds were written and the fuzzer found paths beyond them
