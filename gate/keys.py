"""Secret keys: the key file `gate keygen` writes and `--secret-file` reads.

One key per line (URL-safe base64 of 32 random bytes); `#` starts a comment. The first key signs; every key in
the file verifies, so a rotation (`gate keygen --rotate`) keeps the previous key valid until the next one.
Instances sharing one key file accept each other's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
MAX_KEYS = 2
HEADER = "# gate secret keys: the first line signs, every line verifies. Written by `gate keygen`.\n"


@dataclass(frozen=True, slots=True)
class SecretKey:
    material: bytes

    @property
    def id(self) -> str:
        """A short public name for the key, so a token can say which key signed it."""
        return hashlib.sha256(b"gate-key-id\x00" + self.material).hexdigest()[:8]

    def encode(self) -> str:
        return base64.urlsafe_b64encode(self.material).decode().rstrip("=")

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True, slots=True)
class KeyRing:
    keys: tuple[SecretKey, ...]
    ephemeral: bool = False

    @property
    def signing(self) -> SecretKey:
        return self.keys[0]

    def find(self, key_id: str) -> SecretKey | None:
        return next((key for key in self.keys if secrets.compare_digest(key.id, key_id)), None)

    @classmethod
    def temporary(cls) -> KeyRing:
        return cls((SecretKey.generate(),), ephemeral=True)


def decode_key(text: str) -> SecretKey:
    # Strict: the lenient decoder would drop characters outside the alphabet, so "KEY # old note" would load as a
    # different key and silently invalidate every token it signed.
    standard = text.translate(str.maketrans("-_", "+/")) + "=" * (-len(text) % 4)
    try:
        material = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not a key (URL-safe base64 only; comments go on lines of their own)") from error
    if len(material) < KEY_BYTES:
        raise ValueError(f"a key needs at least {KEY_BYTES} bytes, this one has {len(material)}")
    return SecretKey(material)


def load_keyring(path: Path) -> KeyRing:
    """Read a key file; ValueError names the file and line of the first problem."""
    keys: list[SecretKey] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            keys.append(decode_key(text))
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
    if not keys:
        raise ValueError(f"{path}: no key in the file (write one with `gate keygen {path}`)")
    return KeyRing(tuple(keys))


def write_key_file(path: Path, *, rotate: bool = False) -> KeyRing:
    """Write a new key file with mode 0600, atomically. With rotate, the current key is kept as the second."""
    keys = [SecretKey.generate()]
    if rotate:
        keys += load_keyring(path).keys[: MAX_KEYS - 1]
    ring = KeyRing(tuple(keys))
    text = HEADER + "".join(key.encode() + "\n" for key in ring.keys)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ring
