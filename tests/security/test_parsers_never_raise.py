"""Every parser of data gate does not control answers with its documented result or its documented error, never with
an exception that would become a 500, a dead reload task or a traceback from `gate rules lint`.

Inputs are mutations of valid ones (pass and consent tokens, challenge submissions, cookies, rules files, robots.txt
files, access log lines, Web Bot Auth headers, key directories), so the fuzzing gets past the first check of each
parser. Plain random text is covered elsewhere (tests/fingerprint/test_never_raises.py, tests/challenge/test_pow.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from protego import Protego

from gate.app import auth_request_facts
from gate.audit.logs import COMBINED, COMMON, DEFAULT_FORMATS, EARLIEST, LogEntry, LogFormat, Malformed, parse_line
from gate.challenge.pages import LOCALES, pick_locale
from gate.challenge.pow import Challenge, ChallengeError, check, work_done
from gate.challenge.redirect import FALLBACK, safe_return_to
from gate.challenge.signing import sign
from gate.challenge.tokens import COOKIE, PassToken, cookie_value
from gate.check import NO_PROXIES
from gate.facts import Facts
from gate.keys import KeyRing, SecretKey, decode_key
from gate.net import TrustedProxies
from gate.policy.engine import Policy
from gate.policy.load import glob_to_regex, load_policy
from gate.policy.source import RulesError
from gate.terms.consent import BadAcceptance, ConsentToken, presented_token, read_acceptance
from gate.terms.documents import merged_robots, star_disallows
from gate.terms.model import PathTerms, Terms
from gate.terms.robots import RobotsFile
from gate.verify.directory import MAX_TTL, MIN_TTL, DirectoryUnavailable, cache_lifetime, parse_keys
from gate.verify.signatures import Invalid, SignedRequest, Unsupported, directory_url, read_signature
from gate.verify.signatures import check as check_signature
from tests.support.web_bot_auth import Signer, b64url

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = float(int(time.time()))
KEYS = KeyRing((SecretKey(b"k" * 32), SecretKey(b"o" * 32)))
ROTATED_OUT = KeyRing((SecretKey(b"x" * 32),))
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
AUTHORITY = "blog.example"
AGENT_URL = "https://signer.example"


def scope(headers: list[tuple[bytes, bytes]], path: str = "/", raw_path: bytes | None = b"/") -> dict[str, Any]:
    """An ASGI scope as uvicorn builds it: header bytes as they came, any byte (read as latin-1 by Facts)."""
    built: dict[str, Any] = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "https", "path": path,
        "query_string": b"", "headers": [(b"host", AUTHORITY.encode()), (b"user-agent", UA.encode()), *headers],
        "client": ("203.0.113.7", 50000), "server": None,
    }  # fmt: skip
    if raw_path is not None:
        built["raw_path"] = raw_path
    return built


def request(*headers: tuple[str, str]) -> Facts:
    return Facts.from_scope(scope([(name.encode(), value.encode("latin-1")) for name, value in headers]), NO_PROXIES)


CLIENT = request()
PASS = PassToken.mint(CLIENT, "challenge-scripts", "js", 50, 16, 3600, NOW)
PASS_TEXT = PASS.seal(KEYS)
CONSENT = ConsentToken.mint("GPTBot", "train-ai", "2026-11-28", 86400, NOW)
CONSENT_TEXT = CONSENT.seal(KEYS)
CHALLENGE = Challenge.new("js", CLIENT, 4, "challenge-scripts", "/essays/", NOW)
CHALLENGE_TEXT = CHALLENGE.seal(KEYS)
NONCE = next(str(nonce) for nonce in range(10_000) if work_done(CHALLENGE_TEXT, str(nonce), 4))


# --- mutations of valid signed strings (VERSION.PAYLOAD.KEYID.SIGNATURE) ----------------------------------------------


def _reencode(part: str, standard: bool, padded: bool) -> str:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    text = (base64.standard_b64encode if standard else base64.urlsafe_b64encode)(raw).decode()
    return text if padded else text.rstrip("=")


@st.composite
def mutated(draw: st.DrawFn, valid: str) -> str:
    """`valid` changed one to three times as a client (or a forger) might: cut, bit-flipped, re-encoded, re-signed."""
    text = valid
    for _ in range(draw(st.integers(1, 3))):
        parts = text.split(".")
        kind = draw(st.sampled_from(
            ["truncate", "flip", "reencode", "payload", "junk", "parts", "version", "unicode", "quote"]
        ))  # fmt: skip
        if kind == "truncate" and text:
            text = text[: draw(st.integers(0, len(text) - 1))]
        elif kind == "flip" and text:
            index = draw(st.integers(0, len(text) - 1))
            text = text[:index] + chr(ord(text[index]) ^ (1 << draw(st.integers(0, 7)))) + text[index + 1 :]
        elif kind == "reencode" and len(parts) == 4:
            index = draw(st.sampled_from([1, 3]))
            try:
                parts[index] = _reencode(parts[index], draw(st.booleans()), draw(st.booleans()))
            except ValueError:
                parts[index] += draw(st.sampled_from(["=", "==", "==="]))
            text = ".".join(parts)
        elif kind == "payload":  # the valid payload edited, then signed with a retired key or not re-signed
            version, encoded, _, signature = valid.split(".")
            payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            payload |= draw(st.dictionaries(st.sampled_from(sorted(payload)), st.integers() | st.text(max_size=8)))
            ring = draw(st.sampled_from([KEYS, ROTATED_OUT]))
            resigned = sign(ring, version, json.dumps(payload).encode())
            text = resigned if ring is ROTATED_OUT else ".".join([*resigned.split(".")[:3], signature])
        elif kind == "junk":
            text += draw(st.sampled_from([".", "=", "..x", "%3D", " ", "\x00", "ü"]) | st.text(max_size=20))
        elif kind == "parts":
            text = ".".join(draw(st.lists(st.sampled_from(parts), max_size=6)))
        elif kind == "version" and len(parts) == 4:
            text = ".".join([draw(st.sampled_from(["p1", "c1", "k1", "p2", "", "P1"])), *parts[1:]])
        elif kind == "unicode":
            index = draw(st.integers(0, len(text)))
            text = (
                text[:index] + draw(st.sampled_from(["\u00e9", "\u0660", "\ud800", "\ufeff", "\uff10"])) + text[index:]
            )
        elif kind == "quote":
            text = f'"{text}"'
    return text


def other_tokens() -> st.SearchStrategy[str]:
    """Genuine tokens of the other kinds, presented where they do not belong."""
    return st.sampled_from([PASS_TEXT, CONSENT_TEXT, CHALLENGE_TEXT])


# --- tokens, cookies and challenge submissions ------------------------------------------------------------------------


@FUZZ
@given(text=mutated(PASS_TEXT) | other_tokens())
def test_a_mutated_pass_token_is_refused_never_raised(text: str) -> None:
    opened = PassToken.open(KEYS, text)
    assert opened is None or opened == PASS


cookie_name = st.sampled_from(["gate_probe", "gate_consent", "GATE_PASS", "gate_pass_", "session", "", "="]) | st.text(
    st.characters(max_codepoint=0xFF, exclude_characters=";"), max_size=12
)
cookie_value_text = st.text(st.characters(max_codepoint=0xFF, exclude_characters=";"), max_size=40)


@FUZZ
@given(
    others=st.lists(st.tuples(cookie_name, cookie_value_text), max_size=6),
    position=st.integers(0, 6),
    quoted=st.booleans(),
    separator=st.sampled_from([";", "; ", " ;  ", ";;"]),
    split=st.booleans(),
)
def test_the_pass_cookie_is_found_among_any_other_cookies(
    others: list[tuple[str, str]], position: int, quoted: bool, separator: str, split: bool
) -> None:
    pairs = [f"{name}={value}" for name, value in others if name.strip() != COOKIE]
    pairs.insert(min(position, len(pairs)), f'{COOKIE}="{PASS_TEXT}"' if quoted else f"{COOKIE}={PASS_TEXT}")
    # a browser over HTTP/2 may send one cookie header per cookie: Facts joins them with "; "
    headers = [("cookie", pair) for pair in pairs] if split else [("cookie", separator.join(pairs))]
    facts = request(*headers)
    assert cookie_value(facts) == PASS_TEXT
    assert PassToken.open(KEYS, PASS_TEXT) == PASS


@FUZZ
@given(header=st.binary(max_size=300) | st.sampled_from([b"gate_pass", b"gate_pass=", b'gate_pass="', b";gate_pass=;"]))
def test_any_cookie_header_reads_as_a_value_or_none(header: bytes) -> None:
    facts = Facts.from_scope(scope([(b"cookie", header)]), NO_PROXIES)
    value = cookie_value(facts)
    assert value is None or (isinstance(value, str) and value.strip('"') in facts.headers["cookie"])
    assert value is None or PassToken.open(KEYS, value) is None


nonces = st.sampled_from(
    [NONCE, "0" + NONCE, "+" + NONCE, f" {NONCE}", NONCE + "\n", "\u0661\u0662", "1" * 21, "-1", "", "1e3", "0x1f"]
) | st.none() | st.text(max_size=12)  # fmt: skip


@FUZZ
@given(token=mutated(CHALLENGE_TEXT) | other_tokens(), nonce=nonces)
def test_a_mutated_challenge_submission_is_refused_never_raised(token: str, nonce: str | None) -> None:
    try:
        earned = check(KEYS, token, CLIENT, NOW + 1, nonce)
    except ChallengeError as error:
        assert error.reason
    else:
        assert earned == CHALLENGE and nonce == NONCE


percent = st.sampled_from(["%2F", "%2f", "%5C", "%252F", "%25252F", "%2525252F", "%00", "%0A", "%E2%80%AE", "%zz", "%"])
targets = st.lists(st.sampled_from(["/", "//", "\\", "a", "..", ".", "?", "#", "@", ":", "evil.example"]) | percent,
                   max_size=12).map("".join)  # fmt: skip


@FUZZ
@given(target=targets | st.text(max_size=60))
def test_a_return_target_is_kept_or_replaced_by_the_home_page_never_raised(target: str) -> None:
    chosen = safe_return_to(target)
    assert chosen in (target, FALLBACK)
    assert chosen.startswith("/") and not chosen.startswith(("//", "/\\"))


# --- consent ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(
    token=mutated(CONSENT_TEXT) | other_tokens(),
    carrier=st.sampled_from(["Bearer {}", "bearer  {} ", "Basic {}", "Bearer", "{}", "cookie"]),
)
def test_a_mutated_consent_token_is_refused_never_raised(token: str, carrier: str) -> None:
    header = ("cookie", f"gate_consent={token}") if carrier == "cookie" else ("authorization", carrier.format(token))
    try:
        header[1].encode("latin-1")
    except UnicodeEncodeError:
        return  # not something an HTTP header can carry
    presented = presented_token(request(header))
    opened = ConsentToken.open(KEYS, presented) if presented is not None else None
    assert opened is None or opened == CONSENT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
acceptance_fields = st.fixed_dictionaries(
    {},
    optional={
        "agent": st.sampled_from(["GPTBot", " ", "x" * 500]) | json_values,
        "contact": st.sampled_from(["crawler@example.org", "mailto:a@b", "https://x.example/", "a@b\u200b", "@"])
        | json_values,
        "purpose": st.sampled_from(["train-ai", ""]) | json_values,
        "terms_version": st.sampled_from(["2026-11-28", "1"]) | json_values,
        "extra": json_values,
    },
)


@FUZZ
@given(body=acceptance_fields.map(lambda data: json.dumps(data).encode()) | st.binary(max_size=200))
@example(body=b"[" * 100_000)
@example(body=b'{"agent": 1' + b"0" * 5000 + b"}")
@example(body="\ufeff{}".encode())
def test_an_acceptance_body_is_read_or_answered_with_a_4xx(body: bytes) -> None:
    try:
        read_acceptance(body)
    except BadAcceptance as error:
        assert 400 <= error.status < 500


# --- rules files ------------------------------------------------------------------------------------------------------

SECTIONS = [
    "version", "agents", "networks", "fingerprints", "signal_weights", "limits", "bans", "load", "terms", "verified",
    "guards", "thresholds", "default", "rules", "import",
]  # fmt: skip
KEYS_INSIDE = [
    "name", "description", "match", "action", "difficulty", "limit", "weight", "status", "rate", "burst", "per",
    "browsers", "after", "window", "duration", "requests", "upstream_p90", "hold", "version", "contact", "uses",
    "paths", "path", "license", "license_url", "attribution", "crawl_rate", "consent_lifetime", "text",
    "license_document", "deny_robots_violators_after", "networks", "dns", "signature", "cidrs", "files",
    "ja4_header", "ja4", "score", "agent_class", "agent", "user_agent", "path_regex", "method", "host", "header",
    "query", "network", "cidr", "verified", "signal", "load", "signer", "any", "all", "not", "train-ai", "search",
    "GPTBot", "headless", "api",
]  # fmt: skip
WORDS = [
    "allow", "deny", "challenge", "throttle", "terms", "weigh", "120/min", "0/s", "1" * 400 + "/s", "1.5s", "800ms",
    "0s", "10m", "9" * 400 + "d", "busy", "calm", "/blog/**", "/a$", "/x*y", "ai-crawler", "GPTBot", "10.0.0.0/8",
    "::/0", "300.1.1.1/33", "googlebot.com", "-bad-.com", "https://chatgpt.com", "https://[::1", "y", "n", "ip",
    "pass", "(", "[a-", "(?P<x>", "headless", "refuse", "", " ", "\x00", "\u202e", "no-such-file.yaml",
    "shipped:nope.yaml",
]  # fmt: skip
# YAML scalars whose type the YAML parser decides, spliced into the dumped text as they are
RAW_SCALARS = [
    "2026-13-45", "2026-02-30", "2026-11-28 25:61:00", "2026-11-28T10:00:00+99:00", "1" * 5000, "9" * 400,
    "-" + "9" * 400, "1.0e+400", ".nan", ".inf", "-.inf", "0x_", "0b2", "0o9", "190:20:30", "1_000", "~", "!!binary x",
    "!!python/name:os.system", "*nowhere", "&a [*a]", "{<<: 1}", "[" * 200 + "]" * 200, "!!set {a, b}", "!!omap [a]",
    "? [a, b]", "!!timestamp x", "!!int x", "!!float x", '"\\ud800"',
]  # fmt: skip
RAW = [f"RAWSCALAR{index}X" for index in range(len(RAW_SCALARS))]

leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from([10**400, -(10**400), 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS + RAW)
    | st.text(st.characters(exclude_characters="/*?[\\", exclude_categories=["Cs"]), max_size=10)
)
yamlish = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS_INSIDE) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)
rules_documents = (
    st.dictionaries(st.sampled_from(SECTIONS), yamlish, max_size=8)
    | st.fixed_dictionaries(
        {"rules": st.lists(st.dictionaries(st.sampled_from(KEYS_INSIDE), yamlish, max_size=5), max_size=4)}
    )
    | yamlish
)


def rules_text(document: object) -> str:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    for placeholder, raw in zip(reversed(RAW), reversed(RAW_SCALARS), strict=True):  # RAWSCALAR10X before 1X
        text = text.replace(placeholder, raw)
    return text


def load_text(text: str) -> Policy | None:
    """The policy in a rules file with this text, or None when it is refused with RulesError (file:line problems)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rules.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_policy(path)
        except RulesError as error:
            assert error.problems
            return None


