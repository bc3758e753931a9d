"""Web Bot Auth: HTTP Message Signatures (RFC 9421) as the IETF webbotauth drafts profile them for bots.

A signed request carries `Signature-Agent` (where the signer's keys are), `Signature-Input` (what is signed, with
`tag="web-bot-auth"`, the key's JWK thumbprint as `keyid`, `created` and `expires`) and `Signature` (Ed25519 over
the signature base). This module reads those headers and checks a signature against a key; fetching keys is
gate/verify/directory.py's job. Structured fields are parsed and serialized by http-sfv, signatures checked by
cryptography: nothing here does base64 of signatures or signature arithmetic by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from gate.facts import Facts

if TYPE_CHECKING:  # cryptography is imported on the first signed request: 7 MB per worker a site may never need
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TAG = "web-bot-auth"
WELL_KNOWN = "/.well-known/http-message-signatures-directory"
MAX_VALIDITY = 86400  # the drafts: `expires` at most a day after `created`
CLOCK_SKEW = 5  # seconds a signer's clock may run ahead (or an expiry be passed) before a signature is refused
MAX_HEADER = 4096  # longer Signature / Signature-Input / Signature-Agent headers are not parsed at all
DEFAULT_PORTS = {"http": "80", "https": "443"}


class Invalid(Exception):
    """The request's signature is wrong: malformed, expired, not covering what it must, or not matching."""


class Unsupported(Exception):
    """The signature may be right, but it uses something gate does not check (an algorithm, a component)."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One Web Bot Auth signature of a request, read but not yet checked against a key."""

    label: str
    directory: str  # the key directory's URL, from Signature-Agent (the signer's identity)
    keyid: str
    created: int
    expires: int
    nonce: str | None
    signature: bytes
    base: bytes  # the signature base (RFC 9421 section 2.5) the signature must be over


def read_signature(facts: Facts, now: float) -> SignedRequest | None:
    """The request's Web Bot Auth signature; None when it carries none (other RFC 9421 signatures are not ours).

    Raises Invalid or Unsupported."""
    inputs = parse_dictionary(facts.headers, "signature-input")
    found = next(
        ((label, value) for label, value in inputs.items() if _param(value, "tag") == TAG),
        None,
    )
    if found is None:
        return None
    label, covered = found
    if not isinstance(covered, InnerList):
        raise Invalid(f"Signature-Input {label}: not a list of components")
    signature = parse_dictionary(facts.headers, "signature").get(label)
    if not isinstance(signature, Item) or not isinstance(signature.value, bytes):  # an inner list has no value
        raise Invalid(f"no Signature {label} for Signature-Input {label}")
    keyid, created, expires = _param(covered, "keyid"), _param(covered, "created"), _param(covered, "expires")
    if not isinstance(keyid, str) or not isinstance(created, int) or not isinstance(expires, int):
        raise Invalid("keyid, created and expires are required")
    algorithm = _param(covered, "alg")
    if algorithm is not None and algorithm != "ed25519":
        raise Unsupported(f"alg {algorithm!r} (gate checks ed25519)")
    if created > now + CLOCK_SKEW:
        raise Invalid("created in the future")
    if expires < now - CLOCK_SKEW:
        raise Invalid("expired")
    if expires <= created or expires - created > MAX_VALIDITY:
        raise Invalid(f"valid for more than {MAX_VALIDITY} s (or not at all)")
    names = [component.value for component in covered]
    if "@authority" not in names and "@target-uri" not in names:
        raise Invalid("@authority is not signed")
    if "signature-agent" not in names:
        raise Invalid("Signature-Agent is not signed")
    nonce = _param(covered, "nonce")
    return SignedRequest(
        label=label,
        directory=directory_url(_signature_agent(facts, covered)),
        keyid=keyid,
        created=created,
        expires=expires,
        nonce=nonce if isinstance(nonce, str) else None,
        signature=signature.value,
        base=signature_base(facts, covered),
    )


