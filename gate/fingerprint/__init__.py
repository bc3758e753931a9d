"""Fingerprinting: from Facts to the signals the policy reads. Pure: no I/O, everything compiled beforehand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gate.facts import Facts
from gate.fingerprint.agents import Agent, AgentCatalog, AgentClass
from gate.fingerprint.browsers import BrowserInfo
from gate.fingerprint.headers import Signal, header_signals
from gate.net import NetworkIndex


@dataclass(frozen=True, slots=True)
class Proofs:
    """What proves that a request naming an agent comes from that agent's operator (the rules' `verified:`)."""

    networks: frozenset[str] = frozenset()  # the client address is in one of these lists
    domains: tuple[str, ...] = ()  # or its forward-confirmed reverse DNS name is one of these or under one
    signers: tuple[str, ...] = ()  # or the request carries a valid Web Bot Auth signature from one of these

    def names_domain(self, hostname: str) -> bool:
        return any(hostname == domain or hostname.endswith("." + domain) for domain in self.domains)


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Signals:
    agent_class: AgentClass
    agent: Agent | None = None
    browser: BrowserInfo | None = None
    verified: bool = False  # the agent proved who it is (published ranges, reverse DNS, signatures)
    networks: frozenset[str] = frozenset()  # names of the network lists the client address is in
    findings: tuple[Signal, ...] = field(default=())
    # Set while a claim to be a verifiable agent awaits the proofs that need I/O (gate/verify settles it).
    claim: Proofs | None = None
    proof: str | None = None  # what verified the agent: network, dns or signature
    signature: str = "none"  # Web Bot Auth: none, verified, invalid or unverified (the key could not be had)
    signer: str | None = None  # the key directory (Signature-Agent) of a verified signature

    def __init__(
        self,
        agent_class: AgentClass,
        agent: Agent | None = None,
        browser: BrowserInfo | None = None,
        verified: bool = False,
        networks: frozenset[str] = frozenset(),
        findings: tuple[Signal, ...] = (),
        claim: Proofs | None = None,
        proof: str | None = None,
        signature: str = "none",
        signer: str | None = None,
    ) -> None:
        self.agent_class = agent_class
        self.agent = agent
        self.browser = browser
        self.verified = verified
        self.networks = networks
        self.findings = findings
        self.claim = claim
        self.proof = proof
        self.signature = signature
        self.signer = signer

    @property
    def agent_name(self) -> str | None:
        return self.agent.name if self.agent else None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(finding.name for finding in self.findings)


@dataclass(frozen=True, slots=True)
class JA4Settings:
    """A JA4 TLS fingerprint computed by a trusted front proxy and passed in a header, matched against lists."""

    header: str  # lower-case header name
    lists: Mapping[str, frozenset[str]]


class Fingerprinter:
    def __init__(
        self,
        catalog: AgentCatalog,
        networks: NetworkIndex,
        ja4: JA4Settings | None = None,
        verifiers: Mapping[str, Proofs] | None = None,
    ) -> None:
        self.catalog = catalog
        self.networks = networks
        self.ja4 = ja4
        self.verifiers = verifiers or {}  # agent name -> what proves a request naming it
        # Agents no User-Agent names (ChatGPT's agent browses as Chrome), known by their signer alone.
        self.signed_agents: dict[str, Agent] = {}
        for name, proofs in self.verifiers.items():
            agent = catalog.by_name[name.lower()]
            for signer in proofs.signers if not agent.tokens else ():
                self.signed_agents.setdefault(signer, agent)

    def __call__(self, facts: Facts) -> Signals:
        match = self.catalog.classify(facts.user_agent)
        agent_class = match.agent_class
        findings = header_signals(facts, match.browser, agent_class == "browser")
        if agent_class == "browser" and any(finding.name == "headless-client-hints" for finding in findings):
            agent_class = "headless-browser"
        if self.ja4 is not None and facts.peer_trusted:
            fingerprint = facts.headers.get(self.ja4.header, "").strip()
            findings += [
                Signal(f"ja4:{name}", f"TLS fingerprint {fingerprint} is on the {name} list")
                for name, fingerprints in self.ja4.lists.items()
                if fingerprint in fingerprints
            ]
        networks = self.networks.lookup(facts.ip) if self.networks.names else frozenset()
        verified, claim = False, None
        proofs = self.verifiers.get(match.agent.name) if match.agent is not None else None
        if proofs is not None and match.agent is not None:
            verified = not proofs.networks.isdisjoint(networks)
            provable = proofs.domains or (proofs.signers and SIGNATURE_HEADER in facts.headers)
            if not verified and provable:
                claim = proofs  # reverse DNS or a signature may still prove it
            elif not verified:
                findings.append(impostor(match.agent.name, "from outside its operator's published ranges"))
        return Signals(
            agent_class=agent_class,
            agent=match.agent,
            browser=match.browser,
            verified=verified,
            networks=networks,
            findings=tuple(findings),
            claim=claim,
            proof="network" if verified else None,
        )


SIGNATURE_HEADER = "signature-input"


def impostor(agent_name: str, why: str) -> Signal:
    return Signal("impostor", f"claims to be {agent_name} {why}")