@settings(FUZZ, max_examples=200)
@given(document=rules_documents)
@example(document={"terms": {"version": RAW[RAW_SCALARS.index("2026-13-45")]}})
@example(document={"version": RAW[RAW_SCALARS.index("1" * 5000)]})
@example(document={"signal_weights": {"headless": 10**400}})
@example(document={"rules": [{"name": "r", "action": "weigh", "weight": 10**400}]})
@example(document={"rules": RAW[RAW_SCALARS.index("[" * 200 + "]" * 200)]})
@example(document={"limits": {"api": {"rate": "1" * 400 + "/s"}}})
@example(document={"terms": {"crawl_rate": "1" * 400 + "/min"}})
@example(document={"load": {"requests": "1" * 400 + "/s"}})
@example(document={"version": RAW[RAW_SCALARS.index("!!timestamp x")]})
@example(document={"agents": "9" * 400})  # a file name longer than the system takes: ENAMETOOLONG
def test_a_rules_file_of_any_shape_loads_or_is_refused_with_its_problems(document: object) -> None:
    policy = load_text(rules_text(document))
    if policy is not None:  # what was accepted is usable: every rate becomes a finite interval
        assert all(math.isfinite(limit.interval) for limit in policy.limits.values())
        assert math.isfinite(policy.terms.crawl_period / policy.terms.crawl_rate)


