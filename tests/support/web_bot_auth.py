"""Web Bot Auth for tests: Ed25519 signers, their key directories (served on loopback over TLS with
tests/support/tls.py's certificate), and a request signer.

The signer builds the RFC 9421 signature base itself (from the authority and the headers it writes), not with
gate's own `signature_base`, so a mistake there shows as a failed verification rather than being copied into the
signature. Structured fields are serialized with http-sfv, as real signers do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

TAG = "web-bot-auth"
WELL_KNOWN = "/.well-known/http-message-signatures-directory"
MEDIA_TYPE = "application/http-message-signatures-directory+json"

Headers = list[tuple[str, str]]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 over the required members of an OKP key, in lexicographic order, without whitespace."""
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass
class Signer:
    """One Ed25519 key, which signs requests as Web Bot Auth says."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def x(self) -> str:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return b64url(raw)

    @property
    def keyid(self) -> str:
        return jwk_thumbprint(self.x)

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.keyid}

    def sign(
        self,
        authority: str,
        agent: str,
        *,
        form: str = "dictionary",
        label: str = "sig1",
        member: str = "agent1",
        created: int | None = None,
        expires: int | None = None,
        nonce: bool | str = True,
        keyid: str | None = None,
        tag: str = TAG,
    ) -> Headers:
        """Signature-Agent, Signature-Input and Signature for a request to `authority` (host[:port], as
        @authority signs it), naming the key directory `agent`. `form`: "dictionary" (`agent1="https://…"`,
        covered as `"signature-agent";key="agent1"`) or "legacy" (the header one string). `nonce`: True for a
        fresh random one, False for none, or the nonce itself. `keyid`: another key's, to sign with the wrong key."""
        now = int(time.time())
        created = now if created is None else created
        expires = created + 300 if expires is None else expires
        covered = InnerList(["@authority", "signature-agent"])
        if form == "dictionary":
            agents = Dictionary()
            agents[member] = agent
            agent_header = str(agents)
            covered[1].params["key"] = member
            agent_value = str(agents[member])
        elif form == "legacy":
            agent_header = agent_value = str(Item(agent))
        else:
            raise ValueError(f"form {form!r}: expected dictionary or legacy")
        covered.params["created"] = created
        covered.params["expires"] = expires
        covered.params["keyid"] = keyid if keyid is not None else self.keyid
        covered.params["alg"] = "ed25519"
        if nonce is not False:
            covered.params["nonce"] = secrets.token_urlsafe(32) if nonce is True else nonce
        covered.params["tag"] = tag
        base = "\n".join(
            [
                f'"@authority": {authority.lower()}',
                f"{covered[1]}: {agent_value}",
                f'"@signature-params": {covered}',
            ]
        )
        inputs = Dictionary()
        inputs[label] = covered
        signatures = Dictionary()
        signatures[label] = self.key.sign(base.encode("ascii"))
        return [("Signature-Agent", agent_header), ("Signature-Input", str(inputs)), ("Signature", str(signatures))]


def directory_body(signers: Iterable[Signer], **extra: object) -> bytes:
    """A key directory (a JWK set) publishing the signers' keys; `extra` members are added to the set."""
    return json.dumps({"keys": [signer.jwk() for signer in signers], **extra}).encode()


def replaced(headers: Sequence[tuple[str, str]], name: str, value: str) -> Headers:
    """The headers with `name`'s value replaced."""
    return [(header, value if header.lower() == name.lower() else old) for header, old in headers]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", MEDIA_TYPE),)
    pause: float = 0.0  # when set, the body is sent in two halves this many seconds apart


class Routes:
    """What a test key-directory server answers, by path (404 elsewhere), and how often each path was asked."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, path: str) -> Reply | None:
        with self._lock:
            self.hits[path] += 1
            return self.replies.get(path)

    def requests(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def handler(self) -> type[BaseHTTPRequestHandler]:
        routes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reply = routes.hit(self.path) or Reply(404, b"not found", (("Content-Type", "text/plain"),))
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                half = len(reply.body) // 2 if reply.pause else len(reply.body)
                self.wfile.write(reply.body[:half])
                if reply.pause:
                    self.wfile.flush()
                    time.sleep(reply.pause)
                    self.wfile.write(reply.body[half:])

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler
