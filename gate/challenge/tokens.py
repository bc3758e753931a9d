"""Pass tokens: the signed cookie a solved challenge buys, good for a bounded number of requests.

The token carries its id, expiry, the client's network and User-Agent hash, the rule and how it was earned; the
request budget lives in the store under the token id, so every gate instance sharing the store counts it together.
Presented from another network or with another User-Agent, a token is worth nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from gate.challenge.pow import Kind, user_agent_hash
from gate.challenge.signing import SignatureError, sign, unsign
from gate.facts import Facts
from gate.keys import KeyRing

VERSION = "p1"
COOKIE = "gate_pass"


@dataclass(frozen=True, slots=True)
class PassToken:
    id: str
    expires: int  # Unix seconds
    prefix: str
    ua: str
    rule: str
    earned: Kind  # "js" (proof of work) or "nojs" (waited): the latter gets a smaller budget
    budget: int  # requests this token may make
    level: int  # the difficulty it was earned at: it admits requests whose challenge is no harder

    @classmethod
    def mint(
        cls, facts: Facts, rule: str, earned: Kind, budget: int, level: int, lifetime: int, now: float
    ) -> PassToken:
        return cls(secrets.token_urlsafe(12), int(now) + lifetime, facts.prefix, user_agent_hash(facts.user_agent),
                   rule, earned, budget, level)  # fmt: skip

    def seal(self, keys: KeyRing) -> str:
        return sign(keys, VERSION, json.dumps(asdict(self), separators=(",", ":")).encode())

    @classmethod
    def open(cls, keys: KeyRing, text: str) -> PassToken | None:
        """The token in a cookie value, or None when it is not one of ours (forged, tampered, unknown key)."""
        try:
            token = cls(**json.loads(unsign(keys, VERSION, text)))
        except (SignatureError, ValueError, TypeError):
            return None
        return token

    def valid_for(self, facts: Facts, now: float) -> bool:
        return now < self.expires and self.prefix == facts.prefix and self.ua == user_agent_hash(facts.user_agent)


def cookie_value(facts: Facts) -> str | None:
    """The gate_pass cookie, read without a full cookie parser (this runs on every challenged request)."""
    header = facts.headers.get("cookie")
    if not header or COOKIE not in header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value.strip('"')
    return None


def set_cookie(value: str, lifetime: int, secure: bool, domain: str | None) -> str:
    attributes = [f"{COOKIE}={value}", "Path=/", f"Max-Age={lifetime}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    if domain:
        attributes.append(f"Domain={domain}")
    return "; ".join(attributes)