@FUZZ
@given(text=st.text(max_size=300))
@example(text="")  # an empty file has no keys, but its document is still asked where its imports are
@example(text="rules:\n- name: a\n  match: {not: " * 60)
@example(text="\ufeffversion: 1\n")
@example(text="version: 1\n\x85x: \ud800\n")
def test_rules_text_of_any_kind_loads_or_is_refused_with_its_problems(text: str) -> None:
    load_text(text)


# --- robots.txt merge -------------------------------------------------------------------------------------------------

ROBOTS_LINES = [
    "User-agent: *", "user-agent:*#comment", "User-agent: GPTBot", "User-agent:", "Disallow: /private/",
    "Disallow: /*.pdf$", "Disallow:", "disallow : /a b", "Allow: /", "Allow: /.gate/terms", "Disallow: /.gate/",
    "Sitemap: https://blog.example/sitemap.xml", "Crawl-delay: 10", "Crawl-delay: x", "Disallow: %zz",
    "Disallow: /%E2%82", "Disallow: /\x00", "Disallow: /\u00e9t\u00e9", "# a comment", "Content-Usage: train-ai=n",
    "Request-rate: 1/0", "Host: \ud800", "\ufeffUser-agent: *", "Disallow: /" + "a*" * 40,
]  # fmt: skip
OPEN = PathTerms("/open/**", re.compile(glob_to_regex("/open/**")), {"train-ai": "y"})
EXACT = PathTerms("/open/closed.html", re.compile(glob_to_regex("/open/closed.html")), {"train-ai": "n"})
TERMS_WITH_PATHS = Terms(paths=(EXACT, OPEN), license_document="https://blog.example/license.xml")


