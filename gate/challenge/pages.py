"""The challenge page and gate's plain message pages, in five languages.

The pages are HTML only: their stylesheet and scripts are gate's static files (static/), referenced through the
URLs the server passes in, so CONTENT_SECURITY_POLICY can forbid inline script and style. What solver.js needs
(the challenge, its difficulty, the worker's URL, a few texts) travels in a `<script type="application/json">`
data block, which the browser never runs. The answer goes back through a real <form>: POST verify_url with the
fields challenge, nonce and elapsed_ms, so the browser follows the server's redirect and stores its cookie itself.

Texts come from locales/<lang>.json, read once at import. `{site}`, `{seconds}` and `{percent}` in a text are
filled in (the first two here, `{percent}` by solver.js); every text and value is HTML-escaped on the way out.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from urllib.parse import quote

from gate.challenge.pow import MAX_DIFFICULTY

LANGUAGES = ("en", "de", "fr", "es", "ja")
DEFAULT_LANGUAGE = "en"

# Only gate's own files: no inline script or style, no other origin, no plugins, no frames, forms only to gate.
# child-src 'self' is for Safari before 15.5, which knows no worker-src and looks up workers under child-src;
# frame-src 'none' keeps frames out in every browser (frames consult it before child-src).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; child-src 'self'; frame-src 'none'; "
    "style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; "
    "connect-src 'self'"
)

STATIC_NAMES = ("solver.js", "worker.js", "challenge.css")

# Texts the solver shows; they travel in the page's JSON data block.
_SOLVER_KEYS = ("progress", "done", "error")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_EMAIL = re.compile(r"[^@\s<>\"'()\[\],;:\\]+@[^@\s<>\"'()\[\],;:\\]+\.[^@\s<>\"'()\[\],;:\\]+")
_WEB_ADDRESS = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_LANGUAGE_SEPARATOR = re.compile(r"[-_]")
# Accept-Language: what real browsers send is far shorter; anything past this is not worth parsing.
_MAX_ACCEPT_LANGUAGE = 1024
_MAX_LANGUAGE_ITEMS = 32
# Left unencoded in a refresh URL: RFC 3986 characters except quotes (a leading quote changes how the refresh
# value is parsed); "%" so that existing percent-escapes survive.
_REFRESH_URL_SAFE = "/:?#[]@!$&()*+,;=%-._~"


@dataclass(frozen=True, slots=True)
class Strings:
    """The texts of one language: `strings["title"]`; `lang` is the language code for the page's lang attribute."""

    lang: str
    texts: Mapping[str, str] = field(hash=False, repr=False)

    def __getitem__(self, key: str) -> str:
        return self.texts[key]

    def keys(self) -> frozenset[str]:
        return frozenset(self.texts)


@dataclass(frozen=True, slots=True)
class ChallengeView:
    token: str  # the signed challenge string the client hashes (ASCII, URL-safe)
    difficulty: int  # leading zero bits required (0-32)
    verify_url: str  # where the solved form is POSTed
    nojs_url: str  # opened by <noscript><meta http-equiv="refresh"> after nojs_delay seconds (carries its own token)
    nojs_delay: int  # seconds
    static_urls: Mapping[str, str]  # "solver.js", "worker.js", "challenge.css" -> URL (with a version query)
    locale: Strings
    contact: str  # how to reach the site owner ("" = say nothing): plain text, an email address or a URL
    site_name: str  # e.g. the Host, shown in the text
    og_tags: Sequence[tuple[str, str]] = ()  # (property, content), copied into <head>; twitter:* as name=


def _load_locales() -> Mapping[str, Strings]:
    folder = resources.files("gate.challenge") / "locales"
    loaded: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        texts = json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))
        if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
            raise ValueError(f"gate/challenge/locales/{lang}.json: expected an object of strings")
        loaded[lang] = texts
    english = loaded[DEFAULT_LANGUAGE]
    # A text missing from a translation falls back to English (the tests insist that none is missing).
    return MappingProxyType(
        {lang: Strings(lang, MappingProxyType({**english, **texts})) for lang, texts in loaded.items()}
    )


LOCALES: Mapping[str, Strings] = _load_locales()


def pick_locale(accept_language: str | None) -> Strings:
    """The best of LOCALES for an Accept-Language header, by q-value (ties: the earlier one); English otherwise.

    Region and script subtags are ignored (de-AT is de), `*` stands for English, malformed entries are skipped.
    """
    if not accept_language:
        return LOCALES[DEFAULT_LANGUAGE]
    return _pick_locale(accept_language[:_MAX_ACCEPT_LANGUAGE])


@functools.lru_cache(maxsize=1024)
def _pick_locale(header: str) -> Strings:
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for item in header.split(",", _MAX_LANGUAGE_ITEMS)[:_MAX_LANGUAGE_ITEMS]:
        tag, *parameters = item.split(";")
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = math.nan
        if not 0.0 < q <= 1.0:  # also refuses nan: the entry is skipped, as is q=0 ("not acceptable")
            continue
        tag = tag.strip().lower()
        lang = DEFAULT_LANGUAGE if tag == "*" else _LANGUAGE_SEPARATOR.split(tag, maxsplit=1)[0]
        if lang in LOCALES and q > best_q:
            best, best_q = lang, q
    return LOCALES[best]


