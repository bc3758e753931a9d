"""The ASGI app: one request's way through gate, in the order of docs/architecture.md.

facts -> (own route?) -> signals -> decision -> response, then one metric update and one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

from gate import metrics
from gate.asgi import Message, Receive, Scope, Send
from gate.challenge.service import ChallengeService, ChallengeSettings
from gate.config import Settings
from gate.facts import Facts, has_dot_segments
from gate.fingerprint import Signals
from gate.keys import KeyRing, load_keyring
from gate.local_quotas import LocalQuotas
from gate.logs import AccessLog
from gate.net import TrustedProxies
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action, Decision
from gate.policy.reload import RulesWatcher
from gate.proxy import Forwarder, request_target
from gate.responses import Outcome, send_page
from gate.site_load import SiteLoad
from gate.store import FallbackStore, StoreError, open_store
from gate.terms.service import ROBOTS_PATH, TermsService
from gate.throttle import PAGES as REFUSAL_PAGES
from gate.throttle import Refusal, Throttle
from gate.verify import Verifier
from gate.verify.directory import KeyDirectories
from gate.verify.rdns import ReverseDns

log = logging.getLogger("gate")

Responder = Callable[[Scope, Receive, Send, Facts, Signals, Decision], Awaitable[Outcome]]

# In auth mode the front proxy turns these statuses into the real response (README, "nginx auth_request mode").
AUTH_STATUS = {
    Action.ALLOW: 200,
    Action.CHALLENGE: 401,
    Action.DENY: 403,
    Action.TERMS: 403,
    Action.THROTTLE: 200,  # within its limit; over it, 403 with X-Gate-Refused (see Gate.auth)
}


DOT_SEGMENTS = Decision(Action.DENY, "dot-segments", ("the path has . or .. segments",))
TERMS_DOCUMENTS = Decision(Action.ALLOW, "terms-documents", ("robots.txt, TDMRep and the terms are open to everyone",))
ROBOTS_VIOLATOR = "robots-violator"
ROBOTS_VIOLATOR_REASON = "the agent fetched paths robots.txt disallows it too often today (deny_robots_violators_after)"
OVER_LIMIT_DIFFICULTY = 20
AUTH_REFUSED = 403
STORE_CONNECT_SECONDS = 5.0
MAX_OVER_LIMIT_EXTRA_BITS = 4  # 24 bits: a few seconds in a browser, for a client refused again and again


class Gate:
    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.rules = RulesWatcher(settings.rules, policy or load_policy(settings.rules))
        self.forwarder = Forwarder(
            settings.upstream, settings.preserve_host, settings.connect_timeout, settings.upstream_timeout
        )
        self.auth_path = settings.own_prefix + "auth"
        self.challenge_path = settings.own_prefix + "challenge"
        self.refusal_path = settings.own_prefix + "refusal"
        self.access_log = AccessLog(enabled=settings.log_level in ("debug", "info"))
        self.keys = load_keyring(settings.secret_file) if settings.secret_file else KeyRing.temporary()
        self.store = open_store(settings.store, settings.store_timeout)
        fail_closed = settings.store_failure == "closed"
        # Failing closed means refusing while the shared store is down, so every charge must ask it.
        local = LocalQuotas(self.store) if isinstance(self.store, FallbackStore) and not fail_closed else None
        self.throttle = Throttle(self.store, fail_closed, settings.dry_run, local)
        self.site_load = SiteLoad(self.store, lambda: self.rules.policy.load)
        self.verifier = Verifier(
            self.store,
            ReverseDns(self.store, settings.resolver, settings.dns_timeout, settings.verify_wait),
            KeyDirectories(settings.verify_wait, settings.allow_private_key_directories),
        )
        self.terms = TermsService(
            self.keys,
            self.store,
            self.forwarder,
            settings.own_prefix,
            settings.contact,
            lambda: self.rules.policy,
            fail_closed,
        )
        self.challenges = ChallengeService(
            ChallengeSettings(
                pass_lifetime=int(settings.pass_lifetime),
                pass_budget=settings.pass_budget,
                cookie_domain=settings.cookie_domain,
                contact=settings.contact,
            ),
            self.keys,
            self.store,
            settings.own_prefix,
            self.proxies,
            self.forwarder,
        )
        self.responders: dict[Action, Responder] = {
            Action.ALLOW: self.forward,
            Action.DENY: self.deny,
            Action.CHALLENGE: self.challenge,
            Action.THROTTLE: self.forward,  # within the rule's limit: see Policy.limits_for
            Action.TERMS: self.terms_or_consent,
        }
        self._background: list[asyncio.Task[None]] = []
        # With --auth-cache, nginx's proxy_cache may answer the same request again for a while (docs/deployment.md).
        self.reusable_allow = (
            (b"x-accel-expires", b"%d" % settings.auth_cache) if settings.auth_cache and not settings.dry_run else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.forwarder.start()
                await self.connect_store()
                metrics.record_start()
                self.start_rules_reloading()
                self._background.append(asyncio.get_running_loop().create_task(self.site_load.run()))
                if self.keys.ephemeral:
                    log.warning(
                        "no --secret-file: signing with a temporary key; pass tokens end at restart and other "
                        "instances will not accept them (write a key with `gate keygen PATH`)"
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._background:
                    task.cancel()
                await self.challenges.budgets.flush()  # before the store closes: counts still pending
                if self.throttle.local is not None:
                    await self.throttle.local.flush()
                await self.forwarder.close()
                await self.verifier.close()
                await self.store.close()
                self.access_log.flush()
                metrics.flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def connect_store(self) -> None:
        """Connect to the shared store before the first request, whose deadline is too short for connecting (and,
        for a cluster, for learning its slots)."""
        try:
            await asyncio.wait_for(self.store.ping(), STORE_CONNECT_SECONDS)
        except (StoreError, TimeoutError) as error:
            log.warning("the store does not answer at start (%s): the in-process fallback answers until it does", error)

    def start_rules_reloading(self) -> None:
        """Reload on SIGHUP (when gate runs in the main thread, as every worker does) and on changed files."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, self.rules.request_reload, "SIGHUP")
        self._background.append(loop.create_task(self.rules.watch()))

    async def decide(self, facts: Facts) -> tuple[Signals, Decision, Action]:
        """Signals, the policy's decision, and the action taken (always allow in dry-run mode)."""
        policy = self.rules.policy
        signals = await self.verifier.settle(facts, policy.fingerprint(facts), policy)
        decision = policy.evaluate(facts, signals)
        if signals.agent_name is not None and self.terms.ignores_robots(facts, signals):
            decision = Decision(Action.DENY, ROBOTS_VIOLATOR, (*decision.reasons, ROBOTS_VIOLATOR_REASON))
        if self.settings.dry_run:
            return signals, decision, Action.ALLOW
        return signals, decision, decision.action

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if has_dot_segments(scope["path"]):
            await send_page(send, 400, "Bad request", "This address has . or .. segments; please use a plain one.")
            return
        if self.terms.owns(scope["path"]):
            await self.terms_document(scope, receive, send, started)
            return
        if scope["path"] == self.challenge_path:
            await self.challenge_for_front_proxy(scope, send, started)
            return
        if scope["path"] == self.refusal_path:
            await self.refusal_for_front_proxy(scope, send)
            return
        if scope["path"].startswith(self.settings.own_prefix) and scope["path"] != self.auth_path:
            await self.challenges.handle(scope, receive, send)
            return
        facts = Facts.from_scope(scope, self.proxies, self.site_load.busy)
        if self.settings.mode == "auth":
            await self.auth(scope, send, facts, started)
            return
        signals, decision, action = await self.decide(facts)
        outcome = await self.responders[action](scope, receive, send, facts, signals, decision)
        if signals.agent_name is not None and not outcome.consented:  # a consent is the owner's own opening
            await self.terms.check_robots(facts, signals)
        self.record(facts, signals, decision, action, outcome, started)

    async def terms_document(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        """robots.txt, tdmrep.json and the terms (and accepting them): for every client, before any rule."""
        facts = Facts.from_scope(scope, self.proxies)
        signals = self.rules.policy.fingerprint(facts)
        if facts.path == ROBOTS_PATH:
            self.terms.robots_fetched(signals)
        scope["gate.facts"] = facts
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.terms.handle(scope, receive, sending)
        self.record(facts, signals, TERMS_DOCUMENTS, Action.ALLOW, Outcome(status), started)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if has_dot_segments(scope["path"]):
            await send({"type": "websocket.close", "code": 1008})
            return
        facts = Facts.from_scope(scope, self.proxies, self.site_load.busy)
        signals, decision, action = await self.decide(facts)
        if action is Action.CHALLENGE and await self.challenges.admits(facts, decision):
            action = Action.ALLOW
        refusal = await self.charge(decision, facts, signals) if action in (Action.ALLOW, Action.THROTTLE) else None
        if refusal is not None and not self.settings.dry_run:
            action = Action.THROTTLE  # over a limit: refused like any other request
            await send({"type": "websocket.close", "code": 1008})
            outcome = Outcome(refusal.status)
        elif action in (Action.ALLOW, Action.THROTTLE) and self.settings.mode == "proxy":
            outcome = await self.forwarder.websocket(scope, receive, send, facts)
        else:
            await send({"type": "websocket.close", "code": 1008})
            outcome = Outcome(403)
        self.record(facts, signals, decision, action, outcome, started)

    async def auth(self, scope: Scope, send: Send, facts: Facts, started: float) -> None:
        """The decision endpoint for nginx auth_request, Traefik forwardAuth and Caddy forward_auth."""
        if scope["path"] != self.auth_path:
            await send_page(send, 404, "Not found", "In auth mode gate answers only its decision endpoint.")
            return
        facts = auth_request_facts(scope, facts, self.proxies, self.site_load.busy)
        signals, decision, action = await self.decide(facts)
        consented = False
        if has_dot_segments(facts.path):  # a front proxy passes 403 on; it would turn a 400 into a 500
            decision, action = DOT_SEGMENTS, Action.DENY
        if action is Action.CHALLENGE and await self.challenges.admits(facts, decision):
            action = Action.ALLOW
        status = AUTH_STATUS[action]
        extra: list[tuple[bytes, bytes]] = []
        reuse: list[tuple[bytes, bytes]] = []
        if action is Action.TERMS:
            check = await self.terms.check_consent(facts, signals)
            if check.allowed:
                action, status, consented = Action.ALLOW, AUTH_STATUS[Action.ALLOW], True
            elif check.refusal is not None:
                refused = check.refusal
                status, extra = AUTH_REFUSED, [*refused.headers(), (b"x-gate-refused", refused.reason.encode())]
            else:
                extra = self.terms.response_headers(facts)
        if action in (Action.ALLOW, Action.THROTTLE):
            refusal = await self.charge(decision, facts, signals)
            if refusal is not None and not self.settings.dry_run:
                # nginx's auth_request passes on only 2xx, 401 and 403 (anything else becomes a 500), so a refusal
                # is a 403 whose X-Gate-Refused says why; Retry-After and RateLimit ride along for auth_request_set.
                over_limit_challenge = self.over_limit_challenge(refusal, signals, decision)
                action = Action.CHALLENGE if over_limit_challenge else Action.THROTTLE
                status = AUTH_STATUS[Action.CHALLENGE] if over_limit_challenge else AUTH_REFUSED
                extra = [*refusal.headers(), (b"x-gate-refused", refusal.reason.encode())]
            elif action is Action.ALLOW and self.reusable_allow is not None and not consented:
                # A throttle rule's own limit and a crawler's consent count every request: those are never reused.
                # nginx reads X-Accel-Expires only if it comes before Cache-Control, whose no-store would win.
                reuse = [self.reusable_allow]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *reuse,
                    (b"content-length", b"0"),
                    (b"cache-control", b"no-store"),
                    (b"x-gate-action", decision.action.value.encode()),
                    (b"x-gate-rule", decision.rule.encode("latin-1", "replace")),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        if signals.agent_name is not None and not consented:  # a consent is the owner's own opening
            await self.terms.check_robots(facts, signals)
        self.record(facts, signals, decision, action, Outcome(status, consented=consented), started)

    async def charge(self, decision: Decision, facts: Facts, signals: Signals) -> Refusal | None:
        """Charge a request gate lets through against its limits (and check its address's ban)."""
        limits = self.rules.policy.limits_for(decision)
        needs_pass = any("pass" in limit.per for limit in limits)
        pass_id = self.challenges.pass_id(facts) if needs_pass else None
        return await self.throttle.charge(limits, facts, signals, self.rules.policy.bans, pass_id)

    @staticmethod
    def over_limit_challenge(refusal: Refusal, signals: Signals, decision: Decision) -> Decision | None:
        """A browser-looking client over a limit proves itself again rather than seeing a bare 429; each further
        refusal within the strike window makes the challenge a bit harder."""
        if refusal.limit is None or refusal.limit.browsers != "challenge" or signals.agent_class != "browser":
            return None
        difficulty = OVER_LIMIT_DIFFICULTY + min(max(refusal.strikes - 1, 0), MAX_OVER_LIMIT_EXTRA_BITS)
        return Decision(Action.CHALLENGE, decision.rule, decision.reasons, decision.score, difficulty)

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, facts: Facts, signals: Signals, decision: Decision
    ) -> Outcome:
        """Forward within the limits that apply: the policy's guards, and a throttle decision's own limit (in a dry
        run too, where refusals are counted but not enforced)."""
        refusal = await self.charge(decision, facts, signals)
        if refusal is None or self.settings.dry_run:  # a dry run counts the refusal and lets the request through
            return await self.forwarder.http(scope, receive, send, facts, self.terms.response_headers(facts))
        over_limit_challenge = self.over_limit_challenge(refusal, signals, decision)
        if over_limit_challenge is not None:
            return await self.challenges.serve(send, facts, over_limit_challenge, request_target(scope) or "/")
        await send_page(send, refusal.status, refusal.title, refusal.message, refusal.headers())
        return Outcome(refusal.status)

    async def challenge_for_front_proxy(self, scope: Scope, send: Send, started: float) -> None:
        """The challenge page for the request a front proxy describes (nginx `error_page 401` in auth mode): the
        original URI comes from X-Original-URI / X-Forwarded-Uri, as for the decision endpoint."""
        facts = self.front_proxy_facts(scope)
        signals, decision, _ = await self.decide(facts)
        if decision.action is not Action.CHALLENGE:
            decision = Decision(Action.CHALLENGE, decision.rule, decision.reasons, decision.score)
        target = facts.headers.get("x-original-uri") or facts.headers.get("x-forwarded-uri") or "/"
        outcome = await self.challenges.serve(send, facts, decision, target)  # serve() keeps it same-site
        self.record(facts, signals, decision, Action.CHALLENGE, outcome, started)

    def front_proxy_facts(self, scope: Scope) -> Facts:
        """The facts of the request a front proxy describes (X-Original-URI / X-Forwarded-Uri and the like)."""
        return auth_request_facts(scope, Facts.from_scope(scope, self.proxies), self.proxies, self.site_load.busy)

    async def refusal_for_front_proxy(self, scope: Scope, send: Send) -> None:
        """The page for a request the front proxy refused on gate's 403 (nginx `error_page 403` in auth mode): the
        refusal the decision's X-Gate-Refused names (a limit, a ban; the proxy passes it on), else the terms for an
        AI crawler, else the deny page. It only renders, and counts nothing: the decision was counted already."""
        facts = self.front_proxy_facts(scope)
        refused = facts.headers.get("x-gate-refused", "")
        if refused in REFUSAL_PAGES:
            status, title, message = REFUSAL_PAGES[refused]
            retry_after = facts.headers.get("x-gate-retry-after", "")
            plain = retry_after.isascii() and retry_after.isdigit()  # "²" is a digit to str.isdigit
            headers = [(b"retry-after", retry_after.encode())] if plain else []
            await send_page(send, status, title, message, headers)
            return
        signals, decision, action = await self.decide(facts)
        if action is Action.TERMS:
            check = await self.terms.check_consent(facts, signals)
            if check.refusal is None:
                await self.terms.send_terms(send, facts, signals, check.reason)
                return
        await send_denial(send, decision)

    async def challenge(
        self, scope: Scope, receive: Receive, send: Send, facts: Facts, signals: Signals, decision: Decision
    ) -> Outcome:
        """A valid pass token with budget left lets the request through; otherwise the challenge page."""
        if await self.challenges.admits(facts, decision):
            outcome = await self.forward(scope, receive, send, facts, signals, decision)
            return Outcome(outcome.status, outcome.upstream_seconds, outcome.error, passed=True)
        return await self.challenges.serve(send, facts, decision, request_target(scope) or "/")

    async def terms_or_consent(
        self, scope: Scope, receive: Receive, send: Send, facts: Facts, signals: Signals, decision: Decision
    ) -> Outcome:
        """The terms instead of the content, unless the request carries a consent that opens this path to it."""
        check = await self.terms.check_consent(facts, signals)
        if check.allowed:
            outcome = await self.forward(scope, receive, send, facts, signals, decision)
            return Outcome(outcome.status, outcome.upstream_seconds, outcome.error, consented=True)
        if check.refusal is not None:
            refusal = check.refusal
            await send_page(send, refusal.status, refusal.title, refusal.message, refusal.headers())
            return Outcome(refusal.status)
        return Outcome(await self.terms.send_terms(send, facts, signals, check.reason))

    async def deny(
        self, scope: Scope, receive: Receive, send: Send, facts: Facts, signals: Signals, decision: Decision
    ) -> Outcome:
        return await send_denial(send, decision)

    def record(
        self, facts: Facts, signals: Signals, decision: Decision, action: Action, outcome: Outcome, started: float
    ) -> None:
        duration = time.perf_counter() - started
        if outcome.passed or outcome.consented:
            action = Action.ALLOW  # challenged and let through on its pass token, or shown terms it had accepted
        metrics.request_counts(action.value, decision.rule, signals.agent_class).inc()
        if signals.agent is not None:
            metrics.agent_request_counts(signals.agent.name, signals.agent_class, action.value).inc()
        metrics.request_durations(action.value).observe(duration)
        self.site_load.note(outcome.upstream_seconds)
        if outcome.upstream_seconds is not None:
            metrics.upstream_durations().observe(outcome.upstream_seconds)
        if outcome.error is not None:
            metrics.upstream_errors_total.labels(outcome.error).inc()
        self.access_log.write(
            ip=facts.ip,
            method=facts.method,
            host=facts.host,
            path=facts.path,
            status=outcome.status,
            action=action.value,
            decided=decision.action.value,
            rule=decision.rule,
            agent_class=signals.agent_class,
            agent=signals.agent_name,
            proof=signals.proof,  # what verified the agent: network, dns or signature
            signer=signals.signer,  # a verified Web Bot Auth signature's key directory
            upstream_ms=None if outcome.upstream_seconds is None else round(outcome.upstream_seconds * 1000, 2),
            duration_ms=round(duration * 1000, 2),
            error=outcome.error,
            passed=outcome.passed,
            consented=outcome.consented,
        )


async def send_denial(send: Send, decision: Decision) -> Outcome:
    status = decision.status or 403
    await send_page(send, status, "Access denied", "This site does not accept requests from this client.")
    return Outcome(status)


def auth_request_facts(scope: Scope, facts: Facts, proxies: TrustedProxies, site_busy: bool) -> Facts:
    """The original request's facts from the front proxy's headers (nginx X-Original-*, Traefik/Caddy X-Forwarded-*)."""
    headers = facts.headers
    method = headers.get("x-original-method") or headers.get("x-forwarded-method") or "GET"
    uri = headers.get("x-original-uri") or headers.get("x-forwarded-uri") or "/"
    parts = urlsplit("/" + uri.lstrip("/"))  # "//host/x" is a path the front proxy serves, never a host
    who = proxies.resolve(facts.peer, headers.get("x-forwarded-for"), headers.get("x-real-ip"))
    return Facts.build(
        scope,
        headers,
        who,
        method=method.upper(),
        path=unquote(parts.path or "/"),
        query=parts.query,
        site_busy=site_busy,
        raw_path=parts.path or "/",
    )


def build_app(settings: Settings) -> Gate:
    """The app for these settings (`gate serve` builds it through server.serving_app, in each worker)."""
    return Gate(settings)