@FUZZ
@given(
    lines=st.lists(st.sampled_from(ROBOTS_LINES) | st.text(max_size=30), max_size=12),
    end=st.sampled_from(["\n", "\r\n", "\r"]),
    terms=st.sampled_from([Terms(), TERMS_WITH_PATHS]),
    ai_names=st.sampled_from([[], ["GPTBot"], ["ClaudeBot", "GPTBot", "meta-externalagent"]]),
    host=st.sampled_from(["blog.example", "BLOG.example:8443", "[2001:db8::1]", "[", "blog.example]", "a b", ""]),
    path=st.sampled_from(["/", "/open/a", "/open/closed.html", "/private/x", "/a.pdf", "/.gate/terms"])
    | st.text(max_size=20),
)
@example(lines=[], end="\n", terms=Terms(), ai_names=["GPTBot"], host="[", path="/")
def test_the_owners_robots_txt_of_any_content_merges_and_parses(
    lines: list[str], end: str, terms: Terms, ai_names: list[str], host: str, path: str
) -> None:
    upstream = end.join(lines)
    merged = merged_robots(upstream, terms, ai_names, "/.gate/terms")
    assert merged.startswith("# Added by gate") and merged.endswith("\n")
    if ai_names:  # the owner's Disallow lines bind the AI crawlers too
        assert all(line in merged for line in star_disallows(upstream))
    robots = RobotsFile(merged, Protego.parse(merged))
    for agent in ["GPTBot", "Mozilla/5.0", *ai_names]:  # the URL as compliance counting builds it, Host and all
        assert isinstance(robots.allows(agent, f"https://{host}{path}"), bool)


