"""Hostile pass tokens and challenge answers against two running gates that share a key file and a Redis: forged,
truncated, re-spelt, signed by a rotated-out or unknown key, edited, bound to another client, expired, replayed on the
other instance or past their budget. Each earns at most a fresh challenge or a 4xx, never a pass cookie, and the
request never reaches the upstream."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from gate.challenge.budgets import FLUSH_SECONDS
from gate.challenge.pow import Challenge, user_agent_hash
from gate.challenge.tokens import PassToken
from gate.keys import KeyRing, SecretKey, write_key_file
from gate.terms.consent import ConsentToken
from tests.support.gate_process import GateProcess, start_gate
from tests.support.recording import RecordingUpstream
from tests.support.redis_server import redis_server
from tests.support.solver import read_challenge, solve

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
OTHER_UA = UA.replace("131", "132")
CLIENT_NETWORK = "127.0.0.0/24"  # the tests' loopback client, as gate binds tokens to it
DIFFICULTY = 8
RULES = f"""
agents: [shipped:agents/*.yaml]
rules:
  - {{name: own-pages, match: {{path: /.gate/**}}, action: allow}}
default: {{action: challenge, difficulty: {DIFFICULTY}}}
"""
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class Keys:
    """The key file after two rotations (current, previous), the key rotated out of it, and a stranger's key."""

    path: Path
    current: KeyRing
    previous: KeyRing
    retired: KeyRing
    unknown: KeyRing


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    path = tmp_path_factory.mktemp("keys") / "secret.key"
    retired = write_key_file(path)
    write_key_file(path, rotate=True)
    current, previous = write_key_file(path, rotate=True).keys
    assert retired.signing not in (current, previous)
    return Keys(path, KeyRing((current,)), KeyRing((previous,)), retired, KeyRing((SecretKey.generate(),)))


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream, keys: Keys
) -> Iterator[tuple[GateProcess, GateProcess]]:
    """Two instances behind one site. Their Redis is their own: a budget used up here raises the challenges of the
    whole loopback network for an hour, which must not reach other modules' gates."""
    directory = tmp_path_factory.mktemp("tokens")
    rules = directory / "rules.yaml"
    rules.write_text(RULES)
    with redis_server(directory) as store:
        options = ("--rules", str(rules), "--store", store, "--secret-file", str(keys.path))
        first = start_gate(directory / "a", upstream.url, *options)
        try:
            second = start_gate(directory / "b", upstream.url, *options)
            try:
                yield first, second
            finally:
                second.stop()
        finally:
            first.stop()


def browser(gate: GateProcess, user_agent: str = UA) -> httpx.Client:
    """A client that has seen a challenge page (it holds the probe cookie a genuine answer comes with)."""
    client = httpx.Client(base_url=gate.url, headers={"User-Agent": user_agent}, timeout=10)
    client.cookies.set("gate_probe", "1", path="/.gate/")
    return client


# --- building tokens as gate would, then spoiling them ----------------------------------------------------------------


def pass_token(keys: KeyRing, **changes: object) -> str:
    token = PassToken("t" + str(time.monotonic_ns()), int(time.time()) + 3600, CLIENT_NETWORK, user_agent_hash(UA),
                      "default", "js", 100, DIFFICULTY)  # fmt: skip
    return replace(token, **changes).seal(keys)  # type: ignore[arg-type]


def challenge_token(keys: KeyRing, kind: str = "js", **changes: object) -> str:
    challenge = Challenge("c" + str(time.monotonic_ns()), "js", int(time.time()), DIFFICULTY, "default",
                          CLIENT_NETWORK, user_agent_hash(UA), "/landing")  # fmt: skip
    return replace(challenge, kind=kind, **changes).seal(keys)  # type: ignore[arg-type]


def edited(token: str, **fields: object) -> str:
    """The token with fields of its payload changed and its signature kept."""
    version, payload, key_id, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    encoded = base64.urlsafe_b64encode(json.dumps(data | fields, separators=(",", ":")).encode()).decode()
    return f"{version}.{encoded.rstrip('=')}.{key_id}.{signature}"


def payload_padded(token: str) -> str:
    version, payload, rest = token.split(".", 2)
    return f"{version}.{payload}=.{rest}"


def relabelled(token: str, keys: Keys) -> str:
    """Signed by the retired key but naming the current one."""
    version, payload, _, signature = token.split(".")
    return f"{version}.{payload}.{keys.current.signing.id}.{signature}"


def signature_respelt(token: str, how: str) -> str:
    """The same signature bytes written another way: a lenient base64 decoder reads them all alike."""
    head, signature = token.rsplit(".", 1)
    if how == "padded":
        signature += "="
    elif how == "standard-alphabet":
        signature = signature.replace("-", "+").replace("_", "/")
    elif how == "spare-bits":  # the last character carries 2 bits and 4 unused ones
        signature = signature[:-1] + ALPHABET[ALPHABET.index(signature[-1]) ^ 1]
    elif how == "stray-character":
        signature = signature[:20] + "!" + signature[20:]
    return f"{head}.{signature}"


def respellable(make: Callable[[], str]) -> str:
    """A token whose signature has a "-" or "_", so that the standard alphabet spells it differently."""
    return next(token for token in iter(make, None) if {"-", "_"} & set(token.rsplit(".", 1)[1]))


HOSTILE_PASSES: dict[str, Callable[[Keys], str]] = {
    "retired-key": lambda keys: pass_token(keys.retired),
    "unknown-key": lambda keys: pass_token(keys.unknown),
    "retired-key-naming-the-current-one": lambda keys: relabelled(pass_token(keys.retired), keys),
    "truncated-by-one": lambda keys: pass_token(keys.current)[:-1],
    "without-signature": lambda keys: pass_token(keys.current).rsplit(".", 1)[0],
    "half": lambda keys: pass_token(keys.current)[:60],
    "padded-signature": lambda keys: signature_respelt(pass_token(keys.current), "padded"),
    "standard-alphabet": lambda keys: signature_respelt(
        respellable(lambda: pass_token(keys.current)), "standard-alphabet"
    ),
    "spare-bits-set": lambda keys: signature_respelt(pass_token(keys.current), "spare-bits"),
    "stray-character": lambda keys: signature_respelt(pass_token(keys.current), "stray-character"),
    "padded-payload": lambda keys: payload_padded(pass_token(keys.current)),
    "budget-raised": lambda keys: edited(pass_token(keys.current, budget=1), budget=10**9),
    "expiry-extended": lambda keys: edited(pass_token(keys.current, expires=int(time.time()) - 1), expires=2**40),
    "level-raised": lambda keys: edited(pass_token(keys.current, level=0), level=32),
    "rebound-to-this-network": lambda keys: edited(
        pass_token(keys.current, prefix="198.51.100.0/24"), prefix=CLIENT_NETWORK
    ),
    "rebound-to-this-browser": lambda keys: edited(
        pass_token(keys.current, ua=user_agent_hash(OTHER_UA)), ua=user_agent_hash(UA)
    ),
    "genuine-for-another-network": lambda keys: pass_token(keys.current, prefix="198.51.100.0/24"),
    "genuine-for-another-browser": lambda keys: pass_token(keys.current, ua=user_agent_hash(OTHER_UA)),
    "genuine-but-expired": lambda keys: pass_token(keys.current, expires=int(time.time()) - 1),
    "genuine-but-earned-at-a-lower-difficulty": lambda keys: pass_token(keys.current, level=DIFFICULTY - 1),
    "a-challenge-instead": lambda keys: challenge_token(keys.current),
    "a-consent-instead": lambda keys: ConsentToken("x", "GPTBot", "train-ai", "1", 2**40).seal(keys.current),
}


def get_with_pass(gate: GateProcess, path: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=gate.url, headers={"User-Agent": UA}, timeout=10) as client:
        return client.get(path, headers={"Cookie": f"gate_pass={token}"})


def assert_challenged(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert "gate-challenge" in response.text  # a fresh challenge page, not the site
    assert "gate_pass" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("which", ["current", "previous"])
def test_a_pass_signed_by_either_key_in_the_file_opens_the_site(
    pair: tuple[GateProcess, GateProcess], upstream: RecordingUpstream, keys: Keys, which: str
) -> None:
    path = f"/private/good-pass-{which}"
    response = get_with_pass(pair[0], path, pass_token(getattr(keys, which)))
    assert response.text == "upstream uri=" + path
    assert len(upstream.forwarded(path)) == 1


@pytest.mark.parametrize("case", HOSTILE_PASSES)
def test_a_hostile_pass_is_worth_a_fresh_challenge_and_never_reaches_the_site(
    pair: tuple[GateProcess, GateProcess], upstream: RecordingUpstream, keys: Keys, case: str
) -> None:
    path = f"/private/pass-{case}"
    token = HOSTILE_PASSES[case](keys)
    for gate in pair:
        assert_challenged(get_with_pass(gate, path, token))
    assert upstream.forwarded(path) == []


def test_a_pass_budget_is_counted_across_instances_and_then_worth_nothing(
    pair: tuple[GateProcess, GateProcess], upstream: RecordingUpstream, keys: Keys
) -> None:
    path = "/private/budget"
    token = pass_token(keys.current, budget=3)
    first, second = pair
    answers = []
    for gate in (first, second, first):
        answers.append(get_with_pass(gate, path, token))
        time.sleep(FLUSH_SECONDS * 3)  # an instance adds its counts to the store every flush interval
    assert [answer.text for answer in answers] == ["upstream uri=" + path] * 3
    for gate in pair:  # spent on any instance, replayed on either
        assert_challenged(get_with_pass(gate, path, token))
    assert len(upstream.forwarded(path)) == 3


# --- answers to challenges -------------------------------------------------------------------------------------------


def answered(token: str) -> dict[str, str]:
    return {"challenge": token, "nonce": solve(token, DIFFICULTY), "elapsed_ms": "40"}


HOSTILE_ANSWERS: dict[str, Callable[[Keys], str]] = {
    "retired-key": lambda keys: challenge_token(keys.retired),
    "unknown-key": lambda keys: challenge_token(keys.unknown),
    "retired-key-naming-the-current-one": lambda keys: relabelled(challenge_token(keys.retired), keys),
    "truncated-by-one": lambda keys: challenge_token(keys.current)[:-1],
    "padded-signature": lambda keys: signature_respelt(challenge_token(keys.current), "padded"),
    "standard-alphabet": lambda keys: signature_respelt(
        respellable(lambda: challenge_token(keys.current)), "standard-alphabet"
    ),
    "spare-bits-set": lambda keys: signature_respelt(challenge_token(keys.current), "spare-bits"),
    "stray-character": lambda keys: signature_respelt(challenge_token(keys.current), "stray-character"),
    "difficulty-lowered": lambda keys: edited(challenge_token(keys.current), difficulty=0),
    "rebound-to-this-network": lambda keys: edited(
        challenge_token(keys.current, prefix="198.51.100.0/24"), prefix=CLIENT_NETWORK
    ),
    "issue-time-refreshed": lambda keys: edited(
        challenge_token(keys.current, issued=int(time.time()) - 3600), issued=int(time.time())
    ),
    "target-changed": lambda keys: edited(challenge_token(keys.current), to="//evil.example/"),
    "a-pass-instead": lambda keys: pass_token(keys.current),
}
# Genuine challenges this client may not redeem: a fresh challenge for the same page (a phone may change networks).
UNREDEEMABLE: dict[str, Callable[[Keys], str]] = {
    "for-another-network": lambda keys: challenge_token(keys.current, prefix="198.51.100.0/24"),
    "for-another-browser": lambda keys: challenge_token(keys.current, ua=user_agent_hash(OTHER_UA)),
    "eleven-minutes-old": lambda keys: challenge_token(keys.current, issued=int(time.time()) - 660),
    "issued-in-the-future": lambda keys: challenge_token(keys.current, issued=int(time.time()) + 600),
}


@pytest.mark.parametrize("case", HOSTILE_ANSWERS)
def test_a_forged_or_edited_challenge_is_refused_even_with_the_work_done(
    pair: tuple[GateProcess, GateProcess], keys: Keys, case: str
) -> None:
    with browser(pair[0]) as client:
        answer = client.post("/.gate/challenge/verify", data=answered(HOSTILE_ANSWERS[case](keys)))
    assert answer.status_code == 400
    assert "gate_pass" not in answer.headers.get("set-cookie", "")
    assert "location" not in answer.headers


@pytest.mark.parametrize("case", UNREDEEMABLE)
def test_a_genuine_challenge_for_another_client_or_time_earns_only_a_fresh_one(
    pair: tuple[GateProcess, GateProcess], keys: Keys, case: str
) -> None:
    token = UNREDEEMABLE[case](keys)
    with browser(pair[0]) as client:
        answer = client.post("/.gate/challenge/verify", data=answered(token), follow_redirects=False)
    assert_challenged(answer)
    assert read_challenge(answer.text).token != token


def test_work_cannot_be_replaced_by_waiting(pair: tuple[GateProcess, GateProcess], keys: Keys) -> None:
    """A proof-of-work challenge taken down the no-JavaScript path, long after its wait would have passed."""
    token = challenge_token(keys.current, issued=int(time.time()) - 120)
    with browser(pair[0]) as client:
        answer = client.get(f"/.gate/challenge/nojs?c={quote(token)}", follow_redirects=False)
    assert_challenged(answer)


def test_a_solution_raced_to_both_instances_is_redeemed_once(pair: tuple[GateProcess, GateProcess]) -> None:
    with browser(pair[0]) as client:
        challenge = read_challenge(client.get("/private/race").text)
    form = {"challenge": challenge.token, "nonce": solve(challenge.token, challenge.difficulty), "elapsed_ms": "40"}

    def submit(gate: GateProcess) -> int:
        with browser(gate) as racer:
            return racer.post("/.gate/challenge/verify", data=form, follow_redirects=False).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(submit, [*pair] * 4))
    assert sorted(statuses) == [200] * 7 + [303]


def test_a_waited_out_challenge_is_redeemed_once_across_instances(
    pair: tuple[GateProcess, GateProcess], keys: Keys
) -> None:
    token = challenge_token(keys.current, kind="nojs", issued=int(time.time()) - 60)
    url = f"/.gate/challenge/nojs?c={quote(token)}"
    with browser(pair[0]) as client:
        first = client.get(url, follow_redirects=False)
    with browser(pair[1]) as client:
        again = client.get(url, follow_redirects=False)
    assert first.status_code == 303 and "gate_pass=" in first.headers["set-cookie"]
    assert_challenged(again)
