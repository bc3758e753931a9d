"""What the harnesses share: gate's modules imported under atheris' coverage instrumentation, one key ring and one
client, genuine tokens to start the corpus from (generated at run time, never committed), and the libFuzzer run.

The tokens are the same in every run (fixed ids, a fixed clock), so a corpus kept between runs stays meaningful: the
only genuine tokens a harness can meet are these."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gate"]):
    from gate.challenge.pow import Challenge, user_agent_hash, work_done
    from gate.challenge.tokens import PassToken
    from gate.check import NO_PROXIES
    from gate.facts import Facts
    from gate.keys import KeyRing, SecretKey
    from gate.terms.consent import ConsentToken

NOW = 1_800_000_000.0
KEYS = KeyRing((SecretKey(b"k" * 32), SecretKey(b"o" * 32)))
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def request(headers: Sequence[tuple[bytes, bytes]] = ()) -> Facts:
    """The facts of a request as uvicorn hands it over: header bytes as they came."""
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "https", "path": "/", "raw_path": b"/",
        "query_string": b"", "headers": [(b"host", b"blog.example"), (b"user-agent", UA.encode()), *headers],
        "client": ("203.0.113.7", 50000), "server": None,
    }  # fmt: skip
    return Facts.from_scope(scope, NO_PROXIES)


CLIENT = request()
PASS = PassToken("fuzz-pass", int(NOW) + 3600, CLIENT.prefix, user_agent_hash(UA), "challenge-scripts", "js", 50, 16)
CONSENT = ConsentToken("fuzz-consent", "GPTBot", "train-ai", "2026-11-28", int(NOW) + 86400)
CHALLENGE = Challenge("fuzz-challenge", "js", int(NOW), 4, "rule", CLIENT.prefix, user_agent_hash(UA), "/essays/")
CHALLENGE_TEXT = CHALLENGE.seal(KEYS)
NONCE = next(str(nonce) for nonce in range(10_000) if work_done(CHALLENGE_TEXT, str(nonce), 4))


def fuzz(test_one_input: Callable[[bytes], None], seeds: Sequence[bytes]) -> None:
    """Run libFuzzer on `test_one_input` with the command line's flags; an empty corpus directory gets `seeds`."""
    for argument in sys.argv[1:]:
        corpus = Path(argument)
        if not argument.startswith("-") and corpus.is_dir() and not any(corpus.iterdir()):
            for number, seed in enumerate(seeds):
                (corpus / f"seed-{number}").write_bytes(seed)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