def render_challenge_page(view: ChallengeView) -> bytes:
    """The challenge page, as UTF-8 HTML. Serve it with `Content-Security-Policy: CONTENT_SECURITY_POLICY`."""
    if not 0 <= view.difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"difficulty must be 0 to {MAX_DIFFICULTY} bits, not {view.difficulty}")
    if view.nojs_delay < 0:
        raise ValueError(f"nojs_delay must not be negative, not {view.nojs_delay}")
    missing = [name for name in STATIC_NAMES if name not in view.static_urls]
    if missing:
        raise ValueError(f"static_urls lacks {', '.join(missing)}")
    strings = view.locale
    urls = view.static_urls
    data = {
        "challenge": view.token,
        "difficulty": view.difficulty,
        "verifyUrl": view.verify_url,
        "workerUrl": urls["worker.js"],
        "lang": strings.lang,
        "strings": {key: strings[key] for key in _SOLVER_KEYS},
    }
    seconds = str(view.nojs_delay)
    refresh = f"{view.nojs_delay}; url={quote(view.nojs_url, safe=_REFRESH_URL_SAFE)}"
    parts = [
        _head(strings, strings["title"], urls.get("challenge.css")),
        *(_og_tag(name, content) for name, content in view.og_tags),
        f'<script type="application/json" id="gate-challenge">{script_json(data)}</script>\n',
        f'<script src="{_attr(urls["solver.js"])}" defer></script>\n',
        f'<noscript><meta http-equiv="refresh" content="{_attr(refresh)}"></noscript>\n',
        "</head>\n<body>\n<main>\n",
        '<h1><span class="spinner" id="gate-spinner" aria-hidden="true" hidden></span>',
        f"{_text(strings, 'heading')}</h1>\n",
        f'<p class="lead">{_text(strings, "intro", site=view.site_name)}</p>\n',
        f"<p>{_text(strings, 'why')}</p>\n",
        f"<p>{_text(strings, 'moment')}</p>\n",
        # The bar and the line under it follow every update; the hidden live region speaks only now and then.
        '<div class="work" id="gate-work" hidden>\n',
        f'<label class="visually-hidden" for="gate-progress">{_text(strings, "progress_label")}</label>\n',
        '<progress id="gate-progress" max="100" value="0"></progress>\n',
        '<p class="status" id="gate-progress-text" aria-hidden="true"></p>\n',
        '<p class="visually-hidden" id="gate-status" role="status" aria-live="polite" aria-atomic="true"></p>\n',
        "</div>\n",
        '<noscript><div class="nojs">\n',
        f"<p>{_text(strings, 'nojs', seconds=seconds)}</p>\n",
        f"<p>{_text(strings, 'nojs_manual', seconds=seconds)} ",
        f'<a href="{_attr(view.nojs_url)}" rel="nofollow">{_text(strings, "nojs_link")}</a></p>\n',
        "</div></noscript>\n",
        f'<form id="gate-form" method="post" action="{_attr(view.verify_url)}" hidden>\n',
        f'<input type="hidden" name="challenge" value="{_attr(view.token)}">\n',
        '<input type="hidden" name="nonce" value="">\n',
        '<input type="hidden" name="elapsed_ms" value="">\n',
        "</form>\n",
        _contact(strings, view.contact),
        '<p id="gate-stats" hidden></p>\n',
        "</main>\n</body>\n</html>\n",
    ]
    return "".join(parts).encode("utf-8")


def render_message_page(
    locale: Strings, title_key: str, body_key: str, contact: str, static_urls: Mapping[str, str], status_hint: str = ""
) -> bytes:
    """A plain page (no script): cookies blocked (cookies_title/cookies_body), challenge failed
    (failed_title/failed_body), the no-JavaScript path came too early (wait_title/wait_body).

    status_hint, when given, is a small line at the bottom (e.g. "403"). Unknown keys raise KeyError.
    """
    title = locale[title_key]
    parts = [
        _head(locale, title, static_urls.get("challenge.css")),
        "</head>\n<body>\n<main>\n",
        f"<h1>{_escape(title)}</h1>\n",
        f"<p>{_text(locale, body_key)}</p>\n",
        _contact(locale, contact),
        f'<p class="hint">{_escape(status_hint)}</p>\n' if status_hint else "",
        "</main>\n</body>\n</html>\n",
    ]
    return "".join(parts).encode("utf-8")


def script_json(value: object) -> str:
    """JSON safe inside a <script> element: no "<" (so no "</script" or "<!--"), ">" or "&" appears literally."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _head(strings: Strings, title: str, stylesheet: str | None) -> str:
    link = f'<link rel="stylesheet" href="{_attr(stylesheet)}">\n' if stylesheet else ""
    return (
        f'<!doctype html>\n<html lang="{_attr(strings.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{_escape(title)}</title>\n{link}"
    )


def _og_tag(name: str, content: str) -> str:
    kind = "name" if name.lower().startswith("twitter:") else "property"
    return f'<meta {kind}="{_attr(name)}" content="{_attr(content)}">\n'


def _contact(strings: Strings, contact: str) -> str:
    contact = contact.strip()
    if not contact:
        return ""
    if _EMAIL.fullmatch(contact):
        shown = f'<a href="mailto:{_attr(contact)}">{_escape(contact)}</a>'
    elif _WEB_ADDRESS.fullmatch(contact):
        shown = f'<a href="{_attr(contact)}" rel="nofollow noopener noreferrer">{_escape(contact)}</a>'
    else:
        shown = f"<span>{_escape(contact)}</span>"
    return f'<p class="contact">{_text(strings, "contact_intro")} {shown}</p>\n'


def _text(strings: Strings, key: str, **values: str) -> str:
    """strings[key] as HTML, with {name} placeholders replaced by the escaped values (others left as they are)."""

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else _escape(value)

    return _PLACEHOLDER.sub(fill, _escape(strings[key]))


def _escape(text: str) -> str:
    """For element content: <, > and &."""
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    """For a double-quoted attribute value: also both quotes."""
    return html.escape(text, quote=True)
