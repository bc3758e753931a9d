"""Where to send a client after a challenge: a same-site relative path, never anywhere else.

The target is the path the client first asked for, signed into the challenge. It is still checked, because the
original request line itself can be hostile: `GET //evil.example/` must not become `Location: //evil.example/`.
"""

from __future__ import annotations

from urllib.parse import unquote

from gate.facts import has_dot_segments

MAX_TARGET = 1024  # signed into the challenge, which must stay under the signing limit
FALLBACK = "/"


def safe_return_to(target: str) -> str:
    """`target` when it is a plain relative path on this site, else "/".

    Refused: anything not starting with exactly one "/", a "//" or "/\\" start (protocol-relative), any backslash,
    control or non-ASCII character, "." or ".." segments (the page gate previews must be the page the rules judged),
    and the same after percent-decoding, repeatedly (encoded variants).
    """
    if not target or len(target) > MAX_TARGET or not target.isascii():
        return FALLBACK
    decoded = target
    for _ in range(4):  # undo nested encodings (%252F...) a few levels deep
        if not _plain_path(decoded):
            return FALLBACK
        next_round = unquote(decoded)
        if next_round == decoded:
            return target
        decoded = next_round
    return FALLBACK


def _plain_path(text: str) -> bool:
    if not text.startswith("/") or text.startswith(("//", "/\\")):
        return False
    if any(character == "\\" or ord(character) < 0x20 or ord(character) == 0x7F for character in text):
        return False
    return not has_dot_segments(text.partition("?")[0])