def check(signed: SignedRequest, key: Ed25519PublicKey) -> None:
    """Raise Invalid unless the signature is `key`'s over the request."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signed.signature, signed.base)
    except InvalidSignature:
        raise Invalid("the signature does not match the key or the request") from None


def directory_url(agent: str) -> str:
    """Signature-Agent's value as the key directory's URL: an origin means its well-known directory (what signers
    send today); anything longer is the directory's own URL (the working group's current draft)."""
    try:
        parts = urlsplit(agent.strip())
        port = parts.port
    except ValueError:  # a port that is not one, an unclosed IPv6 bracket
        parts, port = urlsplit(""), None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.fragment:
        raise Invalid(f"Signature-Agent {agent[:100]!r} is not an https URL")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        host.encode("idna")  # an empty or over-long label is no host name (brackets make one label)
    except UnicodeError:
        raise Invalid(f"Signature-Agent {agent[:100]!r} has no valid host name") from None
    host += f":{port}" if port and port != 443 else ""
    path = parts.path if parts.path not in ("", "/") else WELL_KNOWN
    return f"https://{host}{path}" + (f"?{parts.query}" if parts.query else "")


def signature_base(facts: Facts, covered: InnerList) -> bytes:
    """RFC 9421 section 2.5: one line per covered component, then @signature-params."""
    lines = []
    seen = set()
    for component in covered:
        name = component.value
        if not isinstance(name, str):
            raise Invalid("a component is not a string")
        identifier = str(component)
        if identifier in seen:
            raise Invalid(f"{identifier} is signed twice")
        seen.add(identifier)
        lines.append(f"{identifier}: {_component_value(facts, name, dict(component.params))}")
    lines.append(f'"@signature-params": {covered}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        raise Invalid("the signed values are not ASCII") from None


def _component_value(facts: Facts, name: str, params: dict[str, object]) -> str:
    if name.startswith("@"):
        if params:
            raise Unsupported(f"parameters of {name}")
        return _derived(facts, name)
    if name != name.lower():
        raise Invalid(f"component {name!r} is not lower-case")
    if set(params) - {"key"}:
        raise Unsupported(f"parameters {sorted(params)} of {name}")
    if name not in facts.headers:
        raise Invalid(f"signed header {name} is not in the request")
    key = params.get("key")
    if key is None:
        return facts.headers[name].strip()
    member = parse_dictionary(facts.headers, name).get(str(key))
    if member is None:
        raise Invalid(f"{name} has no member {key}")
    return str(member)


def _derived(facts: Facts, name: str) -> str:
    query = f"?{facts.query}" if facts.query else ""
    if name == "@method":
        return facts.method
    if name == "@authority":
        return authority(facts)
    if name == "@scheme":
        return facts.scheme
    if name == "@path":
        return facts.raw_path or "/"
    if name == "@query":
        return query or "?"
    if name == "@request-target":
        return (facts.raw_path or "/") + query
    if name == "@target-uri":
        return f"{facts.scheme}://{authority(facts)}{facts.raw_path or '/'}{query}"
    raise Unsupported(f"component {name}")


def authority(facts: Facts) -> str:
    """The Host as RFC 9421 signs it: lower-case, without the scheme's default port."""
    host = facts.host.strip().lower()
    default = DEFAULT_PORTS.get(facts.scheme)
    if default and host.endswith(":" + default) and not host.endswith("]"):
        host = host[: -len(default) - 1]
    return host


def _signature_agent(facts: Facts, covered: InnerList) -> str:
    """The signed Signature-Agent URL: the member the signature names (`"signature-agent";key="…"`), or the whole
    header as one string (the form signers sent before the header became a dictionary)."""
    raw = facts.headers.get("signature-agent", "").strip()
    component = next(item for item in covered if item.value == "signature-agent")
    key = component.params.get("key")
    if key is not None:
        member = parse_dictionary(facts.headers, "signature-agent").get(str(key))
        value = member.value if isinstance(member, Item) else None  # an inner list is no URL
    else:
        value = _parse_item(raw).value if raw.startswith('"') else None
    if not isinstance(value, str):
        raise Invalid("Signature-Agent is not a URL string")
    return value


def parse_dictionary(headers: dict[str, str], name: str) -> Dictionary:
    raw = headers.get(name, "")
    if len(raw) > MAX_HEADER:
        raise Invalid(f"{name} is longer than {MAX_HEADER} bytes")
    dictionary = Dictionary()
    if raw:
        try:
            dictionary.parse(raw.encode("latin-1"))
        except (ValueError, UnicodeEncodeError):
            raise Invalid(f"{name} is not a structured-field dictionary") from None
    return dictionary


def _parse_item(raw: str) -> Item:
    item = Item()
    try:
        item.parse(raw.encode("latin-1"))
    except (ValueError, UnicodeEncodeError):
        raise Invalid("Signature-Agent is not a structured-field string") from None
    return item


def _param(value: Item | InnerList, name: str) -> object:
    return value.params.get(name)
