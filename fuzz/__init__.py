"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers every client reaches: `make fuzz`, or briefly in
tests/security/test_fuzz_briefly.py. Each harness runs as `python -m fuzz.NAME [CORPUS_DIR] [libFuzzer flags]`."""
