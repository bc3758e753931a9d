"""Every document generated from the owner's terms: the terms page (HTML and JSON), robots.txt merged with the
upstream's own, and TDMRep's /.well-known/tdmrep.json. Pure functions of `Terms` and the site's address."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from markdown_it import MarkdownIt

from gate.fingerprint.agents import Agent
from gate.terms.model import Terms, format_uses, reserves_training, robots_pattern

ROBOTS_TOKEN = re.compile(r"^[A-Za-z0-9_.-]+$")  # RFC 9309 product tokens (with the dots real names use)
RULE_LINE = re.compile(r"^\s*(user-agent|allow|disallow)\s*:\s*(.*?)\s*(?:#.*)?$", re.IGNORECASE)
MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False})  # raw HTML in the text is shown, not run


def terms_json(terms: Terms, base_url: str, own_prefix: str) -> dict[str, Any]:
    """The machine-readable terms: uses per path, how to accept, the crawl rate, the text."""
    return {
        "version": terms.version,
        "site": base_url,
        "contact": terms.contact or None,
        "uses": dict(terms.uses),
        "paths": [
            {
                "path": entry.path,
                "robots_pattern": robots_pattern(entry.path),
                "uses": dict(entry.uses),
                "license": entry.license or None,
                "license_url": entry.license_url or None,
                "attribution": entry.attribution,
            }
            for entry in terms.paths
        ],
        "crawl_rate": {"requests": terms.crawl_rate, "per_seconds": terms.crawl_period},
        "accept": {
            "url": f"{base_url}{own_prefix}terms/accept",
            "method": "POST",
            "content_type": "application/json",
            "body": {
                "agent": "your crawler's name, as in its User-Agent",
                "contact": "an email address or https:// URL where the site owner can reach you",
                "purpose": f"one of: {', '.join(terms.purposes()) or 'none (nothing is opened)'}",
                "terms_version": terms.version,
            },
            "then": "send Authorization: Bearer <token> with every request",
        },
        "text": terms.text,
    }


def terms_html(terms: Terms, base_url: str, own_prefix: str) -> str:
    """The terms for people: the owner's text, then the uses per path, then how a crawler accepts."""
    rows = [("the whole site", dict(terms.uses), "", False)] + [
        (entry.path, {**terms.uses, **entry.uses}, entry.license, entry.attribution) for entry in terms.paths
    ]
    cells = [
        (f"<code>{html.escape(where)}</code>", html.escape(format_uses(uses)),
         html.escape(license_) + (" (attribution required)" if attribution else ""))
        for where, uses, license_, attribution in rows
    ]  # fmt: skip
    table = "".join(f"<tr><td>{where}</td><td>{uses}</td><td>{license_}</td></tr>" for where, uses, license_ in cells)
    contact = f"<p>Contact: {html.escape(terms.contact)}</p>" if terms.contact else ""
    accept = html.escape(f"{base_url}{own_prefix}terms/accept")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Terms for automated use</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
code{{background:#f3f3f3;padding:0 .2rem}}</style></head>
<body>
{MARKDOWN.render(terms.text)}
<h2>Uses, by path</h2>
<table><tr><th>where</th><th>uses (y: allowed, n: not)</th><th>licence</th></tr>{table}</table>
<p>Crawl rate for crawlers that accept: {terms.crawl_rate} requests per {terms.crawl_period:g} s.</p>
<h2>Accepting these terms</h2>
<p>A crawler operator accepts by sending <code>POST {accept}</code> with a JSON body naming the crawler
(<code>agent</code>), a <code>contact</code>, the <code>purpose</code> and <code>terms_version</code>
<code>{html.escape(terms.version)}</code>, and then sends the token it receives as
<code>Authorization: Bearer …</code>. The same terms are available as JSON (<code>Accept: application/json</code>).</p>
{contact}
<p><small>Terms version {html.escape(terms.version)}.</small></p>
</body></html>
"""


def tdmrep_json(terms: Terms, policy_url: str) -> list[dict[str, Any]]:
    """TDMRep (W3C CG) rules, most specific first: reserved wherever AI training is not allowed."""
    rules: list[dict[str, Any]] = []
    for entry in terms.paths:
        pattern = robots_pattern(entry.path)
        location = pattern if pattern.endswith("$") else pattern + "*"
        rules.append(
            {"location": location, "tdm-reservation": 1 if reserves_training({**terms.uses, **entry.uses}) else 0}
            | {"tdm-policy": policy_url}
        )
    rules.append({"location": "/*", "tdm-reservation": 1 if terms.tdm_reserved("/") else 0, "tdm-policy": policy_url})
    return rules


def star_disallows(robots: str) -> list[str]:
    """The Disallow lines of the upstream's `User-agent: *` groups, as `Disallow: PATH` lines."""
    found: list[str] = []
    agents: list[str] = []
    in_rules = False
    for line in robots.splitlines():
        match = RULE_LINE.match(line)
        if not match:
            continue
        field, value = match.group(1).lower(), match.group(2)
        if field == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        else:
            in_rules = True
            if field == "disallow" and value and "*" in agents:
                found.append(f"Disallow: {value}")
    return list(dict.fromkeys(found))


def ai_robots_names(agents: Iterable[Agent]) -> list[str]:
    """The robots.txt names of the AI crawlers in the agent lists (training, AI search and data collection)."""
    return sorted(
        {agent.name for agent in agents if agent.agent_class == "ai-crawler" and ROBOTS_TOKEN.match(agent.name)},
        key=str.lower,
    )


def content_usage_lines(terms: Terms) -> list[str]:
    """aipref's robots.txt rules: the site's preferences, then each path's (all of its uses, as in the header)."""
    lines = [f"Content-Usage: {terms.content_usage('/')}"]
    for entry in terms.paths:
        lines.append(f"Content-Usage: {robots_pattern(entry.path)} {format_uses({**terms.uses, **entry.uses})}")
    return lines


def merged_robots(upstream: str, terms: Terms, ai_names: Sequence[str], terms_path: str) -> str:
    """gate's groups, then the upstream's robots.txt. Every client reads the site's content-usage preferences; the
    AI crawlers (named groups inherit nothing from `*`, so its Disallow lines are copied in) may fetch only the
    terms and the paths the terms open to a consenting crawler, unless the owner's own robots.txt disallows them
    (an Allow as long as a Disallow would win: RFC 9309). gate's groups come first, so a crawler that reads only
    the first 500 KiB of a long file still reads them, `Disallow: /` first of all."""
    disallowed = star_disallows(upstream)
    owner_disallows = [line.removeprefix("Disallow: ") for line in disallowed]
    lines = [f"# Added by gate: the site's terms for automated use are at {terms_path}"]
    if terms.license_document:
        lines.append(f"License: {terms.license_document}")
    lines += ["User-agent: *", *content_usage_lines(terms), ""]
    if ai_names:
        lines += [f"User-agent: {name}" for name in ai_names]
        lines += ["Disallow: /", f"Allow: {terms_path}"]
        for entry in terms.paths:
            pattern = robots_pattern(entry.path)
            if entry not in terms.opened():
                lines.append(f"Disallow: {pattern}")  # an opt-out inside an opened directory
            elif not any(pattern.startswith(prefix) for prefix in owner_disallows):
                lines += [f"Allow: {pattern}"] + ([f"Allow: {pattern[:-1]}?"] if pattern.endswith("$") else [])
        lines += [*disallowed, *content_usage_lines(terms), ""]
    if upstream.strip():
        lines += ["# The site's own robots.txt", upstream.rstrip("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"
