"""Verification that needs I/O: settles what the (pure) fingerprint could not.

A request that names a verifiable agent from outside its published ranges is proven by forward-confirmed reverse
DNS or by a Web Bot Auth signature from a key directory its `verified:` entry lists; when neither proves it, it is
an `impostor`. While a proof cannot be had yet (a lookup still running, a resolver or directory failing), the
request is `unconfirmed`: neither welcomed nor denied as an impostor (the shipped rules challenge it).

Any request carrying a Web Bot Auth signature gets `signature` (verified, invalid or unverified) and, when
verified, `signer`: the key directory that signed, which rules can match. Only the key directories the rules name
are fetched (`Policy.signers`): a signature by any other is `unverified`, so a client cannot make gate fetch URLs
of its choosing or fill the store with its nonces. A signature proves who signed, and that alone: it verifies a
named agent only when that agent's `verified:` entry lists the signer.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate import metrics
from gate.facts import Facts
from gate.fingerprint import SIGNATURE_HEADER, Proofs, Signals, impostor
from gate.fingerprint.headers import Signal
from gate.store import Store, StoreError
from gate.verify.directory import DirectoryUnavailable, KeyDirectories
from gate.verify.rdns import ReverseDns
from gate.verify.signatures import CLOCK_SKEW, Invalid, Unsupported, check, read_signature

if TYPE_CHECKING:
    from gate.policy.engine import Policy

log = logging.getLogger("gate.verify")
MAX_NONCE = 256


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    state: str  # none, verified, invalid or unverified
    directory: str | None = None  # the key directory the signature names (its signer once verified)
    detail: str = ""


NO_SIGNATURE = SignatureCheck("none")


def nonce_key(keyid: str, nonce: str) -> str:
    return f"wba-nonce:{keyid}:{nonce}"


class Verifier:
    def __init__(self, store: Store, reverse_dns: ReverseDns, directories: KeyDirectories) -> None:
        self.store = store
        self.reverse_dns = reverse_dns
        self.directories = directories

    async def settle(self, facts: Facts, signals: Signals, policy: Policy) -> Signals:
        """The signals with every proof the request offers checked against the policy's proofs and signers."""
        signed = SIGNATURE_HEADER in facts.headers
        if signals.claim is None and not signed:
            return signals
        signature = await self.check_signature(facts, policy.signers) if signed else NO_SIGNATURE
        if signature.state != "none":
            metrics.verifications_total.labels("signature", signature.state).inc()
        findings = list(signals.findings)
        if signature.state == "invalid":
            findings.append(Signal("invalid-signature", signature.detail))
        signer = signature.directory if signature.state == "verified" else None
        agent, agent_class, proof = signals.agent, signals.agent_class, signals.proof
        if signals.claim is not None and agent is not None:
            proof, finding = await self.prove(facts, agent.name, signals.claim, signature)
            if finding is not None:
                findings.append(finding)
        elif agent is None and signer is not None and signer in policy.fingerprinter.signed_agents:
            agent = policy.fingerprinter.signed_agents[signer]  # known by its signer alone (ChatGPT's agent)
            agent_class, proof = agent.agent_class, "signature"
        return dataclasses.replace(
            signals,
            agent=agent,
            agent_class=agent_class,
            findings=tuple(findings),
            claim=None,
            verified=proof is not None,
            proof=proof,
            signature=signature.state,
            signer=signer,
        )

    async def prove(
        self, facts: Facts, agent: str, claim: Proofs, signature: SignatureCheck
    ) -> tuple[str | None, Signal | None]:
        """What proves the claim ("signature" or "dns"), or the signal that it is not proven."""
        listed = signature.directory in claim.signers
        if listed and signature.state == "verified":
            return "signature", None
        why = "from outside its operator's published ranges"
        if not claim.domains:
            if listed and signature.state == "unverified":
                return None, Signal("unconfirmed", f"{agent}'s signature could not be checked: {signature.detail}")
            return None, impostor(agent, f"{why}, without a valid signature by its key directory")
        answer = await self.reverse_dns.lookup(facts.ip, facts.prefix)
        if answer is None or answer.failure is not None:
            metrics.verifications_total.labels("dns", "unconfirmed").inc()
            why_not = answer.describe() if answer is not None else "its reverse DNS is being looked up"
            return None, Signal("unconfirmed", f"claims to be {agent}; {why_not}")
        if any(claim.names_domain(name) for name in answer.names):
            metrics.verifications_total.labels("dns", "verified").inc()
            return "dns", None
        metrics.verifications_total.labels("dns", "impostor").inc()
        return None, impostor(agent, f"{why}, and {answer.describe()}")

    async def check_signature(self, facts: Facts, signers: frozenset[str]) -> SignatureCheck:
        """The request's signature checked, if it is by one of `signers` (the key directories the rules name)."""
        try:
            return await self._check_signature(facts, signers)
        except Exception:  # a bug here must cost the request its proof, never a 500
            log.exception("Web Bot Auth check failed unexpectedly")
            return SignatureCheck("unverified", None, "the check failed (see gate's log)")

    async def _check_signature(self, facts: Facts, signers: frozenset[str]) -> SignatureCheck:
        now = time.time()
        try:
            signed = read_signature(facts, now)
        except Invalid as invalid:
            return SignatureCheck("invalid", None, str(invalid))
        except Unsupported as unsupported:
            return SignatureCheck("unverified", None, f"unsupported: {unsupported}")
        if signed is None:
            return NO_SIGNATURE
        if signed.directory not in signers:
            return SignatureCheck("unverified", signed.directory, "the rules name no such signer")
        try:
            keys = await self.directories.keys(signed.directory)
        except DirectoryUnavailable as unavailable:
            return SignatureCheck("unverified", signed.directory, str(unavailable))
        key = keys.get(signed.keyid)
        if key is None:
            return SignatureCheck("invalid", signed.directory, "keyid is not in the signer's key directory")
        try:
            check(signed, key)
        except Invalid as invalid:
            return SignatureCheck("invalid", signed.directory, str(invalid))
        if signed.nonce is not None and (len(signed.nonce) > MAX_NONCE or len(signed.keyid) > MAX_NONCE):
            return SignatureCheck("invalid", signed.directory, f"nonce or keyid longer than {MAX_NONCE} characters")
        if signed.nonce is not None and not await self.first_use(signed.keyid, signed.nonce, signed.expires - now):
            return SignatureCheck("invalid", signed.directory, "the nonce was used before (a replayed request)")
        return SignatureCheck("verified", signed.directory)

    async def first_use(self, keyid: str, nonce: str, seconds_left: float) -> bool:
        """Record a nonce until its signature expires; False when it was recorded before. A store that cannot
        answer lets the signature stand (its lifetime still bounds a replay)."""
        try:
            return await self.store.set(
                nonce_key(keyid, nonce), b"1", max(seconds_left, 0) + CLOCK_SKEW, only_if_absent=True
            )
        except StoreError:
            return True

    async def close(self) -> None:
        await self.directories.close()