# --- access log lines -------------------------------------------------------------------------------------------------

IPS = ["203.0.113.7", "2001:db8::1", "fe80::1%eth0", "-", "crawler.example", "", 'a"b']
LOCAL_TIMES = [
    "28/Nov/2025:06:08:16 +0000", "31/Feb/2025:23:59:60 -1200", "29/Feb/2023:00:00:00 +1400",
    "01/Jan/1970:00:00:00 +9999", "31/Dec/9999:23:59:59 -9999", "28/nov/2025:06:08:16 +0000",
    "\u0662\u0668/Nov/2025:06:08:16 +0000", "28/Nov/2025:06:08:16", "",
]  # fmt: skip
ISO_TIMES = [
    "2025-11-28T06:08:16+00:00", "2025-11-28T06:08:16Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
    "2025-13-45T99:99:99", "2025-11-28T06:08:16.123456789+00:00", "2025", "--", "T", "2025-11-28T06:08:16+24:00",
]  # fmt: skip
REQUESTS = [
    "GET /essays/ HTTP/1.1", "GET / HTTP/2.0", "-", "GET /", "GET http://blog.example/ HTTP/1.1",
    r"GET /a\x22b HTTP/1.1", r"GET /\xff\xfe\xc3 HTTP/1.0", r"GET /\x HTTP/1.1", r"GET /\\ HTTP/1.1",
    r"\x16\x03\x01\x02\x00\x01", "GET  / HTTP/1.1", "GET /a b c HTTP/1.1", "\\",
]  # fmt: skip
STATUSES = ["200", "404", "999", "000", "\u0662\u0660\u0660", "20", "2000", "-"]
SIZES = ["0", "-", "1" * 40, "\u0663", "12a"]
QUOTED_TEXT = ["-", "Mozilla/5.0", r"a\"b", "a\\", r"\x", r"\xE2\x82\xAC", "\u00e9", ""]
ISO_FORMAT = LogFormat('$remote_addr [$time_iso8601] "$request" $status $bytes_sent "$http_user_agent" $host')


