"""`gate check`: explain what the policy decides for a request, without a server.

One request from flags, or many as JSON lines ({"method", "url", "ip", "headers": {...}, "busy": false}) on
standard input. Each answer is one JSON object per line; a request that cannot be read gets {"error": ...} and the
rest go on. Claims that need reverse DNS or a key directory are checked as a running gate would (waiting for the
answer), unless the caller passes no verifier: then they stay `unconfirmed`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from gate.facts import Facts
from gate.net import TrustedProxies, parse_ip
from gate.policy.engine import Policy
from gate.verify import Verifier

NO_PROXIES = TrustedProxies(())


class BadRequest(ValueError):
    """A request description gate check cannot turn into a request."""


def scope_for(method: str, url: str, ip: str, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The ASGI scope a server would build for this request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"url {url!r}: expected an absolute http:// or https:// URL")
    if parse_ip(ip) is None:
        raise BadRequest(f"ip {ip!r}: not an IP address")
    header_list = [(name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")) for name, value in headers]
    if not any(name == b"host" for name, _ in header_list):
        header_list.insert(0, (b"host", parts.netloc.encode("latin-1")))
    raw_path = (parts.path or "/").encode("latin-1")
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": parts.scheme,
        "path": unquote(parts.path or "/"),
        "raw_path": raw_path,
        "query_string": parts.query.encode("latin-1"),
        "headers": header_list,
        "client": (ip, 0),
        "server": None,
    }


async def explain(
    policy: Policy, scope: dict[str, Any], site_busy: bool = False, verifier: Verifier | None = None
) -> dict[str, Any]:
    """The decision and why; `site_busy` evaluates rules matching `load:` as if the site were under load."""
    facts = Facts.from_scope(scope, NO_PROXIES, site_busy)
    signals = policy.fingerprint(facts)
    if verifier is not None:
        signals = await verifier.settle(facts, signals, policy)
    decision = policy.evaluate(facts, signals)
    answer: dict[str, Any] = {
        "action": decision.action.value,
        "rule": decision.rule,
        "agent_class": signals.agent_class,
        "agent": signals.agent_name,
        "verified": signals.verified,
        "proof": signals.proof,
        "signature": signals.signature,
        "signer": signals.signer,
        "score": decision.score,
        "reasons": list(decision.reasons),
        "signals": sorted(signals.names),
        "networks": sorted(signals.networks),
    }
    for key in ("difficulty", "limit", "status"):
        value = getattr(decision, key)
        if value is not None:
            answer[key] = value
    return answer


def parse_header(text: str) -> tuple[str, str]:
    name, separator, value = text.partition(":")
    if not separator or not name.strip():
        raise BadRequest(f"header {text!r}: expected 'Name: value'")
    return name, value


async def explain_json_lines(
    policy: Policy, lines: Iterable[str], verifier: Verifier | None = None
) -> AsyncIterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise BadRequest("expected a JSON object")
            headers = request.get("headers") or {}
            if not isinstance(headers, Mapping):
                raise BadRequest("headers: expected an object of name: value")
            scope = scope_for(
                str(request.get("method", "GET")),
                str(request.get("url", "")),
                str(request.get("ip", "127.0.0.1")),
                [(str(name), str(value)) for name, value in headers.items()],
            )
        except (ValueError, UnicodeEncodeError) as error:
            yield {"line": number, "error": str(error)}
            continue
        yield await explain(policy, scope, request.get("busy") is True, verifier)
