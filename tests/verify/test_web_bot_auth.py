"""Web Bot Auth (HTTP Message Signatures for bots) end to end: keys generated here, a key directory served over TLS
on loopback (reachable because these verifiers allow private addresses, which gate refuses by default), and the
signature states, signers, verified agents and decisions a site owner would see."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gate.facts import Facts
from gate.fingerprint import Signals
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy, parse_signer
from gate.policy.model import Action, Decision
from gate.store.memory import MemoryStore
from gate.verify import SignatureCheck, Verifier
from gate.verify.directory import MAX_BYTES, KeyDirectories, b64url_decode, is_public, parse_keys, thumbprint
from gate.verify.rdns import ReverseDns
from gate.verify.signatures import (
    MAX_VALIDITY,
    Invalid,
    Unsupported,
    directory_url,
    parse_dictionary,
    read_signature,
    signature_base,
)
from tests.policy.helpers import CHATGPT_USER_UA, CHROME_UA, CLIENT, browser_headers, facts_for, write_rules
from tests.support.gate_process import start_gate
from tests.support.http_server import http_server
from tests.support.nginx import Nginx
from tests.support.ports import free_port
from tests.support.tls import Certificate, self_signed_certificate
from tests.support.web_bot_auth import (
    WELL_KNOWN,
    Headers,
    Reply,
    Routes,
    Signer,
    directory_body,
    jwk_thumbprint,
    replaced,
)

AUTHORITY = "blog.example"
PAGE = f"https://{AUTHORITY}/essays/one.html"
REFRESH_GRACE = 0.2  # long enough for a background refresh of a loopback directory to reach it
WAIT = 5.0  # the directory is on loopback: a fetch that takes this long is a failure, not slowness


# --- the key directory, its signer and the verifiers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("web-bot-auth-tls"), names=("localhost",))


@pytest.fixture(scope="module")
def routes() -> Routes:
    return Routes()


@pytest.fixture(scope="module")
def origin(certificate: Certificate, routes: Routes) -> Iterator[str]:
    """https://127.0.0.1:PORT, serving `routes`: the signer's origin (its Signature-Agent)."""
    with http_server(routes.handler(), tls=certificate.server_context()) as url:
        yield url


@pytest.fixture(scope="module")
def signer() -> Signer:
    """The key the directory publishes."""
    return Signer()


@pytest.fixture
def directory(routes: Routes, signer: Signer, origin: str) -> str:
    """The key directory's URL, publishing `signer`'s key; every test starts with no request counted."""
    routes.replies = {WELL_KNOWN: Reply(body=directory_body([signer]))}
    routes.hits.clear()
    return origin + WELL_KNOWN


@asynccontextmanager
async def make_verifier(certificate: Certificate, *, allow_private: bool) -> AsyncIterator[Verifier]:
    store = MemoryStore()
    directories = KeyDirectories(WAIT, allow_private=allow_private, tls=certificate.client_context())
    verifier = Verifier(store, ReverseDns(store, "127.0.0.1:9", 1.0, 0.2), directories)
    try:
        yield verifier
    finally:
        await verifier.close()


@pytest.fixture
async def verifier(certificate: Certificate, directory: str) -> AsyncIterator[Verifier]:
    """A verifier that may fetch key directories from private addresses (the loopback one here)."""
    async with make_verifier(certificate, allow_private=True) as verifier:
        yield verifier


@pytest.fixture
async def guarded(certificate: Certificate, directory: str) -> AsyncIterator[Verifier]:
    """A verifier as gate runs by default: key directories on private addresses are refused."""
    async with make_verifier(certificate, allow_private=False) as verifier:
        yield verifier


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory, origin: str) -> Policy:
    """The shipped rules, with the test directory as ChatGPT's signer in place of chatgpt.com."""
    rules = write_rules(
        tmp_path_factory.mktemp("web-bot-auth-rules"),
        f"""
        import: [shipped:default.yaml]
        verified:
          ChatGPT-User: {{networks: [openai-chatgpt-user], signature: ["{origin}"]}}
          ChatGPT Agent: {{signature: ["{origin}"]}}
        """,
    )
    return load_policy(rules)


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


