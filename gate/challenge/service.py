"""The challenge as a service: pass tokens checked on challenged requests, the page served, solutions redeemed.

State lives in the shared store, each key with a TTL: `spent:<challenge id>` (a challenge is redeemed once, on any
instance), `pass:<token id>` (requests a pass token has made, counted in batches: gate/challenge/budgets.py),
`burns:<network>` (budgets a network used up: each raises its next difficulty). The challenge page also sets a small
probe cookie: a solution that arrives without it comes from a browser that keeps no cookies, which is told so
instead of being sent round a loop.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from gate import metrics
from gate.asgi import Receive, Scope, Send
from gate.challenge.budgets import PassBudgets
from gate.challenge.pages import (
    CONTENT_SECURITY_POLICY,
    ChallengeView,
    Strings,
    pick_locale,
    render_challenge_page,
    render_message_page,
)
from gate.challenge.pow import LIFETIME_SECONDS, Challenge, ChallengeError, check, nojs_wait
from gate.challenge.preview import PreviewCache
from gate.challenge.redirect import safe_return_to
from gate.challenge.tokens import PassToken, cookie_value, set_cookie
from gate.facts import Facts
from gate.keys import KeyRing
from gate.net import TrustedProxies, hostname
from gate.policy.model import Decision
from gate.proxy import Forwarder
from gate.responses import Outcome, send_html
from gate.store import Store, StoreError

log = logging.getLogger("gate.challenge")

DEFAULT_DIFFICULTY = 16  # for a challenge rule without one: about 65,000 hashes, a blink for a browser
BURN_STEP = 2  # each budget a network used up in the last hour adds this many bits
MAX_PENALTY_BITS = 8
PENALTY_CEILING = 26  # penalties stop here (a rule may ask for more itself)
BURN_WINDOW = 3600
OPENED_PASSES = 4096  # pass cookies whose signature was checked, kept (a few hundred bytes each)
NOJS_BUDGET_SHARE = 10  # a pass earned without JavaScript is worth a tenth of the budget
PROBE_COOKIE = "gate_probe"
MAX_FORM_BYTES = 4096
STATIC_FILES = ("solver.js", "worker.js", "challenge.css")
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class ChallengeSettings:
    pass_lifetime: int = 86400
    pass_budget: int = 1000
    cookie_domain: str | None = None
    contact: str = ""


class ChallengeService:
    def __init__(
        self,
        settings: ChallengeSettings,
        keys: KeyRing,
        store: Store,
        own_prefix: str,
        proxies: TrustedProxies,
        forwarder: Forwarder,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.store = store
        self.proxies = proxies
        self.previews = PreviewCache(forwarder)
        self.budgets = PassBudgets(store, self.used_up)
        # A browser presents the same cookie on every request: its signature is checked once (12 µs), then looked up.
        self.open_pass = functools.lru_cache(maxsize=OPENED_PASSES)(functools.partial(PassToken.open, keys))
        self.verify_url = own_prefix + "challenge/verify"
        self.nojs_url = own_prefix + "challenge/nojs"
        self.static = {
            name: (resources.files("gate.challenge") / "static" / name).read_bytes() for name in STATIC_FILES
        }
        self.static_urls = {
            name: f"{own_prefix}static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}"
            for name, body in self.static.items()
        }
        probe = f"{PROBE_COOKIE}=1; Path={own_prefix}; Max-Age={LIFETIME_SECONDS}; HttpOnly; SameSite=Lax"
        self.page_headers = {**PAGE_HEADERS, "set-cookie": probe}
        self.routes = Router(
            routes=[
                Route(self.verify_url, self.verify, methods=["POST"]),
                Route(self.nojs_url, self.redeem_wait, methods=["GET"]),
                Route(own_prefix + "static/{name}", self.static_file, methods=["GET", "HEAD"]),
            ]
        )

    # --- on challenged requests -------------------------------------------------------------------------------

    def pass_token(self, facts: Facts, now: float) -> PassToken | None:
        """The client's pass token, when it holds one that is genuine, unexpired and bound to this client."""
        text = cookie_value(facts)
        token = self.open_pass(text) if text is not None else None
        return token if token is not None and token.valid_for(facts, now) else None

    def pass_id(self, facts: Facts) -> str | None:
        """The id of the client's valid pass token, for limits counted `per: pass`."""
        token = self.pass_token(facts, time.time())
        return token.id if token is not None else None

    async def admits(self, facts: Facts, decision: Decision) -> bool:
        """Does the client hold a pass, earned at this difficulty or above, with budget left?"""
        now = time.time()
        token = self.pass_token(facts, now)
        if token is None or token.level < self.base_difficulty(decision):
            return False
        try:
            used = await self.budgets.count(token.id, token.budget, token.expires, facts.prefix)
        except StoreError as error:
            log.warning("store unavailable, admitting a signed pass without counting it: %s", error)
            return True
        return used <= token.budget

    async def used_up(self, network: str) -> None:
        """A pass budget just ran out: one burn for its network, whatever the client does next."""
        metrics.pass_budgets_exhausted_total.inc()
        await self.store.incr(f"burns:{network}", ttl=BURN_WINDOW)

    @staticmethod
    def base_difficulty(decision: Decision) -> int:
        return decision.difficulty if decision.difficulty is not None else DEFAULT_DIFFICULTY

    async def penalty_bits(self, facts: Facts) -> int:
        """Extra bits for a network that used up pass budgets in the last hour, cookie or not."""
        try:
            burns = await self.store.get(f"burns:{facts.prefix}")
        except StoreError:
            return 0
        return min(int(burns) * BURN_STEP, MAX_PENALTY_BITS) if burns else 0

    async def serve(self, send: Send, facts: Facts, decision: Decision, target: str) -> Outcome:
        """The challenge page, carrying the target page's preview tags."""
        locale = pick_locale(facts.headers.get("accept-language"))
        base = self.base_difficulty(decision)
        difficulty = min(base + await self.penalty_bits(facts), max(base, PENALTY_CEILING))
        target = safe_return_to(target)
        og_tags = await self.previews.tags(facts, target) if facts.method == "GET" else []
        body = self.render(facts, locale, difficulty, decision.rule, target, og_tags)
        metrics.challenges_issued_total.labels(decision.rule).inc()
        metrics.challenge_difficulty.observe(difficulty)
        return await self._send(send, decision.status or 200, body, self.page_headers)

    def render(
        self,
        facts: Facts,
        locale: Strings,
        difficulty: int,
        rule: str,
        target: str,
        og_tags: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        now = time.time()
        work = Challenge.new("js", facts, difficulty, rule, target, now).seal(self.keys)
        wait = Challenge.new("nojs", facts, difficulty, rule, target, now).seal(self.keys)
        view = ChallengeView(
            token=work,
            difficulty=difficulty,
            verify_url=self.verify_url,
            nojs_url=f"{self.nojs_url}?c={quote(wait)}",
            nojs_delay=nojs_wait(difficulty),
            static_urls=self.static_urls,
            locale=locale,
            contact=self.settings.contact,
            site_name=hostname(facts.host),
            og_tags=og_tags,
        )
        return render_challenge_page(view)

    async def _send(self, send: Send, status: int, body: bytes, headers: Mapping[str, str] = PAGE_HEADERS) -> Outcome:
        await send_html(send, status, body, [(name.encode(), value.encode()) for name, value in headers.items()])
        return Outcome(status)

    # --- gate's own endpoints -----------------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.routes(scope, receive, send)

    async def verify(self, request: Request) -> Response:
        """The solved form: challenge, nonce, elapsed_ms. Success: a pass cookie and a redirect back."""
        length = request.headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()) or int(length) > MAX_FORM_BYTES:
            return self._refused(request, 413, "too-large")
        body = bytearray()
        async for chunk in request.stream():  # never more than MAX_FORM_BYTES in memory, whatever the client says
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return self._refused(request, 413, "too-large")
        try:
            form = parse_qs(body.decode("latin-1"), max_num_fields=8)
        except ValueError:
            return self._refused(request, 400, "malformed")
        token = form.get("challenge", [""])[0]
        nonce = form.get("nonce", [""])[0]
        return await self._redeem(request, token, nonce, form.get("elapsed_ms", [""])[0])

    async def redeem_wait(self, request: Request) -> Response:
        """The no-JavaScript path: redeemable once its delay has passed, for a smaller budget."""
        return await self._redeem(request, request.query_params.get("c", ""), None, "")

    async def _redeem(self, request: Request, token: str, nonce: str | None, elapsed: str) -> Response:
        facts = Facts.from_scope(request.scope, self.proxies)
        now = time.time()
        try:
            challenge = check(self.keys, token, facts, now, nonce)
            if PROBE_COOKIE not in request.cookies:
                raise ChallengeError("no-cookies")
            if not await self._spend(challenge):
                raise ChallengeError("replayed")
        except ChallengeError as error:
            metrics.challenges_failed_total.labels(error.reason).inc()
            return await self._after_failure(request, facts, token, error.reason)
        metrics.challenges_solved_total.labels(challenge.kind).inc()
        if elapsed.isascii() and elapsed.isdigit() and len(elapsed) < 10:
            metrics.challenge_solve_seconds.observe(min(int(elapsed), 120_000) / 1000)
        budget = self.settings.pass_budget // (NOJS_BUDGET_SHARE if challenge.kind == "nojs" else 1)
        lifetime = self.settings.pass_lifetime
        token_value = PassToken.mint(
            facts, challenge.rule, challenge.kind, max(budget, 1), challenge.difficulty, lifetime, now
        )
        metrics.pass_tokens_minted_total.labels(challenge.kind).inc()
        cookie = set_cookie(token_value.seal(self.keys), lifetime, facts.scheme == "https", self.settings.cookie_domain)
        return Response(
            status_code=303,
            headers={"location": safe_return_to(challenge.to), "set-cookie": cookie, "cache-control": "no-store"},
        )

    async def _spend(self, challenge: Challenge) -> bool:
        try:
            return await self.store.set(f"spent:{challenge.id}", b"1", LIFETIME_SECONDS + 60, only_if_absent=True)
        except StoreError as error:
            log.warning("store unavailable, accepting a challenge without spending it: %s", error)
            return True

    async def _after_failure(self, request: Request, facts: Facts, token: str, reason: str) -> Response:
        """A binding change (dual-stack clients, mobile networks) or an expired challenge earns a fresh challenge
        for the same page; anything else is a plain failure."""
        locale = pick_locale(facts.headers.get("accept-language"))
        if reason in ("binding", "expired", "insufficient-work", "replayed"):
            earlier = Challenge.open(self.keys, token)  # these reasons are only found in genuine challenges
            body = self.render(facts, locale, earlier.difficulty, earlier.rule, safe_return_to(earlier.to))
            return Response(body, status_code=200, media_type="text/html", headers=self.page_headers)
        if reason == "no-cookies":
            body = render_message_page(locale, "cookies_title", "cookies_body", self.settings.contact, self.static_urls)
            return Response(body, status_code=403, media_type="text/html", headers=PAGE_HEADERS)
        if reason == "too-early":
            body = render_message_page(locale, "wait_title", "wait_body", self.settings.contact, self.static_urls)
            earlier = Challenge.open(self.keys, token)
            left = max(1, math.ceil(earlier.issued + nojs_wait(earlier.difficulty) - time.time()))
            headers = {**PAGE_HEADERS, "refresh": f"{left}; url={request.url.path}?{request.url.query}"}
            return Response(body, status_code=200, media_type="text/html", headers=headers)
        return self._failed(request, 400)

    def _refused(self, request: Request, status: int, reason: str) -> Response:
        """A submission refused before its challenge was even read."""
        metrics.challenges_failed_total.labels(reason).inc()
        return self._failed(request, status)

    def _failed(self, request: Request, status: int) -> Response:
        locale = pick_locale(request.headers.get("accept-language"))
        body = render_message_page(locale, "failed_title", "failed_body", self.settings.contact, self.static_urls)
        return Response(body, status_code=status, media_type="text/html", headers=PAGE_HEADERS)

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = self.static.get(name)
        if body is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain")
        kind = STATIC_TYPES[name[name.rfind(".") :]]
        return Response(body, media_type=kind, headers={"cache-control": "public, max-age=31536000, immutable"})
