"""The owner's terms, declared once (the rules' `terms:` section) and read by every document gate publishes.

Uses follow the IETF aipref vocabulary (`train-ai`, `search`, ...): each is `y` (allowed) or `n` (not), for the
whole site and, where the owner opts in, for some paths. Everything gate publishes (robots.txt, Content-Usage,
TDMRep, the terms page) is generated from one `Terms`, so the formats never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

USE_KEY = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # a Structured Field key
TRAINING_USE = "train-ai"  # TDMRep's reservation follows it: reserved where AI training is not allowed
DEFAULT_USES: Mapping[str, str] = {"train-ai": "n", "search": "y"}
DEFAULT_TEXT = """\
# Terms for automated use of this site

The writing, images and code on this site belong to their authors. Search engines may index it and link to it.

**Training artificial intelligence on this site's content is not allowed**, except where these terms say
otherwise for some paths. AI crawlers are shown these terms instead of the content.

A crawler operator who accepts these terms can receive a token that lets its crawler fetch the paths opened to
it, at the crawl rate stated here. Requests without a valid token keep receiving these terms.
"""


@dataclass(frozen=True, slots=True)
class PathTerms:
    """An opt-in (or opt-out) for the paths matching `path`, a glob as in rules (`/blog/**`)."""

    path: str
    pattern: re.Pattern[str]
    uses: Mapping[str, str]  # overrides the site's uses on these paths
    license: str = ""  # e.g. CC-BY-4.0
    license_url: str = ""
    attribution: bool = False  # using the work requires naming its author and linking to it


@dataclass(frozen=True, slots=True)
class Terms:
    version: str = "1"
    contact: str = ""
    uses: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_USES))
    paths: tuple[PathTerms, ...] = ()
    crawl_rate: int = 60  # requests per crawl_period that a consenting crawler may make
    crawl_period: float = 60.0
    consent_lifetime: float = 30 * 86400.0
    license_document: str = ""  # an RSL licence URL, announced with a robots.txt License: line
    robots_deny_after: int | None = None  # robots.txt violations in a day after which an agent is denied
    text: str = DEFAULT_TEXT  # Markdown, for people
    source: str = "built-in"  # file:line of the section

    def uses_for(self, path: str) -> Mapping[str, str]:
        """The uses in force on `path`: the first matching path entry's over the site's."""
        for entry in self.paths:
            if entry.pattern.fullmatch(path):
                return {**self.uses, **entry.uses}
        return self.uses

    def content_usage(self, path: str) -> str:
        """The Content-Usage field value for `path` (a Structured Field Dictionary of tokens)."""
        return format_uses(self.uses_for(path))

    def tdm_reserved(self, path: str) -> bool:
        """TDMRep: rights are reserved wherever AI training is not allowed."""
        return reserves_training(self.uses_for(path))

    def opened(self, use: str | None = None) -> list[PathTerms]:
        """The path entries that allow `use` (what a consent for it opens), or any use."""
        return [
            entry
            for entry in self.paths
            if any(value == "y" and use in (None, key) for key, value in entry.uses.items())
        ]

    def purposes(self) -> list[str]:
        """The uses some path is opened to: what a crawler may consent to."""
        return sorted({use for entry in self.paths for use, value in entry.uses.items() if value == "y"})

    def opens(self, path: str, use: str) -> bool:
        """Does a path entry open `path` to `use`? Consent opens only what the owner opened explicitly, never the
        site-wide uses (those are preferences for everyone, not an invitation to crawl)."""
        for entry in self.paths:
            if entry.pattern.fullmatch(path):
                return entry.uses.get(use) == "y"
        return False


def robots_pattern(glob: str) -> str:
    """A terms path as a robots.txt path pattern with the same meaning (RFC 9309): `/dir/**` is the prefix `/dir/`,
    an exact path ends with `$`. Other globs are refused when the rules load (`terms_path_problem`)."""
    if glob.endswith("/**"):
        return glob[:-2]
    return glob + "$"


def terms_path_problem(glob: str) -> str | None:
    """Why `glob` cannot be a terms path: each must mean the same in robots.txt, TDMRep and gate's own matching."""
    if not glob.startswith("/"):
        return "paths: each needs a path starting with /"
    body = glob[:-3] if glob.endswith("/**") else glob
    if not glob.isprintable() or any(character in body for character in "*?[]{}$#% \t"):
        return f"paths: {glob!r}: use a directory (/dir/**) or an exact path; robots.txt cannot say other globs"
    return None


def reserves_training(uses: Mapping[str, str]) -> bool:
    """TDMRep's reservation for these uses: reserved unless AI training is allowed."""
    return uses.get(TRAINING_USE) != "y"


def format_uses(uses: Mapping[str, str]) -> str:
    """`train-ai=n, search=y`: the Structured Field Dictionary form used in headers and robots.txt."""
    return ", ".join(f"{use}={value}" for use, value in uses.items())