def field(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values) | st.text(max_size=12)


@st.composite
def log_lines(draw: st.DrawFn) -> bytes:
    """A combined, common or ISO-time line, its fields odd or not, then maybe cut, spliced with bytes, re-encoded."""
    ip, request_line, status, size = draw(field(IPS)), draw(field(REQUESTS)), draw(field(STATUSES)), draw(field(SIZES))
    referer, user_agent = draw(field(QUOTED_TEXT)), draw(field(QUOTED_TEXT))
    line = draw(st.sampled_from([
        f'{ip} - - [{draw(field(LOCAL_TIMES))}] "{request_line}" {status} {size} "{referer}" "{user_agent}"',
        f'{ip} - - [{draw(field(LOCAL_TIMES))}] "{request_line}" {status} {size}',
        f'{ip} [{draw(field(ISO_TIMES))}] "{request_line}" {status} {size} "{user_agent}" blog.example',
    ])).encode("utf-8", "surrogatepass")  # fmt: skip
    if draw(st.booleans()):
        index = draw(st.integers(0, len(line)))
        line = line[:index] + draw(st.binary(max_size=8)) + line[index + draw(st.integers(0, 4)) :]
    return line


@FUZZ
@given(line=log_lines() | st.binary(max_size=200))
def test_a_log_line_of_any_bytes_is_an_entry_or_counted_as_malformed(line: bytes) -> None:
    for formats in (DEFAULT_FORMATS, (ISO_FORMAT,)):
        entry = parse_line(line, formats, "access.log", 7)
        if isinstance(entry, LogEntry):
            assert EARLIEST <= entry.time <= time.time() + 86400 and 0 <= entry.status <= 999
            assert (entry.file, entry.line) == ("access.log", 7)
        else:
            assert isinstance(entry, Malformed) and entry.line == 7


@FUZZ
@given(
    pattern=st.lists(
        st.sampled_from(["$remote_addr", "$time_local", "$time_iso8601", "$request", "$status", "$bytes_sent",
                         "$http_user_agent", "$host", "$upstream_time", "$1", "$", '"', "[", "]", " ", "\\", "(?P<x>"])
        | st.text(max_size=4),
        max_size=12,
    ).map("".join),
    line=log_lines(),
)  # fmt: skip
def test_a_custom_log_format_compiles_or_is_refused_and_then_reads_any_line(pattern: str, line: bytes) -> None:
    try:
        custom = LogFormat(pattern)
    except ValueError:
        return
    assert isinstance(parse_line(line, (custom,), "access.log", 1), LogEntry | Malformed)


@pytest.mark.parametrize("pattern", [COMBINED, COMMON])
def test_the_built_in_formats_read_their_own_example_line(pattern: str) -> None:
    line = b'203.0.113.7 - - [28/Nov/2025:06:08:16 +0000] "GET /essays/ HTTP/1.1" 200 512 "-" "curl/8.5.0"'
    assert isinstance(parse_line(line, (LogFormat(pattern, more_fields=True),), "access.log", 1), LogEntry)


# --- Web Bot Auth headers ---------------------------------------------------------------------------------------------