def request(
    signed: Sequence[tuple[str, str]], *, user_agent: str = CHROME_UA, url: str = PAGE, ip: str = CLIENT
) -> Facts:
    """A Chromium navigation (or another User-Agent's) carrying the signature headers."""
    return facts_for(url, headers=browser_headers(user_agent=user_agent, extra=signed), ip=ip)


async def settle(policy: Policy, verifier: Verifier, facts: Facts) -> tuple[Signals, Decision]:
    signals = await verifier.settle(facts, policy.fingerprint(facts), policy)
    return signals, policy.evaluate(facts, signals)


async def check_named(verifier: Verifier, facts: Facts) -> SignatureCheck:
    """The request's signature checked as if the rules named its signer, whatever directory that is."""
    try:
        signed = read_signature(facts, time.time())
    except (Invalid, Unsupported):
        signed = None
    return await verifier.check_signature(facts, frozenset({signed.directory} if signed else ()))


async def assert_invalid(policy: Policy, verifier: Verifier, facts: Facts, detail: str) -> None:
    """The signature is invalid (with `detail` in the explanation), and the request carries that finding."""
    check = await check_named(verifier, facts)
    assert check.state == "invalid"
    assert detail in check.detail
    signals, _ = await settle(policy, verifier, facts)
    assert (signals.signature, signals.signer) == ("invalid", None)
    assert "invalid-signature" in signals.names


# --- valid signatures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["dictionary", "legacy"])
async def test_a_valid_signature_is_verified_and_its_key_directory_is_the_signer(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, directory: str, form: str
) -> None:
    facts = request(signer.sign(AUTHORITY, origin, form=form))
    check = await check_named(verifier, facts)
    assert (check.state, check.directory) == ("verified", directory)
    signals, _ = await settle(policy, verifier, request(signer.sign(AUTHORITY, origin, form=form)))
    assert (signals.signature, signals.signer) == ("verified", directory)
    assert "invalid-signature" not in signals.names


async def test_signature_agent_may_name_the_directory_itself_and_rules_name_signers_either_way(
    verifier: Verifier, signer: Signer, origin: str, directory: str
) -> None:
    check = await check_named(verifier, request(signer.sign(AUTHORITY, directory)))
    assert (check.state, check.directory) == ("verified", directory)
    assert parse_signer(origin) == parse_signer(directory) == directory


async def test_the_authority_is_signed_without_the_default_port_and_case_insensitively(
    verifier: Verifier, signer: Signer, origin: str
) -> None:
    signed = signer.sign(AUTHORITY, origin)
    check = await check_named(verifier, request(signed, url=f"https://{AUTHORITY.upper()}:443/essays/one.html"))
    assert check.state == "verified"


