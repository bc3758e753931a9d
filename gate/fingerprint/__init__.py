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
class Signals:
    agent_class: AgentClass
    agent: Agent | None = None
    browser: BrowserInfo | None = None
    verified: bool = False  # the agent proved who it is (published ranges, reverse DNS, signatures)
    networks: frozenset[str] = frozenset()  # names of the network lists the client address is in
    findings: tuple[Signal, ...] = field(default=())

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
        verifiers: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.networks = networks
        self.ja4 = ja4
        self.verifiers = verifiers or {}  # agent name -> the network lists whose addresses prove it

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
        verified = False
        proofs = self.verifiers.get(match.agent.name) if match.agent is not None else None
        if proofs is not None:
            verified = not proofs.isdisjoint(networks)
            if not verified:
                findings.append(
                    Signal("impostor", f"claims to be {match.agent_name} from outside its operator's published ranges")
                )
        return Signals(
            agent_class=agent_class,
            agent=match.agent,
            browser=match.browser,
            verified=verified,
            networks=networks,
            findings=tuple(findings),
        )