SIGNER = Signer()
SIGNED = dict(SIGNER.sign(AUTHORITY, AGENT_URL))
COMPONENTS = [
    '"@authority"', '"@target-uri"', '"signature-agent"', '"signature-agent";key="agent1"', '"signature-agent";key=1',
    '"signature-agent";key="nope"', '"signature-agent";bs', '"@method"', '"@path"', '"@query"', '"@request-target"',
    '"@scheme"', '"@status"', '"@query-param";name="a"', '"@authority";req', '"user-agent"', '"User-Agent"',
    '"cookie";sf', '"x-missing"', '"host";key="a"', "1", "?1", ":AAA=:", "token", '"\\"', '""',
]  # fmt: skip
NUMBERS = [str(int(NOW)), str(int(NOW) + 300), str(int(NOW) - 10), str(int(NOW) + 90000), "0", "-1",
           "999999999999999", "1.5", '"1"', "?0"]  # fmt: skip
PARAMETERS = st.sampled_from(["created", "expires", "keyid", "alg", "nonce", "tag", "Created", "x"]).flatmap(
    lambda name: st.sampled_from(
        [*NUMBERS, f'"{SIGNER.keyid}"', '"ed25519"', '"rsa-pss-sha512"', '"web-bot-auth"', '"n"', "token", ":AA==:"]
    ).map(lambda value: f";{name}={value}")
)
signature_inputs = st.builds(
    lambda label, components, parameters, tag: f"{label}=({' '.join(components)}){''.join(parameters)}{tag}",
    st.sampled_from(["sig1", "sig2", "Sig1", "*", ""]),
    st.lists(st.sampled_from(COMPONENTS), max_size=5),
    st.lists(PARAMETERS, max_size=6),
    st.sampled_from([';tag="web-bot-auth"', ""]),
)
signatures = st.sampled_from([
    SIGNED["Signature"], "sig1=:AAAA:", "sig1=:" + "A" * 86 + "==:", "sig1=1", "sig1=(:AA==:)", "sig2=:AA==:",
    'sig1="x"', "sig1=:not base64:", "",
])  # fmt: skip
agents = st.sampled_from([
    SIGNED["Signature-Agent"], f'"{AGENT_URL}"', 'agent1=("a" "b")', "agent1=:AAA=:", 'agent1="http://x.example"',
    'agent1="https://[::1"', 'agent1="https://a..b"', 'agent1="https://x:99999"', 'agent1="https://u@x.example"',
    'agent1="https://' + "a" * 64 + '.example"', 'agent1="https://x.example/#f"', "agent1=1", "",
])  # fmt: skip
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=60)


@FUZZ
@given(
    inputs=st.just(SIGNED["Signature-Input"]) | signature_inputs | header_text,
    signature=signatures | header_text,
    agent=agents | header_text,
    extra=st.sampled_from([("cookie", "a=1"), ("x-missing", ""), ("host", "BLOG.example:443"), ("host", "[::1")]),
)
@example(inputs=SIGNED["Signature-Input"], signature="sig1=(:AA==:)", agent=SIGNED["Signature-Agent"], extra=("x", ""))
def test_web_bot_auth_headers_of_any_shape_read_as_a_signature_or_are_invalid(
    inputs: str, signature: str, agent: str, extra: tuple[str, str]
) -> None:
    facts = request(("signature-input", inputs), ("signature", signature), ("signature-agent", agent), extra)
    try:
        signed = read_signature(facts, NOW)
    except (Invalid, Unsupported):
        return
    if signed is not None:
        assert isinstance(signed, SignedRequest) and signed.directory.startswith("https://")
        with contextlib.suppress(Invalid):  # only the unmutated headers carry a signature that matches
            check_signature(signed, SIGNER.key.public_key())


def test_the_unmutated_signature_checks_out() -> None:
    signed = read_signature(request(*SIGNED.items()), NOW)
    assert signed is not None
    check_signature(signed, SIGNER.key.public_key())


@FUZZ
@given(agent=st.sampled_from(["https://", "https://x.example:0", "https://[v1.x]", "https://\u00e9.example",
                              "https://a.\u3002b", "https://x.example:443/", "HTTPS://X.EXAMPLE"])
       | st.text(max_size=40).map(lambda text: "https://" + text) | st.text(max_size=40))  # fmt: skip
