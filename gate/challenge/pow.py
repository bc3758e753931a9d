"""Proof-of-work challenges: issued stateless and signed, verified with one SHA-256 and one HMAC, spent once.

A challenge binds the work to the client's network (/24 or /64) and User-Agent, the rule that asked for it, where
the client was going, and when it was issued. The server decides the difficulty: the client only finds a nonce such
that SHA-256(token + nonce) starts with `difficulty` zero bits. The no-JavaScript variant asks for time instead of
work: it can be redeemed only after its delay has passed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

from gate.challenge.signing import SignatureError, sign, unsign
from gate.facts import Facts
from gate.keys import KeyRing

VERSION = "c1"
LIFETIME_SECONDS = 600  # a challenge must be solved within ten minutes
MAX_NONCE_DIGITS = 20
MAX_DIFFICULTY = 32  # the solver compares the digest's first 32-bit word only
MAX_CACHED_USER_AGENT = 512  # longer User-Agents are hashed each time: the cache must stay small
NOJS_BASE_SECONDS = 5
CHEAP_TAIL = 64 - 9 - 12  # room left in the last block for SHA-256's padding and a 12-digit nonce

Kind = Literal["js", "nojs"]


class ChallengeError(Exception):
    """A submission that does not earn a pass. `reason` is a metric label; a binding failure deserves a new
    challenge rather than an error page (a dual-stack client may change address family between the two)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def user_agent_hash(user_agent: str) -> str:
    """What a challenge and a pass token bind of the User-Agent; hashed once per recent User-Agent of ordinary
    length (every request on a pass checks it)."""
    return _recent_user_agent_hash(user_agent) if len(user_agent) <= MAX_CACHED_USER_AGENT else _hash(user_agent)


def _hash(user_agent: str) -> str:
    return hashlib.sha256(user_agent.encode("utf-8", "surrogateescape")).hexdigest()[:16]


_recent_user_agent_hash = lru_cache(maxsize=4096)(_hash)


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    kind: Kind
    issued: int  # Unix seconds
    difficulty: int  # leading zero bits; a "nojs" challenge proves them by waiting nojs_wait(difficulty) instead
    rule: str
    prefix: str
    ua: str  # user_agent_hash of the client's User-Agent
    to: str  # where to send the client afterwards (a checked relative path)
    pad: str = ""  # filler that puts the token's length where hashing it is cheapest (see seal)

    @classmethod
    def new(cls, kind: Kind, facts: Facts, difficulty: int, rule: str, to: str, now: float) -> Challenge:
        return cls(secrets.token_urlsafe(12), kind, int(now), difficulty, rule, facts.prefix,
                   user_agent_hash(facts.user_agent), to)  # fmt: skip

    def seal(self, keys: KeyRing) -> str:
        """The signed token. The solver hashes the token's full 64-byte blocks once and then only the last block
        per nonce; when the token's tail leaves no room in that block for the nonce and SHA-256's 9 bytes of
        padding, every attempt costs two blocks. A few filler characters avoid that: the same difficulty then
        costs the client half the time."""
        token = ""
        for filler in range(0, 64, 4):
            token = sign(
                keys, VERSION, json.dumps(asdict(self) | {"pad": "x" * filler}, separators=(",", ":")).encode()
            )
            if len(token) % 64 <= CHEAP_TAIL:
                break
        return token

    @classmethod
    def open(cls, keys: KeyRing, token: str) -> Challenge:
        try:
            fields = json.loads(unsign(keys, VERSION, token))
            challenge = cls(**fields)
        except SignatureError as error:
            raise ChallengeError(error.reason) from error
        except (ValueError, TypeError) as error:  # signed by us, so this means a format from another version
            raise ChallengeError("malformed") from error
        if challenge.kind not in ("js", "nojs"):
            raise ChallengeError("malformed")
        return challenge

    def expired(self, now: float) -> bool:
        return now > self.issued + LIFETIME_SECONDS or now < self.issued - 60

    def binds(self, facts: Facts) -> bool:
        return self.prefix == facts.prefix and self.ua == user_agent_hash(facts.user_agent)


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def work_done(token: str, nonce: str, difficulty: int) -> bool:
    """Does SHA-256(token + nonce) start with `difficulty` zero bits? The nonce is a plain decimal number."""
    if not (nonce.isascii() and nonce.isdigit()) or len(nonce) > MAX_NONCE_DIGITS or nonce != str(int(nonce)):
        return False
    return leading_zero_bits(hashlib.sha256(f"{token}{nonce}".encode("ascii")).digest()) >= difficulty


def check(keys: KeyRing, token: str, facts: Facts, now: float, nonce: str | None = None) -> Challenge:
    """The challenge behind `token` if this client may redeem it now; ChallengeError otherwise.

    Spending it (once) is the caller's job, through the shared store.
    """
    challenge = Challenge.open(keys, token)
    if challenge.expired(now):
        raise ChallengeError("expired")
    if not challenge.binds(facts):
        raise ChallengeError("binding")
    if challenge.kind == "js":
        if nonce is None or not work_done(token, nonce, challenge.difficulty):
            raise ChallengeError("insufficient-work")
    elif now < challenge.issued + nojs_wait(challenge.difficulty):
        raise ChallengeError("too-early")
    return challenge


def nojs_wait(bits: int) -> int:
    """Seconds a browser without JavaScript waits in place of `bits` of work: 5, plus 2 for each bit over 16."""
    return NOJS_BASE_SECONDS + 2 * max(0, bits - 16)