async def test_a_chatgpt_user_signed_by_its_listed_signer_is_verified_from_any_address(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    facts = request(signer.sign(AUTHORITY, origin), user_agent=CHATGPT_USER_UA, ip="203.0.113.7")
    assert policy.fingerprint(facts).claim is not None  # outside OpenAI's ranges: only the signature can prove it
    signals, decision = await settle(policy, verifier, facts)
    assert (signals.agent_name, signals.verified, signals.proof) == ("ChatGPT-User", True, "signature")
    assert "impostor" not in signals.names
    assert (decision.action, decision.rule) == (Action.TERMS, "ai-agents-get-terms")


async def test_chrome_with_a_valid_signature_from_chatgpts_signer_is_chatgpts_agent(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, directory: str
) -> None:
    facts = request(signer.sign(AUTHORITY, origin))
    assert policy.fingerprint(facts).agent_class == "browser"
    signals, decision = await settle(policy, verifier, facts)
    assert (signals.agent_name, signals.agent_class) == ("ChatGPT Agent", "ai-assistant")
    assert (signals.verified, signals.proof, signals.signer) == (True, "signature", directory)
    assert (decision.action, decision.rule) == (Action.TERMS, "ai-agents-get-terms")


async def test_a_signature_proves_who_signed_not_who_the_user_agent_says(
    shipped: Policy, verifier: Verifier, signer: Signer, origin: str, directory: str, routes: Routes
) -> None:
    """The shipped rules list chatgpt.com as ChatGPT's signer: a signature by a directory the rules do not name
    proves nothing, and gate does not even fetch that directory (a client cannot make gate fetch URLs)."""
    facts = request(signer.sign(AUTHORITY, origin), user_agent=CHATGPT_USER_UA, ip="203.0.113.7")
    signals, decision = await settle(shipped, verifier, facts)
    assert (signals.signature, signals.signer) == ("unverified", None)
    assert (signals.verified, signals.proof) == (False, None)
    assert "impostor" in signals.names
    assert (decision.action, decision.rule) == (Action.DENY, "impostors")

    signals, _ = await settle(shipped, verifier, request(signer.sign(AUTHORITY, origin)))
    assert (signals.agent_name, signals.agent_class, signals.verified) == (None, "browser", False)
    assert (signals.signature, signals.signer) == ("unverified", None)
    assert routes.requests() == 0


async def test_a_signer_clock_a_few_seconds_ahead_is_tolerated(verifier: Verifier, signer: Signer, origin: str) -> None:
    check = await check_named(verifier, request(signer.sign(AUTHORITY, origin, created=int(time.time()) + 2)))
    assert check.state == "verified"


async def test_a_request_without_a_web_bot_auth_signature_has_none(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    signals, _ = await settle(policy, verifier, request([]))
    assert (signals.signature, signals.signer) == ("none", None)
    other = request(signer.sign(AUTHORITY, origin, tag="some-other-protocol"))  # RFC 9421, not Web Bot Auth
    assert (await check_named(verifier, other)).state == "none"
    signals, _ = await settle(policy, verifier, other)
    assert signals.signature == "none"
    assert "invalid-signature" not in signals.names
    assert routes.requests() == 0


# --- expired, too long-lived, from the future -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "expires", "detail"),
    [
        pytest.param(-600, -300, "expired", id="expired"),
        pytest.param(-120, -10, "expired", id="expired-beyond-the-clock-skew"),
        pytest.param(0, MAX_VALIDITY + 60, "more than", id="valid-longer-than-a-day"),
        pytest.param(0, 0, "more than", id="expires-when-created"),
        pytest.param(60, 360, "future", id="created-in-the-future"),
    ],
)
async def test_a_signature_outside_its_validity_is_invalid_and_no_directory_is_fetched(
    policy: Policy,
    verifier: Verifier,
    signer: Signer,
    origin: str,
    routes: Routes,
    created: int,
    expires: int,
    detail: str,
) -> None:
    now = int(time.time())
    facts = request(signer.sign(AUTHORITY, origin, created=now + created, expires=now + expires))
    await assert_invalid(policy, verifier, facts, detail)
    assert routes.requests() == 0


# --- wrong key ------------------------------------------------------------------------------------------------------


async def test_a_signature_by_another_key_under_the_directory_keys_id_is_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    forged = Signer().sign(AUTHORITY, origin, keyid=signer.keyid)
    await assert_invalid(policy, verifier, request(forged), "does not match")


async def test_a_key_the_directory_does_not_publish_is_invalid(policy: Policy, verifier: Verifier, origin: str) -> None:
    await assert_invalid(
        policy, verifier, request(Signer().sign(AUTHORITY, origin)), "not in the signer's key directory"
    )


async def test_a_published_key_whose_kid_is_not_its_thumbprint_is_not_used(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    routes.replies[WELL_KNOWN] = Reply(body=directory_body([], keys=[{**signer.jwk(), "kid": "key-1"}]))
    await assert_invalid(policy, verifier, request(signer.sign(AUTHORITY, origin)), "not in the signer's key directory")


# --- tampered components --------------------------------------------------------------------------------------------


async def test_a_request_sent_to_another_host_than_the_signed_one_is_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    facts = request(signer.sign(AUTHORITY, origin), url="https://other.example/essays/one.html")
    await assert_invalid(policy, verifier, facts, "does not match")


@pytest.mark.parametrize("form", ["dictionary", "legacy"])
async def test_a_changed_signature_agent_is_invalid_even_naming_the_same_directory(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, directory: str, form: str
) -> None:
    signed = signer.sign(AUTHORITY, origin, form=form)
    changed = f'agent1="{origin}/"' if form == "dictionary" else f'"{origin}/"'
    facts = request(replaced(signed, "Signature-Agent", changed))
    check = await check_named(verifier, facts)
    assert (check.state, check.directory) == ("invalid", directory)  # the key was found: the signature is wrong
    await assert_invalid(policy, verifier, facts, "does not match")


async def test_changed_signature_parameters_are_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    now = int(time.time())
    signed = signer.sign(AUTHORITY, origin, created=now, expires=now + 300)
    signature_input = dict(signed)["Signature-Input"]
    assert f";expires={now + 300};" in signature_input
    longer = signature_input.replace(f";expires={now + 300};", f";expires={now + 3600};")
    await assert_invalid(policy, verifier, request(replaced(signed, "Signature-Input", longer)), "does not match")


async def test_changed_signature_bytes_are_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    signed = signer.sign(AUTHORITY, origin)
    raw = bytearray(base64.b64decode(dict(signed)["Signature"].split(":")[1]))
    raw[-1] ^= 1
    facts = request(replaced(signed, "Signature", f"sig1=:{base64.b64encode(raw).decode()}:"))
    await assert_invalid(policy, verifier, facts, "does not match")


async def test_a_chatgpt_user_with_a_tampered_signature_outside_openais_ranges_is_an_impostor(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str
) -> None:
    signed = signer.sign("elsewhere.example", origin)
    facts = request(signed, user_agent=CHATGPT_USER_UA, ip="203.0.113.7")
    signals, decision = await settle(policy, verifier, facts)
    assert (signals.signature, signals.verified) == ("invalid", False)
    assert {"invalid-signature", "impostor"} <= signals.names
    assert (decision.action, decision.rule) == (Action.DENY, "impostors")


# --- replayed nonces ------------------------------------------------------------------------------------------------


async def test_a_replayed_nonce_is_invalid(policy: Policy, verifier: Verifier, signer: Signer, origin: str) -> None:
    signed = signer.sign(AUTHORITY, origin)
    first, _ = await settle(policy, verifier, request(signed))
    assert first.signature == "verified"
    replay = await check_named(verifier, request(signed))
    assert replay.state == "invalid"
    assert "replay" in replay.detail
    second, _ = await settle(policy, verifier, request(signed))
    assert (second.signature, second.signer) == ("invalid", None)
    assert "invalid-signature" in second.names


async def test_a_forged_request_does_not_use_up_the_real_signers_nonce(
    verifier: Verifier, signer: Signer, origin: str
) -> None:
    forged = Signer().sign(AUTHORITY, origin, keyid=signer.keyid, nonce="n-1")
    assert (await check_named(verifier, request(forged))).state == "invalid"
    genuine = signer.sign(AUTHORITY, origin, nonce="n-1")
    assert (await check_named(verifier, request(genuine))).state == "verified"


async def test_without_a_nonce_the_same_signature_verifies_again(
    verifier: Verifier, signer: Signer, origin: str
) -> None:
    signed = signer.sign(AUTHORITY, origin, nonce=False)
    assert "nonce" not in dict(signed)["Signature-Input"]
    for _ in range(2):
        assert (await check_named(verifier, request(signed))).state == "verified"


# --- fetching the directory safely ----------------------------------------------------------------------------------


async def test_by_default_a_directory_on_a_private_address_is_not_fetched(
    policy: Policy, guarded: Verifier, signer: Signer, origin: str, directory: str, routes: Routes
) -> None:
    check = await check_named(guarded, request(signer.sign(AUTHORITY, origin)))
    assert (check.state, check.directory) == ("unverified", directory)
    assert "not a public address" in check.detail

    facts = request(signer.sign(AUTHORITY, origin), user_agent=CHATGPT_USER_UA, ip="203.0.113.7")
    signals, _ = await settle(policy, guarded, facts)
    assert (signals.signature, signals.signer, signals.verified) == ("unverified", None, False)
    assert "unconfirmed" in signals.names  # the claim could not be checked: not proven, not an impostor either
    assert not {"impostor", "invalid-signature"} & signals.names
    assert routes.requests() == 0


async def test_a_host_name_that_resolves_to_a_private_address_is_not_fetched(
    certificate: Certificate, guarded: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    by_name = origin.replace("127.0.0.1", "localhost")
    check = await check_named(guarded, request(signer.sign(AUTHORITY, by_name)))
    assert check.state == "unverified"
    assert routes.requests() == 0
    async with make_verifier(certificate, allow_private=True) as allowed:  # the same directory, when allowed
        assert (await check_named(allowed, request(signer.sign(AUTHORITY, by_name)))).state == "verified"
    assert routes.hits[WELL_KNOWN] == 1


async def test_a_redirect_from_the_directory_is_not_followed(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    routes.replies["/moved"] = Reply(302, headers=(("Location", origin + WELL_KNOWN),))
    check = await check_named(verifier, request(signer.sign(AUTHORITY, origin + "/moved")))
    assert (check.state, check.directory) == ("unverified", origin + "/moved")
    assert "302" in check.detail
    assert routes.hits == {"/moved": 1}


def padded(body: bytes, size: int) -> bytes:
    """A JSON object `body` grown to `size` bytes with a member its reader ignores."""
    filler = b', "padding": ""}'
    grown = body[:-1] + filler[:-2] + b"x" * (size - len(body) - len(filler) + 1) + filler[-2:]
    assert len(grown) == size
    return grown


async def test_a_directory_larger_than_64_kib_is_refused(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    routes.replies["/big"] = Reply(body=padded(directory_body([signer]), MAX_BYTES + 1))
    routes.replies["/padded"] = Reply(body=padded(directory_body([signer]), 8 * 1024))  # padding itself is fine
    assert (await check_named(verifier, request(signer.sign(AUTHORITY, origin + "/big")))).state == "unverified"
    assert (await check_named(verifier, request(signer.sign(AUTHORITY, origin + "/padded")))).state == "verified"


async def test_a_directory_that_arrives_in_pieces_is_read_whole(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    routes.replies["/slow"] = Reply(body=directory_body([signer]), pause=0.2)
    check = await check_named(verifier, request(signer.sign(AUTHORITY, origin + "/slow")))
    assert check.state == "verified", check.detail


async def test_a_signature_agent_that_is_not_https_is_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    plain = origin.replace("https://", "http://")
    await assert_invalid(policy, verifier, request(signer.sign(AUTHORITY, plain)), "not an https URL")
    assert routes.requests() == 0


async def test_a_directory_that_is_down_or_failing_leaves_the_signature_unverified(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    down = f"https://127.0.0.1:{free_port()}"
    check = await check_named(verifier, request(signer.sign(AUTHORITY, down)))
    assert (check.state, check.directory) == ("unverified", down + WELL_KNOWN)
    routes.replies["/broken"] = Reply(500, b"oops")
    routes.replies["/not-json"] = Reply(body=b"<html>keys</html>")
    for path in ("/broken", "/not-json", "/missing"):
        check = await check_named(verifier, request(signer.sign(AUTHORITY, origin + path)))
        assert check.state == "unverified", path


async def test_a_directory_is_fetched_once_for_many_requests(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    for _ in range(3):
        assert (await check_named(verifier, request(signer.sign(AUTHORITY, origin)))).state == "verified"
        await asyncio.sleep(REFRESH_GRACE)  # time for a refresh in the background to reach the server, were one made
    assert routes.hits == {WELL_KNOWN: 1}


async def test_a_directory_that_cannot_be_had_is_not_asked_again_at_once(
    verifier: Verifier, signer: Signer, origin: str, routes: Routes
) -> None:
    routes.replies["/broken"] = Reply(500, b"oops")
    for _ in range(3):
        check = await check_named(verifier, request(signer.sign(AUTHORITY, origin + "/broken")))
        assert check.state == "unverified"
        await asyncio.sleep(REFRESH_GRACE)
    assert routes.hits == {"/broken": 1}


# --- the drafts' own test vector ------------------------------------------------------------------------------------

# draft-ietf-webbotauth-httpsig-protocol, signed by RFC 9421's test-key-ed25519 (appendix B.1.4)
VECTOR_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
VECTOR_KEYID = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"
VECTOR_HEADERS = [
    ("Signature-Agent", 'agent2="https://signature-agent.test"'),
    (
        "Signature-Input",
        'sig2=("@authority" "signature-agent";key="agent2");created=1735689600;'
        'keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=4889289600;'
        'nonce="n9p433xm+NJ3ph3upfBIGmsuwHw387YV7Q/F+6BSpGCVjYCqQw6rznNA8PVVLySrAWsv0hQtFioQb6E1YsauiA==";'
        'tag="web-bot-auth"',
    ),
    ("Signature", "sig2=:RdNFx5Bj6au3YgAMQL/RzmUlZE8QZLIaXGRpw985hWnwPfMxT228NMk6ehRS1PSl4e8PhbNZACSanGdhEwYCCg==:"),
]


def test_the_drafts_test_vector_verifies_with_its_key() -> None:
    facts = facts_for("https://example.com/", headers=VECTOR_HEADERS)
    covered = parse_dictionary(facts.headers, "signature-input")["sig2"]
    signature = parse_dictionary(facts.headers, "signature")["sig2"].value
    assert isinstance(signature, bytes)
    raw = b64url_decode(VECTOR_X)
    assert raw is not None
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, signature_base(facts, covered))
    assert thumbprint(VECTOR_X) == jwk_thumbprint(VECTOR_X) == VECTOR_KEYID
    assert set(parse_keys(directory_body([], keys=[{"kty": "OKP", "crv": "Ed25519", "x": VECTOR_X}]), 0)) == {
        VECTOR_KEYID
    }
    with pytest.raises(Invalid, match="more than"):  # valid for a century: more than the drafts allow
        read_signature(facts, 1735689600)


# --- garbage --------------------------------------------------------------------------------------------------------

SIGNED_INPUT = 'sig1=("@authority" "signature-agent");created={now};expires={later};keyid="k";tag="web-bot-auth"'


def garbage(origin: str, signer: Signer) -> dict[str, Headers]:
    now = int(time.time())
    signed = signer.sign(AUTHORITY, origin, form="legacy")
    inputs = SIGNED_INPUT.format(now=now, later=now + 60)
    agent = ("Signature-Agent", f'"{origin}"')
    without = [(name, value) for name, value in signed if name != "Signature"]
    return {
        "unparseable-input": [agent, ("Signature-Input", 'sig1=("@authority";tag="web-bot-auth"')],
        "input-not-a-list": [agent, ("Signature-Input", 'sig1="@authority";tag="web-bot-auth"')],
        "huge-input": [agent, ("Signature-Input", inputs + ';x="' + "a" * 5000 + '"')],
        "huge-signature": [*without, ("Signature", "sig1=:" + "A" * 5000 + ":")],
        "no-signature": without,
        "signature-for-another-label": [*without, ("Signature", dict(signed)["Signature"].replace("sig1=", "sig2="))],
        "signature-not-bytes": [*without, ("Signature", 'sig1="not bytes"')],
        "signature-unparseable": [*without, ("Signature", "sig1=:not base64!:")],
        "no-keyid": [agent, ("Signature-Input", inputs.replace(';keyid="k"', "")), ("Signature", "sig1=:AAAA:")],
        "created-not-a-number": [
            agent,
            ("Signature-Input", inputs.replace(f"created={now}", 'created="now"')),
            ("Signature", "sig1=:AAAA:"),
        ],
        "authority-not-signed": [
            agent,
            ("Signature-Input", inputs.replace('"@authority" ', "")),
            ("Signature", "sig1=:AAAA:"),
        ],
        "agent-not-signed": [
            agent,
            ("Signature-Input", inputs.replace(' "signature-agent"', "")),
            ("Signature", "sig1=:AAAA:"),
        ],
        "component-signed-twice": [
            agent,
            ("Signature-Input", inputs.replace('"@authority"', '"@authority" "@authority"')),
            ("Signature", "sig1=:AAAA:"),
        ],
        "agent-missing": [("Signature-Input", inputs), ("Signature", "sig1=:AAAA:")],
        "agent-not-a-string": [
            ("Signature-Agent", "agent1=?1"),
            ("Signature-Input", inputs),
            ("Signature", "sig1=:AAAA:"),
        ],
        "agent-member-missing": [
            ("Signature-Agent", f'other="{origin}"'),
            ("Signature-Input", inputs.replace('"signature-agent"', '"signature-agent";key="agent1"')),
            ("Signature", "sig1=:AAAA:"),
        ],
        "agent-not-a-url": [
            ("Signature-Agent", '"chatgpt"'),
            ("Signature-Input", inputs),
            ("Signature", "sig1=:AAAA:"),
        ],
        "agent-with-credentials": [
            ("Signature-Agent", f'"{origin.replace("https://", "https://user:pass@")}"'),
            ("Signature-Input", inputs),
            ("Signature", "sig1=:AAAA:"),
        ],
    }


GARBAGE = [
    "unparseable-input",
    "input-not-a-list",
    "huge-input",
    "huge-signature",
    "no-signature",
    "signature-for-another-label",
    "signature-not-bytes",
    "signature-unparseable",
    "no-keyid",
    "created-not-a-number",
    "authority-not-signed",
    "agent-not-signed",
    "component-signed-twice",
    "agent-missing",
    "agent-not-a-string",
    "agent-member-missing",
    "agent-not-a-url",
    "agent-with-credentials",
]


@pytest.mark.parametrize("case", GARBAGE)
async def test_garbage_signature_headers_are_invalid_never_an_error(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, routes: Routes, case: str
) -> None:
    cases = garbage(origin, signer)
    assert set(cases) == set(GARBAGE)
    headers = cases[case]
    await assert_invalid(policy, verifier, request(headers), "")
    signals, decision = await settle(policy, verifier, request(headers, user_agent=CHATGPT_USER_UA, ip="203.0.113.7"))
    assert {"invalid-signature", "impostor"} <= signals.names
    assert decision.action == Action.DENY
    assert routes.requests() == 0


@pytest.mark.parametrize(
    "agent",
    [
        pytest.param("https://127.0.0.1:99999", id="port-out-of-range"),
        pytest.param("https://127.0.0.1:port", id="port-not-a-number"),
        pytest.param("https://[::1", id="unclosed-ipv6-literal"),
    ],
)
async def test_a_signature_agent_with_a_malformed_authority_is_invalid_never_an_error(
    policy: Policy, verifier: Verifier, signer: Signer, agent: str
) -> None:
    await assert_invalid(policy, verifier, request(signer.sign(AUTHORITY, agent)), "")


def test_a_signer_at_an_ipv6_address_keeps_its_brackets() -> None:
    assert directory_url("https://[2001:db8::1]:8443") == f"https://[2001:db8::1]:8443{WELL_KNOWN}"
    assert parse_signer("https://[2001:db8::1]") == f"https://[2001:db8::1]{WELL_KNOWN}"


async def test_an_unsupported_algorithm_leaves_the_signature_unverified(
    verifier: Verifier, signer: Signer, origin: str
) -> None:
    signed = signer.sign(AUTHORITY, origin)
    inputs = dict(signed)["Signature-Input"].replace('alg="ed25519"', 'alg="rsa-pss-sha512"')
    check = await check_named(verifier, request(replaced(signed, "Signature-Input", inputs)))
    assert check.state == "unverified"
    assert "unsupported" in check.detail


# --- through a running gate --------------------------------------------------------------------------------------


def test_a_running_gate_knows_a_signed_agent_and_denies_a_forged_one(
    tmp_path: Path, nginx: Nginx, certificate: Certificate, signer: Signer, origin: str, directory: str
) -> None:
    """gate serve as a sysadmin runs it, trusting the test certificate through SSL_CERT_FILE and allowing the
    loopback directory with --allow-private-key-directories: the access log names the agent, its proof and signer."""
    rules = write_rules(
        tmp_path,
        f"""
        import: [shipped:default.yaml]
        verified:
          ChatGPT-User: {{networks: [openai-chatgpt-user], signature: ["{origin}"]}}
          ChatGPT Agent: {{signature: ["{origin}"]}}
        """,
    )
    gate = start_gate(
        tmp_path / "gate",
        nginx.url,
        "--rules",
        str(rules),
        "--allow-private-key-directories",
        "--verify-wait",
        "2",
        env={"SSL_CERT_FILE": str(certificate.cert)},
    )
    try:
        authority = gate.url.removeprefix("http://")
        signed = [("User-Agent", CHROME_UA), *signer.sign(authority, origin)]
        assert httpx.get(gate.url + "/uri/signed", headers=signed).status_code == 403  # the terms, not the page
        line = gate.access_lines("/uri/signed")[-1]
        assert (line["agent"], line["rule"], line["proof"], line["signer"]) == (
            "ChatGPT Agent",
            "ai-agents-get-terms",
            "signature",
            directory,
        )
        forged = [("User-Agent", CHATGPT_USER_UA), *Signer().sign(authority, origin, keyid=signer.keyid)]
        assert httpx.get(gate.url + "/uri/forged", headers=forged).status_code == 403
        assert gate.access_lines("/uri/forged")[-1]["rule"] == "impostors"
        metrics = httpx.get(gate.metrics_url + "/metrics").text
        assert 'gate_verifications_total{method="signature",result="verified"} 1.0' in metrics
        assert 'gate_verifications_total{method="signature",result="invalid"} 1.0' in metrics
    finally:
        gate.stop()


@pytest.mark.parametrize(
    ("agent_header", "covered_key"),
    [
        ('a=("https://x.example")', "a"),  # a member that is an inner list, not a URL
        ('a="https://a..b"', "a"),  # an empty label
        ('a="https://' + "x" * 64 + '.example"', "a"),  # a label over 63 characters
    ],
)
async def test_a_signature_agent_that_is_no_usable_url_is_invalid(
    policy: Policy, verifier: Verifier, signer: Signer, origin: str, agent_header: str, covered_key: str
) -> None:
    signed = replaced(signer.sign(AUTHORITY, origin, member=covered_key), "Signature-Agent", agent_header)
    await assert_invalid(policy, verifier, request(signed), "Signature-Agent")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo of 10.0.0.1
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::ffff:192.168.1.1", False),  # IPv4-mapped
        ("fec0::1", False),  # site-local
        ("fd00::1", False),
        ("169.254.169.254", False),  # cloud metadata
    ],
)
def test_only_addresses_that_reach_no_private_network_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