def test_a_signature_agent_is_a_directory_url_or_invalid(agent: str) -> None:
    with contextlib.suppress(Invalid):
        assert directory_url(agent).startswith("https://")


X = b64url(hashlib.sha256(b"key").digest())
jwks = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["OKP", "EC", 1]),
        "crv": st.sampled_from(["Ed25519", "X25519", None]),
        "x": st.sampled_from([X, X + "==", X.replace("-", "+").replace("_", "/"), X[:-2], "", "!!", 5]),
        "kid": st.sampled_from(["", "x"]) | st.text(max_size=4),
        "nbf": st.sampled_from([0, NOW + 10, 10**400, -1.5, "soon", None]),
        "exp": st.sampled_from([NOW + 10, 0, 10**400, float("inf"), "later"]),
    },
)


@FUZZ
@given(
    body=st.lists(jwks, max_size=4).map(lambda keys: json.dumps({"keys": keys}).encode())
    | st.sampled_from([b'{"keys": {}}', b"[]", b"null", b'{"keys": [NaN]}', b'{"keys": [{"nbf": NaN}]}', b"\xff"])
    | json_values.map(lambda value: json.dumps(value).encode())
)
@example(body=b'{"keys":' + b"[" * 100_000)
def test_a_key_directory_of_any_content_gives_keys_or_is_unavailable(body: bytes) -> None:
    try:
        keys = parse_keys(body, NOW)
    except DirectoryUnavailable:
        return
    assert all(isinstance(kid, str) for kid in keys)


@FUZZ
@given(
    header=st.lists(
        st.sampled_from(
            [
                "max-age=600",
                "max-age=nan",
                "max-age=NaN",
                "max-age=inf",
                "max-age=-inf",
                "max-age=-1",
                "max-age=1e999",
                'max-age="30"',
                "max-age=",
                "no-store",
                "NO-CACHE",
                "public",
                "=",
                ",,",
            ]
        )
        | st.text(max_size=12),
        max_size=4,
    ).map(", ".join)
)
@example(header="max-age=nan")
def test_a_key_directorys_cache_lifetime_is_always_within_the_bounds(header: str) -> None:
    assert MIN_TTL <= cache_lifetime(header) <= MAX_TTL  # a signer cannot make gate fetch on every request


# --- request facts, front-proxy headers, languages, key files ---------------------------------------------------------


@FUZZ
@given(
    path=st.text(max_size=40),
    uri=st.sampled_from(["//evil.example/x", "/a?b=c#d", "http://x/y", "/%zz", "?", "#", "/[::1", "\\\\host"])
    | st.text(st.characters(max_codepoint=0xFF), max_size=40),
    method=st.text(st.characters(max_codepoint=0xFF), max_size=8),
)
def test_request_paths_and_front_proxy_uris_of_any_form_give_facts(path: str, uri: str, method: str) -> None:
    headers = [(b"x-original-uri", uri.encode("latin-1")), (b"x-original-method", method.encode("latin-1"))]
    facts = Facts.from_scope(scope(headers, path=path, raw_path=None), NO_PROXIES)
    assert facts.raw_path.isascii()  # re-encoded from the decoded path when the server does not pass it on
    front = TrustedProxies(())
    original = auth_request_facts(scope(headers), facts, front, False)
    assert original.path.startswith("/") and original.raw_path.startswith("/")


@FUZZ
@given(
    header=st.lists(
        st.sampled_from(["de-AT;q=0.5", "fr", "ja;q=nan", "es;q=1e999", "*;q=1", "en;q=-0", "de;q=0", ";;;", "q=1",
                         "fr;Q=0.9", "pt-BR", "\u00e9"])
        | st.text(max_size=10),
        max_size=8,
    ).map(",".join)
)  # fmt: skip
def test_an_accept_language_header_of_any_form_picks_a_shipped_language(header: str) -> None:
    assert pick_locale(header) in LOCALES.values()


@FUZZ
@given(text=st.sampled_from([b64url(b"k" * 32), b64url(b"k" * 31), "=" * 4, "a b"]) | st.text(max_size=60))
def test_a_key_file_line_decodes_or_is_refused_with_a_message(text: str) -> None:
    try:
        assert len(decode_key(text).material) >= 32
    except ValueError as error:
        assert str(error)
