"""Signed, versioned strings a client hands back: `VERSION.PAYLOAD.KEYID.SIGNATURE`, HMAC-SHA256, URL-safe.

Used for challenges and pass tokens. A string signed by a key that is not in the key ring, or whose signature does
not match (its canonical text, compared in constant time), is refused; the payload is only read after the signature
checks out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from gate.keys import KeyRing

MAX_LENGTH = 2048


class SignatureError(ValueError):
    """Why a signed string was refused: malformed, unknown-key or bad-signature."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise SignatureError("malformed") from error


def _signature(key: bytes, version: str, payload: str) -> bytes:
    return hmac.new(key, f"{version}.{payload}".encode("ascii"), hashlib.sha256).digest()


def sign(keys: KeyRing, version: str, payload: bytes) -> str:
    encoded = b64encode(payload)
    key = keys.signing
    return f"{version}.{encoded}.{key.id}.{b64encode(_signature(key.material, version, encoded))}"


def unsign(keys: KeyRing, version: str, text: str) -> bytes:
    """The payload of a string signed with `version` by a key in the ring; SignatureError otherwise."""
    if len(text) > MAX_LENGTH or not text.isascii():
        raise SignatureError("malformed")
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != version:
        raise SignatureError("malformed")
    _, encoded, key_id, signature = parts
    key = keys.find(key_id)
    if key is None:
        raise SignatureError("unknown-key")
    # The signature's text is compared, not its decoded bytes: the lenient decoder would also accept padding,
    # the standard alphabet, stray characters and spare trailing bits, so one token would have many spellings.
    if not hmac.compare_digest(signature, b64encode(_signature(key.material, version, encoded))):
        raise SignatureError("bad-signature")
    return b64decode(encoded)
