"""Consent: a crawler operator accepts the terms and receives a signed token naming the crawler, the purpose and
the terms version; the crawler then presents it (`Authorization: Bearer`, or the `gate_consent` cookie).

The token is stateless and signed; the store keeps each acceptance as an audit record, a revocation mark, and the
token's crawl-rate quota, all under one Redis Cluster hash tag (the token id), each living as long as the token.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from gate.challenge.signing import SignatureError, sign, unsign
from gate.facts import Facts
from gate.keys import KeyRing

VERSION = "k1"
COOKIE = "gate_consent"
MAX_BODY_BYTES = 4096
MAX_TOKEN_CHARS = 1024
CONTACT = re.compile(r"^(mailto:)?[^@\s<>\"]{1,64}@[^@\s<>\"]{1,190}$|^https?://[^\s<>\"]{1,250}$")
RECORD_PREFIX = "consent:"
CONSENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def new_consent_id() -> str:
    """A random id that never starts with "-": `gate consent revoke ID` would read one that does as an option."""
    consent_id = secrets.token_urlsafe(12)
    while consent_id.startswith("-"):
        consent_id = secrets.token_urlsafe(12)
    return consent_id


@dataclass(frozen=True, slots=True)
class ConsentToken:
    id: str
    agent: str  # the agent's name in the agent lists: only requests identified as it may use the token
    purpose: str  # the use consented to (an aipref key, e.g. train-ai)
    version: str  # the terms version accepted
    expires: int  # Unix seconds

    @classmethod
    def mint(cls, agent: str, purpose: str, version: str, lifetime: float, now: float) -> ConsentToken:
        return cls(new_consent_id(), agent, purpose, version, int(now + lifetime))

    def seal(self, keys: KeyRing) -> str:
        return sign(keys, VERSION, json.dumps(asdict(self), separators=(",", ":")).encode())

    @classmethod
    def open(cls, keys: KeyRing, text: str) -> ConsentToken | None:
        """The token, or None when it is not one of ours (forged, tampered, unknown key, too long)."""
        if len(text) > MAX_TOKEN_CHARS:
            return None
        try:
            fields = json.loads(unsign(keys, VERSION, text))
            token = cls(**fields)
        except (SignatureError, ValueError, TypeError):
            return None
        return token


def record_key(consent_id: str) -> str:
    return RECORD_PREFIX + "{" + consent_id + "}"


def revocation_key(consent_id: str) -> str:
    return "consent-revoked:{" + consent_id + "}"


def rate_key(consent_id: str) -> str:
    return "consent-rate:{" + consent_id + "}"


def presented_token(facts: Facts) -> str | None:
    """The consent token a request carries: `Authorization: Bearer …`, else the gate_consent cookie."""
    authorization = facts.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookies = facts.headers.get("cookie", "")
    if COOKIE in cookies:
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value.strip('"')
    return None


@dataclass(frozen=True, slots=True)
class Acceptance:
    agent: str
    contact: str
    purpose: str
    terms_version: str


class BadAcceptance(ValueError):
    """A POST to the accept endpoint that cannot be taken; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_acceptance(body: bytes) -> Acceptance:
    """The acceptance in a request body, or BadAcceptance saying what is wrong with it."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadAcceptance(400, f"the body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise BadAcceptance(400, "expected a JSON object with agent, contact, purpose and terms_version")
    missing = [name for name in ("agent", "contact", "purpose", "terms_version") if name not in data]
    if missing:
        raise BadAcceptance(422, f"missing: {', '.join(missing)}")
    wrong = [name for name in ("agent", "contact", "purpose", "terms_version") if not isinstance(data[name], str)]
    if wrong:
        raise BadAcceptance(422, f"expected text for: {', '.join(wrong)}")
    unknown = sorted(set(data) - {"agent", "contact", "purpose", "terms_version"})
    if unknown:
        raise BadAcceptance(422, f"unknown fields: {', '.join(unknown)}")
    contact = data["contact"].strip()
    if not (CONTACT.match(contact) and contact.isascii() and contact.isprintable()):
        raise BadAcceptance(422, "contact: expected an email address or an http(s) URL")
    return Acceptance(data["agent"].strip()[:100], contact, data["purpose"].strip()[:40], data["terms_version"][:64])


def consent_record(token: ConsentToken, acceptance: Acceptance, facts: Facts, now: float) -> bytes:
    """The audit record kept for an acceptance: who, for what, which terms, when, from where."""
    record = {
        "id": token.id,
        "agent": token.agent,
        "purpose": token.purpose,
        "terms_version": token.version,
        "contact": acceptance.contact,
        "ip": facts.ip,
        "user_agent": facts.user_agent[:300],
        "accepted_at": int(now),
        "expires": token.expires,
    }
    return json.dumps(record, separators=(",", ":")).encode()
