"""The terms as gate serves them: the documents (robots.txt, /.well-known/tdmrep.json, /.gate/terms), the headers
on every proxied response, the `terms` action's answer, consent (accepting, and the requests that carry it), and
robots.txt compliance.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, Router

from gate import metrics
from gate.asgi import Receive, Scope, Send
from gate.facts import Facts
from gate.fingerprint import Signals
from gate.keys import KeyRing
from gate.logs import event
from gate.policy.engine import Policy
from gate.policy.model import Limit
from gate.proxy import Forwarder
from gate.store import Quota, Store, StoreError, Verdict, Verdicts
from gate.terms.consent import (
    MAX_BODY_BYTES,
    BadAcceptance,
    ConsentToken,
    consent_record,
    presented_token,
    rate_key,
    read_acceptance,
    record_key,
    revocation_key,
)
from gate.terms.documents import ai_robots_names, merged_robots, tdmrep_json, terms_html, terms_json
from gate.terms.model import Terms, format_uses, reserves_training
from gate.terms.robots import RobotsCache
from gate.throttle import UNAVAILABLE_RETRY, Refusal, client_tag

log = logging.getLogger("gate.terms")
ROBOTS_PATH = "/robots.txt"
TDMREP_PATH = "/.well-known/tdmrep.json"
ROBOTS_CLASSES = frozenset({"ai-crawler", "ai-assistant", "search-engine", "seo-crawler", "archiver"})
ACCEPT_QUOTA = (360.0, 10)  # acceptances per network: one per 6 minutes, 10 at once
CONSENT_BURST = 5
# A Host header fit to be written into an absolute URL (no nested repetition: linear on any input).
SANE_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
MAX_VIOLATORS = 10_000  # (agent, network) pairs denied at once, per instance
ACCEPTS_PER_SITE = (36.0, 100)  # acceptances from everyone together: 100 an hour, 100 at once
VIOLATION_WINDOW = 86400.0


@dataclass(frozen=True, slots=True)
class ConsentCheck:
    """What a consent token presented with a `terms` request is worth."""

    allowed: bool
    reason: str  # why not: no-consent, invalid-token, expired, other-agent, unverified-agent, outdated-terms,
    # not-opened, revoked, rate
    refusal: Refusal | None = None  # over the consent's crawl rate


class TermsService:
    def __init__(
        self,
        keys: KeyRing,
        store: Store,
        forwarder: Forwarder,
        own_prefix: str,
        contact: str,
        policy: Callable[[], Policy],
        fail_closed: bool = False,
    ) -> None:
        self.keys = keys
        self.store = store
        self.own_prefix = own_prefix
        self.terms_path = own_prefix + "terms"
        self.contact = contact
        self.policy = policy
        self.fail_closed = fail_closed  # --store-failure closed: no consent is honoured unchecked
        self.robots = RobotsCache(forwarder, self._merge, lambda: self.terms)
        self._violators: dict[tuple[str, str], float] = {}  # (agent, network) -> until when it is denied
        self._terms: tuple[Policy, Terms] | None = None
        # The last uses' Content-Usage and TDM-Reservation values, with the uses they are for: the site's own uses
        # (one object per rules load) on nearly every response. Holding the uses keeps their identity unique.
        self._usage: tuple[Mapping[str, str], bytes, bytes] | None = None
        self.terms_link = f'<{self.terms_path}>; rel="terms-of-service"'.encode()
        self.router = Router(
            routes=[
                Route(ROBOTS_PATH, self.robots_txt, methods=["GET", "HEAD"]),
                Route(TDMREP_PATH, self.tdmrep, methods=["GET", "HEAD"]),
                Route(self.terms_path, self.terms_page, methods=["GET", "HEAD"]),
                Route(self.terms_path + "/accept", self.accept, methods=["POST"]),
            ]
        )

    @property
    def terms(self) -> Terms:
        """The policy's terms, with --contact when they name no contact of their own (built once per policy)."""
        policy = self.policy()
        if self._terms is None or self._terms[0] is not policy:
            terms = policy.terms
            self._terms = (policy, terms if terms.contact or not self.contact else replace(terms, contact=self.contact))
        return self._terms[1]

    def owns(self, path: str) -> bool:
        return path in (ROBOTS_PATH, TDMREP_PATH) or path == self.terms_path or path.startswith(self.terms_path + "/")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    # --- documents ----------------------------------------------------------------------------------------------

    def _merge(self, upstream: str) -> str:
        terms = self.terms
        names = ai_robots_names(self.policy().fingerprinter.catalog.agents)
        return merged_robots(upstream, terms, names, self.terms_path)

    async def robots_txt(self, request: Request) -> Response:
        """Always 200, to every client: the upstream's robots.txt with the terms' groups."""
        robots = await self.robots.get(request.scope["gate.facts"].host)
        max_age = 60 if robots.stand_in else 300
        return PlainTextResponse(robots.text, headers={"cache-control": f"public, max-age={max_age}"})

    async def tdmrep(self, request: Request) -> Response:
        return JSONResponse(tdmrep_json(self.terms, self.policy_url(request)), headers=_cacheable())

    async def terms_page(self, request: Request) -> Response:
        """HTML for people, JSON for machines (whatever asks for application/json and not text/html)."""
        base = base_url(request)
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return JSONResponse(terms_json(self.terms, base, self.own_prefix), headers=_cacheable())
        return HTMLResponse(terms_html(self.terms, base, self.own_prefix), headers=_cacheable())

    def policy_url(self, request: Request) -> str:
        return base_url(request) + self.terms_path

    def response_headers(self, facts: Facts) -> list[tuple[bytes, bytes]]:
        """Content-Usage, TDMRep and the terms link, for a response to `facts`' path."""
        uses = self.terms.uses_for(facts.path)  # once: this runs for every proxied response
        usage = self._usage
        if usage is None or usage[0] is not uses:
            usage = self._usage = (uses, format_uses(uses).encode(), b"1" if reserves_training(uses) else b"0")
        return [
            (b"content-usage", usage[1]),
            (b"tdm-reservation", usage[2]),
            (b"tdm-policy", f"{origin(facts)}{self.terms_path}".encode()),
            (b"link", self.terms_link),
        ]

    # --- the terms action -----------------------------------------------------------------------------------------

    async def send_terms(self, send: Send, facts: Facts, signals: Signals, reason: str) -> int:
        """403 with the machine-readable terms instead of the content."""
        terms = self.terms
        base = origin(facts)
        body = {
            "error": "terms",
            "reason": reason,
            "message": "This site's content is offered to AI crawlers only under its terms; accept them to be let "
            "in where they allow it.",
            "terms": terms_json(terms, base, self.own_prefix),
        }
        metrics.terms_served_total.labels(signals.agent_name or signals.agent_class, reason).inc()
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            *self.response_headers(facts),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return 403

    async def check_consent(self, facts: Facts, signals: Signals) -> ConsentCheck:
        """A request the rules answer with the terms: does it carry a consent that opens this path to it?"""
        text = presented_token(facts)
        if text is None:
            return ConsentCheck(False, "no-consent")
        token = ConsentToken.open(self.keys, text)
        terms = self.terms
        if token is None:
            return ConsentCheck(False, "invalid-token")
        if token.expires <= time.time():
            return ConsentCheck(False, "expired")
        if token.agent != signals.agent_name:
            return ConsentCheck(False, "other-agent")
        if "impostor" in signals.names:  # the agent's operator publishes its ranges, and this is not from them
            return ConsentCheck(False, "unverified-agent")
        if token.version != terms.version:
            return ConsentCheck(False, "outdated-terms")
        if not terms.opens(facts.path, token.purpose):
            return ConsentCheck(False, "not-opened")
        interval = terms.crawl_period / terms.crawl_rate
        try:
            answer = await self.store.rate_limit(
                [Quota(rate_key(token.id), interval, CONSENT_BURST)], revocation_key(token.id)
            )
        except StoreError as error:  # the store refused the call: as an outage, by --store-failure
            log.warning("consent %s not checked against the store: %s", token.id, error)
            answer = Verdicts([Verdict(True, 0, 0.0, 0.0)], fallback=True)
        if answer.fallback and self.fail_closed:  # a revocation may be in the store that did not answer
            return ConsentCheck(False, "store-unavailable", Refusal("unavailable", UNAVAILABLE_RETRY))
        if answer.banned_for > 0:
            return ConsentCheck(False, "revoked")
        verdict = answer.each[0]
        if not verdict.allowed:
            limit = Limit("consent", terms.crawl_rate, terms.crawl_period, CONSENT_BURST)
            return ConsentCheck(False, "rate", Refusal("limit", verdict.retry_after, limit))
        metrics.consented_requests_total.labels(token.agent).inc()
        return ConsentCheck(True, "consent")

    # --- accepting ------------------------------------------------------------------------------------------------

    async def accept(self, request: Request) -> Response:
        try:
            return await self._accept(request)
        except StoreError as error:
            log.warning("acceptance not recorded: %s", error)
            return JSONResponse({"error": "the site cannot record acceptances right now"}, status_code=503)
        except BadAcceptance as bad:
            metrics.consent_refusals_total.labels(str(bad.status)).inc()
            headers = {"retry-after": str(round(ACCEPT_QUOTA[0]))} if bad.status == 429 else None
            return JSONResponse({"error": str(bad)}, status_code=bad.status, headers=headers)

    async def _accept(self, request: Request) -> Response:
        if "application/json" not in request.headers.get("content-type", ""):
            raise BadAcceptance(415, "send the acceptance as application/json")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BadAcceptance(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        acceptance = read_acceptance(bytes(body))
        terms = self.terms
        agent = self.policy().fingerprinter.catalog.by_name.get(acceptance.agent.lower())
        if agent is None:
            raise BadAcceptance(422, f"agent: {acceptance.agent!r} is not in this site's agent lists")
        purposes = terms.purposes()
        if acceptance.purpose not in purposes:
            raise BadAcceptance(422, f"purpose: these terms open paths to {', '.join(purposes) or 'nothing'}")
        if acceptance.terms_version != terms.version:
            raise BadAcceptance(409, f"terms_version: the terms in force are version {terms.version}")
        facts = request.scope["gate.facts"]
        quotas = [
            Quota(f"accept:{client_tag(facts.prefix)}", *ACCEPT_QUOTA),  # per network: a /64 is one client
            Quota("accept:{site}", *ACCEPTS_PER_SITE),
        ]
        if not all(verdict.allowed for verdict in (await self.store.rate_limit(quotas)).each):
            raise BadAcceptance(429, "too many acceptances from this network, or from everyone; try again later")
        now = time.time()
        token = ConsentToken.mint(agent.name, acceptance.purpose, terms.version, terms.consent_lifetime, now)
        record = consent_record(token, acceptance, facts, now)
        await self.store.set(record_key(token.id), record, terms.consent_lifetime)
        metrics.consents_accepted_total.labels(agent.name, acceptance.purpose).inc()
        log.info(
            "consent %s accepted: %s",
            token.id,
            record.decode(),
            extra=event("consent", id=token.id, agent=agent.name, purpose=acceptance.purpose),
        )
        opened = [entry.path for entry in terms.opened(acceptance.purpose)]
        return JSONResponse(
            {
                "token": token.seal(self.keys),
                "id": token.id,
                "agent": token.agent,
                "purpose": token.purpose,
                "terms_version": token.version,
                "expires": token.expires,
                "paths": opened,
                "crawl_rate": {"requests": terms.crawl_rate, "per_seconds": terms.crawl_period},
                "use": "send Authorization: Bearer <token> with each request, as this agent",
            },
            status_code=201,
            headers={"cache-control": "no-store"},
        )

    # --- robots.txt compliance --------------------------------------------------------------------------------

    def robots_fetched(self, signals: Signals) -> None:
        if signals.agent_name and signals.agent_class in ROBOTS_CLASSES:
            metrics.robots_fetches_total.labels(signals.agent_name).inc()

    def ignores_robots(self, facts: Facts, signals: Signals) -> bool:
        """Has this agent, from this network, been caught fetching what robots.txt disallows it often enough to be
        denied? Counted per network, so nobody can get a crawler denied by wearing its name elsewhere; never for a
        verified crawler (a proven operator is told off by the metrics, not locked out)."""
        until = self._violators.get((signals.agent_name or "", facts.prefix))
        if until is None:
            return False
        if until <= time.monotonic():
            del self._violators[(signals.agent_name or "", facts.prefix)]
            return False
        return not signals.verified

    async def check_robots(self, facts: Facts, signals: Signals) -> bool:
        """Count a request for a path robots.txt disallows to this agent; True when it is one."""
        name = signals.agent_name
        if not name or signals.agent_class not in ROBOTS_CLASSES:
            return False
        robots = self.robots.cached(facts.host)
        url = f"{facts.scheme}://{facts.host}{facts.path}" + (f"?{facts.query}" if facts.query else "")
        if robots is None or robots.stand_in or robots.allows(name, url):
            return False
        metrics.robots_violations_total.labels(name).inc()
        deny_after = self.terms.robots_deny_after
        if deny_after is None or signals.verified:
            return True
        try:
            violations = await self.store.incr(f"robots-violations:{client_tag(facts.prefix)}{name}", VIOLATION_WINDOW)
        except StoreError as error:
            log.warning("robots.txt violation by %s not counted: %s", name, error)
            return True
        if (
            violations >= deny_after
            and not self.ignores_robots(facts, signals)
            and len(self._violators) < MAX_VIOLATORS
        ):
            log.warning(
                "%s from %s fetched %d paths robots.txt disallows it: denied",
                name,
                facts.prefix,
                violations,
                extra=event("robots-violator", agent=name, network=facts.prefix, violations=violations),
            )
            self._violators[(name, facts.prefix)] = time.monotonic() + VIOLATION_WINDOW
        return True


def origin(facts: Facts) -> str:
    """`scheme://host` for the absolute URLs in documents and headers; empty (so the URLs are relative) when the
    Host header is not a plain host name or address, which a client could otherwise write into them."""
    return f"{facts.scheme}://{facts.host}" if SANE_HOST.fullmatch(facts.host) else ""


def base_url(request: Request) -> str:
    return origin(request.scope["gate.facts"])


def _cacheable() -> dict[str, str]:
    return {"cache-control": "public, max-age=300"}
