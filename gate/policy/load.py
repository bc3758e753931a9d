"""Rules files (YAML) -> a compiled Policy. Every problem is collected and reported as `file:line: message`.

`--rules` names a file, or a directory whose `default.yaml` is the entry point. Paths inside a file are relative
to that file; `shipped:NAME` names a file of the rules shipped with gate. See docs/rules.md for the format.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from gate.challenge.pow import MAX_DIFFICULTY
from gate.fingerprint import Fingerprinter, JA4Settings, Proofs
from gate.fingerprint.agents import AGENT_CLASSES, AgentCatalog, load_agents
from gate.fingerprint.headers import SIGNAL_WEIGHTS
from gate.net import AddressRange, NetworkIndex, network_range
from gate.policy import conditions, shipped_rules
from gate.policy.engine import Policy
from gate.policy.model import (
    LIMIT_SUBJECTS,
    Action,
    Bans,
    Condition,
    Effect,
    Limit,
    LoadThresholds,
    Rule,
    Threshold,
)
from gate.policy.source import LineDict, LineList, Problem, RulesError, Section, read_yaml
from gate.terms.model import (
    DEFAULT_TEXT,
    DEFAULT_USES,
    USE_KEY,
    PathTerms,
    Terms,
    robots_pattern,
    terms_path_problem,
)
from gate.verify.signatures import Invalid, directory_url

SHIPPED_PREFIX = "shipped:"
ENTRY_FILE = "default.yaml"
RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400,
           "day": 86400}  # fmt: skip
MATCH_KEYS = (
    "agent_class", "agent", "user_agent", "path", "path_regex", "method", "host", "header", "query", "network",
    "cidr", "verified", "signal", "load", "signature", "signer", "any", "all", "not",
)  # fmt: skip
SIGNATURE_STATES = ("none", "verified", "invalid", "unverified")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LIMIT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_BAN_SECONDS = 30 * 86400
MAX_CONSENT_SECONDS = 365 * 86400
DEFAULT_HOLD = 120.0  # seconds the site stays busy after the last busy measurement


def entry_file(path: Path) -> Path:
    return path / ENTRY_FILE if path.is_dir() else path


@dataclass(frozen=True)
class _Verified:
    """One `verified:` entry as written, checked against the agents and networks once all are read."""

    agent: str
    proofs: Proofs
    file: str
    line: int


@dataclass
class _Collected:
    """Everything read from one file and its imports, before compiling."""

    rules: list[tuple[LineDict, str]] = field(default_factory=list)  # (rule mapping, file)
    agent_files: list[Path] = field(default_factory=list)
    networks: dict[str, list[AddressRange]] = field(default_factory=dict)
    ja4_header: str | None = None
    ja4_lists: dict[str, frozenset[str]] = field(default_factory=dict)
    ja4_source: tuple[str, int] | None = None  # where the first JA4 lists were defined
    weights: dict[str, tuple[float, str]] = field(default_factory=dict)  # name -> (weight, file:line)
    limits: dict[str, Limit] = field(default_factory=dict)
    guards: list[tuple[str, str]] | None = None  # (limit name, file:line) charged on every forwarded request
    bans: Bans | None = None
    load: LoadThresholds | None = None
    terms: Terms | None = None
    verified: list[_Verified] = field(default_factory=list)
    signers: set[str] = field(default_factory=set)  # key directories `signer:` conditions name
    thresholds: list[Threshold] | None = None
    default: tuple[Effect, str] | None = None
    files: list[Path] = field(default_factory=list)


def load_policy(path: Path) -> Policy:
    """Read, validate and compile the rules at `path`; RulesError lists every problem found."""
    problems: list[Problem] = []
    collected = _Collected()
    _read_file(entry_file(path).resolve(), collected, problems, stack=(), origin=None)
    _check_ja4(collected, problems)
    agents = load_agents(collected.agent_files, problems)
    collected.files += collected.agent_files
    catalog = AgentCatalog(agents)
    compiler = _Compiler(collected, catalog, problems)
    rules = compiler.rules()
    verifiers = _check_verified(collected, catalog, problems)
    if problems:
        raise RulesError(sorted(problems, key=lambda problem: (problem.file, problem.line)))
    ja4 = JA4Settings(collected.ja4_header, collected.ja4_lists) if collected.ja4_header else None
    weights = dict(SIGNAL_WEIGHTS) | {name: weight for name, (weight, _) in collected.weights.items()}
    default_effect, default_source = collected.default or (Effect(Action.ALLOW), "built-in")
    policy = Policy(
        rules=tuple(rules),
        thresholds=tuple(sorted(collected.thresholds or [], key=lambda threshold: -threshold.score)),
        default=Threshold("default", float("-inf"), default_effect, default_source),
        weights=weights,
        fingerprinter=Fingerprinter(catalog, NetworkIndex(collected.networks), ja4, verifiers),
        limits=dict(collected.limits),
        guards=tuple(collected.limits[name] for name, _ in collected.guards or []),
        files=tuple(dict.fromkeys(collected.files)),
        version=_version(collected.files),
        bans=collected.bans,
        load=collected.load,
        terms=collected.terms or Terms(),
        signers=frozenset(collected.signers).union(*(entry.proofs.signers for entry in collected.verified)),
    )
    _ = policy.index  # built now, not by the first request after a load or reload
    return policy


def _version(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in dict.fromkeys(files):
        digest.update(file.name.encode() + b"\0")
        with contextlib.suppress(OSError):  # a file that vanished since loading changes the version anyway
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _resolve(reference: str, base: Path) -> Path:
    if reference.startswith(SHIPPED_PREFIX):
        return shipped_rules() / reference[len(SHIPPED_PREFIX) :]
    return (base.parent / reference).resolve() if not Path(reference).is_absolute() else Path(reference)


def _expand(reference: str, base: Path) -> list[Path]:
    """The existing files a path or glob pattern names, relative to the file that names it; sorted."""
    try:
        path = _resolve(reference, base)
        if any(char in reference for char in "*?["):
            return sorted(Path(found) for found in glob.glob(str(path)) if _is_file(Path(found)))
    except ValueError:  # a NUL or a lone surrogate: no file can have that name
        return []
    return [path] if _is_file(path) else []


def _is_file(path: Path) -> bool:
    """Path.is_file, but False for a name the system refuses (too long, a NUL) rather than an error."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_file(
    path: Path,
    collected: _Collected,
    problems: list[Problem],
    stack: tuple[Path, ...],
    origin: tuple[str, int] | None,
) -> None:
    """Read one rules file and, after it, its imports. `origin` is the (file, line) of the import naming it."""
    file = str(path)
    where = origin or (file, 0)
    if path in stack:
        problems.append(Problem(*where, f"import cycle: {' -> '.join(map(str, (*stack, path)))}"))
        return
    if not _is_file(path):
        problems.append(Problem(*where, f"no such rules file: {path}"))
        return
    collected.files.append(path)
    known = len(problems)
    data = read_yaml(path, problems)
    if len(problems) > known:
        return  # unreadable or invalid YAML: that is the problem to report, not its consequences
    document = Section.of(LineDict() if data is None else data, file, 1, problems, "a rules file")
    if document is None:
        return
    version = document.get("version", int, 1)
    if version != 1:
        document.problem("version", f"version: {version} is not supported (this gate reads version 1)")
    for reference in document.strings("agents"):
        found = _expand(reference, path)
        if not found:
            document.problem("agents", f"agents: {reference!r}: no such file")
        collected.agent_files += found
    _read_networks(document, path, collected)
    _read_fingerprints(document, collected)
    _read_weights(document, collected)
    _read_limits(document, collected)
    _read_bans(document, collected)
    _read_load(document, collected)
    _read_terms(document, path, collected)
    _read_verified(document, collected)
    if document.has("guards") and collected.guards is None:
        guards_source = f"{file}:{document.line_of('guards')}"
        collected.guards = [(name, guards_source) for name in document.strings("guards")]
    _read_thresholds(document, collected)
    rules = document.raw("rules")
    if rules is not None:
        if isinstance(rules, LineList):
            collected.rules += [(rule, file) for rule in rules]
            for rule, line in zip(rules, rules.item_lines, strict=True):
                if not isinstance(rule, LineDict):
                    problems.append(Problem(file, line, "each rule must be a mapping"))
        else:
            document.problem("rules", "rules: expected a list of rules")
    imports = document.strings("import")
    document.finish()
    import_line = (file, document.line_of("import"))
    for reference in imports:
        found = _expand(reference, path)
        if not found:
            problems.append(Problem(*import_line, f"import: {reference!r}: no such rules file"))
        for imported in found:
            _read_file(imported.resolve(), collected, problems, (*stack, path), origin=import_line)


def _read_networks(document: Section, path: Path, collected: _Collected) -> None:
    """`networks:` maps a name to a file or glob of CIDR files, a list of CIDRs, or {files: [...], cidrs: [...]}."""
    section = document.child("networks")
    if section is None:
        return
    for name in list(section.data):
        value = section.raw(name)
        if name in collected.networks:
            continue  # the importing file's list wins
        files: list[str] = []
        cidrs: list[tuple[str, str, int]] = []  # (cidr text, file, line)
        if isinstance(value, str):
            files = [value]
        elif isinstance(value, LineList):
            cidrs = [(str(item), section.file, line) for item, line in zip(value, value.item_lines, strict=True)]
        elif isinstance(value, LineDict):
            body = Section(value, section.file, section.problems, f"network list {name!r}")
            files = body.strings("files")
            listed = body.raw("cidrs")
            if isinstance(listed, LineList):
                cidrs = [(str(item), body.file, line) for item, line in zip(listed, listed.item_lines, strict=True)]
            elif listed is not None:
                body.problem("cidrs", f"networks: {name}: cidrs: expected a list of CIDRs")
            body.finish()
        else:
            section.problem(name, f"networks: {name}: expected a file name, a list of CIDRs, or files/cidrs")
        for reference in files:
            found = _expand(reference, path)
            if not found:
                section.problem(name, f"networks: {name}: {reference!r}: no such file")
            for list_file in found:
                collected.files.append(list_file)
                cidrs += _read_network_file(list_file, document.problems)
        parsed = []
        for text, file, entry_line in cidrs:
            try:
                parsed.append(network_range(text))
            except ValueError as error:
                document.problems.append(Problem(file, entry_line, f"networks: {name}: {error}"))
        collected.networks[name] = parsed
    section.finish()


def _read_network_file(path: Path, problems: list[Problem]) -> list[tuple[str, str, int]]:
    """A text file of CIDRs, one per line; `#` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(str(path), 0, f"cannot read: {error}"))
        return []
    entries = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            entries.append((text, str(path), number))
    return entries


def _read_fingerprints(document: Section, collected: _Collected) -> None:
    section = document.child("fingerprints")
    if section is None:
        return
    header = section.get("ja4_header", str, "")
    if header:
        collected.ja4_header = collected.ja4_header or header.lower()
    ja4 = section.child("ja4", "fingerprints.ja4")
    section.finish()
    if ja4 is None:
        return
    collected.ja4_source = collected.ja4_source or (section.file, section.line_of("ja4"))
    for name in list(ja4.data):
        collected.ja4_lists.setdefault(name, frozenset(ja4.strings(name)))
    ja4.finish()


def _check_ja4(collected: _Collected, problems: list[Problem]) -> None:
    """Once every file is read: JA4 lists need the header, and weights may only name lists that exist."""
    if collected.ja4_lists and not collected.ja4_header and collected.ja4_source:
        message = "fingerprints: ja4 lists need ja4_header (the header your front proxy sets)"
        problems.append(Problem(*collected.ja4_source, message))
    for name, (_, source) in collected.weights.items():
        if name.startswith("ja4:") and name[4:] not in collected.ja4_lists:
            file, _, line = source.rpartition(":")
            problems.append(
                Problem(file, int(line), f"signal_weights: unknown signal {name!r} (no JA4 list {name[4:]!r})")
            )


def _read_weights(document: Section, collected: _Collected) -> None:
    section = document.child("signal_weights")
    if section is None:
        return
    for name in list(section.data):
        weight = section.get(name, float, 0.0)
        if name not in SIGNAL_WEIGHTS and not name.startswith("ja4:"):
            section.problem(name, f"signal_weights: unknown signal {name!r} (known: {', '.join(SIGNAL_WEIGHTS)})")
        collected.weights.setdefault(name, (weight, f"{section.file}:{section.line_of(name)}"))
    section.finish()


def parse_rate(value: Any) -> tuple[int, float]:
    match = RATE.match(str(value))
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{value!r}: expected a rate like 120/min (per s, min, h or day)")
    return int(match.group(1)), float(PERIODS[match.group(2)])


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or text like 800ms, 30s, 10m, 1h, 1d."""
    match = DURATION.match(str(value)) if not isinstance(value, bool) else None
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r}: expected a duration like 30s, 10m, 1h or 800ms")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def _read_bans(document: Section, collected: _Collected) -> None:
    """`bans: {after: N, window: 10m, duration: 1h}`; the first file that has the section decides."""
    section = document.child("bans")
    if section is None:
        return
    after = section.get("after", int, 0)
    window = section.parsed("window", parse_duration)
    duration = section.parsed("duration", parse_duration)
    if after < 1:
        section.problem("after" if section.has("after") else None, "bans: after must be a whole number of at least 1")
    for key, value in (("window", window), ("duration", duration)):
        if not section.has(key):
            section.problem(None, f"bans: needs a {key}, like {key}: 10m")
        elif value is not None and value > MAX_BAN_SECONDS:
            section.problem(key, f"bans: {key} is at most 30 days")
    section.finish()
    if collected.bans is None and after >= 1 and window and duration and max(window, duration) <= MAX_BAN_SECONDS:
        collected.bans = Bans(after, window, duration)


def _read_load(document: Section, collected: _Collected) -> None:
    """`load: {requests: 300/s, upstream_p90: 1s, hold: 2m}`: when the site counts as busy."""
    section = document.child("load")
    if section is None:
        return
    requests = section.parsed("requests", parse_rate)
    upstream_p90 = section.parsed("upstream_p90", parse_duration)
    hold = section.parsed("hold", parse_duration)
    if not section.has("requests") and not section.has("upstream_p90"):
        section.problem(None, "load: needs requests (like 300/s), upstream_p90 (like 1s), or both")
    section.finish()
    if collected.load is None:
        collected.load = LoadThresholds(
            requests[0] / requests[1] if requests else None, upstream_p90, hold if hold is not None else DEFAULT_HOLD
        )


def _read_terms(document: Section, path: Path, collected: _Collected) -> None:
    """The owner's terms (docs/terms.md); the first file that has the section decides."""
    section = document.child("terms")
    if section is None:
        return
    version = section.parsed("version", parse_version) or "1"
    contact = section.get("contact", str, "")
    uses = _read_uses(section, "uses") if section.has("uses") else dict(DEFAULT_USES)
    paths = []
    entries = section.raw("paths")
    if entries is not None and not isinstance(entries, LineList):
        section.problem("paths", "paths: expected a list of {path, uses, ...}")
    for entry, line in zip(entries or [], getattr(entries, "item_lines", []), strict=False):
        body = Section.of(entry, section.file, line, section.problems, "a terms path")
        if body is None:
            continue
        glob = body.get("path", str, "")
        problem = terms_path_problem(glob)
        if problem:
            body.problem("path" if body.has("path") else None, problem)
        path_uses = _read_uses(body, "uses")
        paths.append(
            PathTerms(
                glob,
                re.compile(glob_to_regex(glob)),
                path_uses,
                body.get("license", str, ""),
                body.get("license_url", str, ""),
                body.get("attribution", bool, False),
            )
        )
        body.finish()
    rate = section.parsed("crawl_rate", parse_rate) or (60, 60.0)
    lifetime = section.parsed("consent_lifetime", parse_duration) or 30 * 86400.0
    if lifetime > MAX_CONSENT_SECONDS:
        section.problem("consent_lifetime", "consent_lifetime: at most 365 days")
    text = section.get("text", str, "")
    text_file = section.get("text_file", str, "")
    if text_file:
        try:
            text = _resolve(text_file, path).read_text(encoding="utf-8")
        except (OSError, ValueError) as error:  # ValueError: undecodable text, or a name no file can have
            section.problem("text_file", f"text_file: cannot read {text_file!r}: {error}")
    for key, value, limit in (("version", version, 64), ("contact", contact, 300)):
        if len(value) > limit or any(ord(character) < 0x20 for character in value):
            section.problem(key, f"{key}: one line of at most {limit} characters")
    license_document = section.get("license_document", str, "")
    if license_document and not re.fullmatch(r"https?://[!-~]+", license_document):
        section.problem("license_document", "license_document: expected an http(s) URL")
    deny_after = section.get("deny_robots_violators_after", int, 0)
    if section.has("deny_robots_violators_after") and deny_after < 1:
        section.problem("deny_robots_violators_after", "deny_robots_violators_after: a whole number of at least 1")
    source = f"{section.file}:{section.line}"
    section.finish()
    if collected.terms is None:
        collected.terms = Terms(
            version=version,
            contact=contact,
            uses=uses,
            paths=tuple(sorted(paths, key=lambda entry: -len(robots_pattern(entry.path)))),  # most specific first
            crawl_rate=rate[0],
            crawl_period=rate[1],
            consent_lifetime=min(lifetime, MAX_CONSENT_SECONDS),
            license_document=license_document,
            robots_deny_after=deny_after if deny_after >= 1 else None,
            text=text or DEFAULT_TEXT,
            source=source,
        )


def _read_verified(document: Section, collected: _Collected) -> None:
    """`verified: {AGENT: [network list, ...]}`, or `{AGENT: {networks: [...], dns: [...], signature: [...]}}`:
    what proves an agent is who it says. An importing file's entry for an agent wins over an imported one's."""
    section = document.child("verified")
    if section is None:
        return
    known = {entry.agent.lower() for entry in collected.verified}
    for agent in list(section.data):
        proofs = _read_proofs(section, agent)
        if proofs is not None and agent.lower() not in known:
            collected.verified.append(_Verified(agent, proofs, section.file, section.line_of(agent)))
    section.finish()


def _read_proofs(section: Section, agent: str) -> Proofs | None:
    if not isinstance(section.data.get(agent), LineDict):
        networks = section.strings(agent)
        if not networks:
            section.problem(agent, f"verified: {agent}: name the network lists that prove it")
            return None
        return Proofs(frozenset(networks))
    entry = section.child(agent, f"verified: {agent}")
    if entry is None:
        return None
    proofs = Proofs(
        frozenset(entry.strings("networks")),
        tuple(_checked(entry, "dns", parse_domain)),
        tuple(_checked(entry, "signature", parse_signer)),
    )
    entry.finish()
    if not (proofs.networks or proofs.domains or proofs.signers):
        section.problem(agent, f"verified: {agent}: give networks, dns or signature")
        return None
    return proofs


def _checked(section: Section, key: str, parse: Callable[[str], str]) -> list[str]:
    values = []
    for text in section.strings(key):
        try:
            values.append(parse(text))
        except ValueError as error:
            section.problem(key, f"{section.what}: {key}: {error}")
    return values


def parse_domain(text: str) -> str:
    """A domain that reverse DNS names must be or end in: `googlebot.com` (a leading dot is dropped)."""
    domain = text.strip().lower().strip(".")
    labels = domain.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a domain name like googlebot.com")
    return domain


def parse_signer(text: str) -> str:
    """A Web Bot Auth signer as the URL of its key directory: `chatgpt.com` and `https://chatgpt.com` name the
    origin's well-known directory, a longer URL the directory itself (as Signature-Agent does)."""
    url = text.strip()
    try:
        return directory_url(url if "://" in url else "https://" + url)
    except Invalid:
        raise ValueError(f"{text!r} is not an https origin like chatgpt.com or a key directory URL") from None


def _check_verified(collected: _Collected, catalog: AgentCatalog, problems: list[Problem]) -> dict[str, Proofs]:
    """Agent name -> its proofs, once the agent lists and networks are all read."""
    verifiers = {}
    for entry in collected.verified:
        found = catalog.by_name.get(entry.agent.lower())
        if found is None:
            problems.append(Problem(entry.file, entry.line, f"verified: {entry.agent!r} is not in the agent lists"))
            continue
        unknown = sorted(name for name in entry.proofs.networks if name not in collected.networks)
        if unknown:
            problems.append(
                Problem(entry.file, entry.line, f"verified: {found.name}: {', '.join(unknown)} is not in networks:")
            )
        verifiers[found.name] = entry.proofs
    return verifiers


def parse_version(value: Any) -> str:
    """A terms version: any scalar (a date, a number, a word), read as text."""
    if isinstance(value, float):
        raise ValueError(f"{value!r}: quote it (YAML reads 1.10 as the number 1.1)")
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError("expected a word, number or date, like 2026-11-28")
    return str(value)


def _read_uses(section: Section, key: str) -> dict[str, str]:
    """`uses: {train-ai: n, search: y}`: aipref keys, each y or n (true and false are read as y and n)."""
    body = Section.of(section.raw(key), section.file, section.line_of(key), section.problems, key)
    if body is None:
        return {}
    uses = {}
    for use in list(body.data):
        value = body.raw(use)
        text = {True: "y", False: "n"}.get(value, value) if isinstance(value, bool) else value
        if not USE_KEY.match(use):
            body.problem(use, f"{key}: {use!r} is not a usage key (lower-case letters, digits and -)")
        elif text not in ("y", "n"):
            body.problem(use, f"{key}: {use}: expected y or n")
        else:
            uses[use] = text
    body.finish()
    return uses


def _read_limits(document: Section, collected: _Collected) -> None:
    limits = document.child("limits")
    if limits is None:
        return
    for name in list(limits.data):
        section = Section.of(limits.raw(name), limits.file, limits.line_of(name), limits.problems, f"limit {name!r}")
        if section is None:
            continue
        rate = section.parsed("rate", parse_rate)
        burst = section.get("burst", int, 0)
        per = tuple(section.strings("per")) or ("ip",)
        browsers = section.get("browsers", str, "challenge")
        if not section.has("rate"):
            section.problem(None, f"limit {name!r}: needs a rate, like rate: 120/min")
        if not LIMIT_NAME.match(name):
            section.problem(None, f"limit {name!r}: names are letters, digits, '.', '_' and '-' (they name headers)")
        for subject in per:
            if subject not in LIMIT_SUBJECTS:
                section.problem("per", f"per: {subject!r} is not one of {', '.join(LIMIT_SUBJECTS)}")
        if browsers not in ("challenge", "refuse"):
            section.problem("browsers", f"browsers: {browsers!r}: expected challenge or refuse")
        section.finish()
        if rate is not None and name not in collected.limits:
            collected.limits[name] = Limit(name, rate[0], rate[1], max(burst, 1), per, browsers)
    limits.finish()


def _read_effect(section: Section, allowed: tuple[Action, ...]) -> Effect | None:
    """The action of a rule, threshold or default, with its parameters; None when invalid."""
    text = section.get("action", str, "")
    try:
        action = Action(text)
    except ValueError:
        for key in ("difficulty", "limit", "weight", "status"):
            section.raw(key)  # judged with the action; an invalid action is the one problem to report
        choices = ", ".join(a.value for a in allowed)
        shown = f"{text!r} is not an action" if text else "missing"
        section.problem("action" if text else None, f"action: {shown} (expected one of {choices})")
        return None
    if action not in allowed:
        section.problem("action", f"action: {action.value} is not allowed here")
        return None
    difficulty = section.get("difficulty", int, 0) if action is Action.CHALLENGE and section.has("difficulty") else None
    if difficulty is not None and not 0 <= difficulty <= MAX_DIFFICULTY:
        section.problem("difficulty", f"difficulty: {difficulty} is outside 0-{MAX_DIFFICULTY} leading zero bits")
    limit = section.get("limit", str, "") if action is Action.THROTTLE else None
    weight = section.get("weight", float, 0.0) if action is Action.WEIGH else 0.0
    status = section.get("status", int, 0) if section.has("status") else None
    if status is not None and action is Action.WEIGH:
        section.problem("status", "status: a weigh rule sends no response")
    elif status is not None and not 200 <= status <= 599:
        section.problem("status", f"status: {status} is not an HTTP status code (200-599)")
    for key, needed_by in (("difficulty", Action.CHALLENGE), ("limit", Action.THROTTLE), ("weight", Action.WEIGH)):
        if section.has(key) and action is not needed_by:
            section.raw(key)
            section.problem(key, f"{key}: only for action {needed_by.value}")
    if action is Action.THROTTLE and not limit:
        section.problem(None, "action throttle needs a limit (a name from limits:)")
    if action is Action.WEIGH and not section.has("weight"):
        section.problem(None, "action weigh needs a weight")
    return Effect(action, difficulty, limit or None, status, weight)


TERMINAL = (Action.ALLOW, Action.DENY, Action.CHALLENGE, Action.TERMS, Action.THROTTLE)


def _read_thresholds(document: Section, collected: _Collected) -> None:
    value = document.raw("thresholds")
    default = document.raw("default")
    if value is not None and collected.thresholds is None:
        collected.thresholds = []
        if not isinstance(value, LineList):
            document.problem("thresholds", "thresholds: expected a list")
        else:
            for item, line in zip(value, value.item_lines, strict=True):
                section = Section.of(item, document.file, line, document.problems, "a threshold")
                if section is None:
                    continue
                name = section.get("name", str, "")
                score = section.get("score", float, 0.0)
                if not name or not section.has("score"):
                    section.problem(None, "a threshold needs a name and a score")
                effect = _read_effect(section, TERMINAL)
                section.finish()
                if effect is not None:
                    collected.thresholds.append(Threshold(name, score, effect, f"{document.file}:{line}"))
    if default is not None and collected.default is None:
        section = Section.of(default, document.file, document.line_of("default"), document.problems, "default")
        if section is not None:
            effect = _read_effect(section, TERMINAL)
            section.finish()
            if effect is not None:
                collected.default = (effect, f"{document.file}:{section.line}")


class _Compiler:
    """Rule mappings -> compiled Rules, checking every reference (agents, networks, limits, signals)."""

    def __init__(self, collected: _Collected, catalog: AgentCatalog, problems: list[Problem]) -> None:
        self.collected = collected
        self.catalog = catalog
        self.problems = problems

    def rules(self) -> list[Rule]:
        compiled: list[Rule] = []
        names: dict[str, str] = {}
        for data, file in self.collected.rules:
            if not isinstance(data, LineDict):
                continue
            section = Section(data, file, self.problems, "a rule")
            name = data.get("name")
            if isinstance(name, str) and name:
                if name in names:
                    section.problem("name", f"rule name {name!r} is already used at {names[name]}")
                names.setdefault(name, f"{file}:{data.line}")
            rule = self.rule(section)
            section.finish()
            if rule is not None:
                compiled.append(rule)
        for threshold in self.collected.thresholds or []:
            self.check_limit(threshold.effect, threshold.source)
        if self.collected.default is not None:
            self.check_limit(*self.collected.default)
        for name, source in self.collected.guards or []:
            self.check_limit(Effect(Action.THROTTLE, limit=name), source)
        return compiled

    def rule(self, section: Section) -> Rule | None:
        name = section.get("name", str, "")
        if not name:
            section.problem(None, "a rule needs a name")
        description = section.get("description", str, "")
        match = section.raw("match")
        conditions = self.match(match, section, section.line_of("match")) if match is not None else []
        effect = _read_effect(section, tuple(Action))
        source = f"{section.file}:{section.line}"
        if effect is None or not name:
            return None
        self.check_limit(effect, source)
        return Rule(name, tuple(conditions), effect, source, description)

    def check_limit(self, effect: Effect, source: str) -> None:
        if effect.limit and effect.limit not in self.collected.limits:
            file, _, line = source.rpartition(":")
            known = ", ".join(self.collected.limits) or "none defined"
            self.problems.append(Problem(file, int(line), f"limit {effect.limit!r} is not in limits: ({known})"))

    def match(self, value: Any, parent: Section, line: int) -> list[Condition]:
        section = Section.of(value, parent.file, line, self.problems, "match")
        if section is None:
            return []
        conditions = []
        for key in MATCH_KEYS:
            if section.has(key):
                condition = self.condition(key, section)
                if condition is not None:
                    conditions.append(condition)
        section.finish()
        return conditions

    def condition(self, key: str, section: Section) -> Condition | None:
        if key in ("any", "all"):
            groups = section.raw(key)
            if not isinstance(groups, LineList) or not groups:
                section.problem(key, f"{key}: expected a non-empty list of match mappings")
                return None
            compiled = [self.match(group, section, line) for group, line in zip(groups, groups.item_lines, strict=True)]
            return _combine(key, compiled)
        if key == "not":
            inner = self.match(section.raw(key), section, section.line_of(key))
            return Condition("not (" + "; ".join(c.describe for c in inner) + ")", conditions.none_of(inner))
        if key == "verified":
            wanted = section.get(key, bool, True)
            return Condition(f"verified is {str(wanted).lower()}", conditions.verified_is(wanted))
        if key in ("header", "query"):
            return self.mapping_condition(key, section)
        if key == "load":
            return self.load_condition(section)
        values = section.strings(key)
        if not values:
            section.problem(key, f"{key}: needs at least one value")
            return None
        return self.list_condition(key, values, section)

    def list_condition(self, key: str, values: list[str], section: Section) -> Condition | None:
        shown = ", ".join(values)
        if key == "agent_class":
            unknown = [value for value in values if value not in AGENT_CLASSES]
            if unknown:
                section.problem(
                    key, f"agent_class: unknown class {', '.join(unknown)} (known: {', '.join(sorted(AGENT_CLASSES))})"
                )
            classes = frozenset(values)
            return Condition(f"agent_class is {shown}", conditions.agent_class_in(classes), ("agent_class", classes))
        if key == "agent":
            unknown = [value for value in values if value.lower() not in self.catalog.by_name]
            if unknown:
                section.problem(key, f"agent: {', '.join(unknown)} is not in the agent lists")
            names = frozenset(
                self.catalog.by_name[value.lower()].name for value in values if value.lower() in self.catalog.by_name
            )
            return Condition(f"agent is {shown}", conditions.agent_in(names), ("agent", names))
        if key == "method":
            methods = frozenset(value.upper() for value in values)
            return Condition(f"method is {shown}", conditions.method_in(methods), ("method", methods))
        if key == "path":
            # DOTALL: a decoded path can hold a newline (%0A), which `**` must cross like any other character
            path_pattern = re.compile("|".join(glob_to_regex(value) for value in values), re.DOTALL)
            segments = [literal_first_segment(value) for value in values]
            return Condition(
                f"path matches {shown}",
                conditions.path_matches(path_pattern),
                None if None in segments else ("path_segment", frozenset(segments)),
            )
        if key == "host":
            host_pattern = re.compile(
                "|".join(glob_to_regex(value.lower(), separator=".") for value in values), re.DOTALL
            )
            return Condition(f"host matches {shown}", conditions.host_matches(host_pattern))
        if key in ("user_agent", "path_regex"):
            pattern = self.regex(values, section, key)
            if pattern is None:
                return None
            if key == "user_agent":
                return Condition(
                    f"user_agent matches {shown}",
                    conditions.user_agent_search(pattern),
                    ("user_agent", pattern.pattern),
                )
            return Condition(f"path matches regex {shown}", conditions.path_search(pattern))
        if key == "network":
            unknown = [value for value in values if value not in self.collected.networks]
            if unknown:
                section.problem(key, f"network: {', '.join(unknown)} is not in networks:")
            lists = frozenset(values)
            return Condition(f"client network is {shown}", conditions.network_in(lists))
        if key == "cidr":
            try:
                ranges = [network_range(value) for value in values]
            except ValueError as error:
                section.problem(key, f"cidr: {error}")
                return None
            index = NetworkIndex({"cidr": ranges})
            return Condition(f"client address in {shown}", conditions.address_in(index), ("cidr", ranges))
        if key == "signature":
            unknown = [value for value in values if value not in SIGNATURE_STATES]
            if unknown:
                section.problem(key, f"signature: {', '.join(unknown)}: expected {', '.join(SIGNATURE_STATES)}")
            states = frozenset(values)
            return Condition(f"signature is {shown}", conditions.signature_in(states))
        if key == "signer":
            signers = frozenset(_checked(section, key, parse_signer))
            self.collected.signers |= signers
            return Condition(f"signed by {shown}", conditions.signer_in(signers))
        if key == "signal":
            unknown = [
                value
                for value in values
                if value not in SIGNAL_WEIGHTS
                and not (value.startswith("ja4:") and value[4:] in self.collected.ja4_lists)
            ]
            if unknown:
                section.problem(key, f"signal: unknown signal {', '.join(unknown)}")
            wanted = frozenset(values)
            return Condition(f"signal {shown}", conditions.signal_in(wanted), ("signal", wanted))
        raise AssertionError(key)  # MATCH_KEYS and the branches above list the same keys

    def load_condition(self, section: Section) -> Condition | None:
        """`load: busy` or `load: calm`, as the policy's `load:` thresholds define busy."""
        wanted = section.get("load", str, "")
        if wanted not in ("busy", "calm"):
            section.problem("load", f"load: {wanted!r}: expected busy or calm")
            return None
        if self.collected.load is None:
            section.problem("load", "load: needs a load: section saying when the site is busy (requests, upstream_p90)")
        busy = wanted == "busy"
        return Condition(f"site is {wanted}", conditions.site_busy_is(busy))

    def mapping_condition(self, key: str, section: Section) -> Condition | None:
        """`header:` / `query:` as name -> true (present), false (absent) or a regex the value must match."""
        body = Section.of(section.raw(key), section.file, section.line_of(key), self.problems, key)
        if body is None:
            return None
        named: list[tuple[str, str, conditions.ValueTest]] = []  # (lookup name, description, test)
        for name in list(body.data):
            value = body.raw(name)
            lookup_name = name.lower() if key == "header" else name
            if isinstance(value, bool):
                named.append(
                    (lookup_name, f"{key} {name} {'present' if value else 'absent'}", conditions.presence(value))
                )
            elif isinstance(value, str):
                pattern = self.regex([value], body, name)
                if pattern is not None:
                    named.append((lookup_name, f"{key} {name} matches {value}", conditions.value_search(pattern)))
            else:
                body.problem(name, f"{key}: {name}: expected true, false or a regex")
        body.finish()
        lookup = conditions.header_value if key == "header" else conditions.query_value
        # A header that must be present (true, or a regex its value must match) files the rule under its name.
        required = [name for name, describe, _ in named if not describe.endswith(" absent")]
        return Condition(
            "; ".join(describe for _, describe, _ in named),
            conditions.values_hold(named, lookup),
            ("header", frozenset(required[:1])) if key == "header" and required else None,
        )

    def regex(self, values: list[str], section: Section, key: str) -> Any:
        """Operator regexes compile with RE2: linear time whatever the input, so no rule can be a DoS."""
        try:
            return re2.compile("|".join(f"(?:{value})" for value in values))
        except re2.error as error:
            section.problem(key, f"{key}: invalid regex: {error}")
            return None


def _combine(key: str, groups: list[list[Condition]]) -> Condition:
    shown = f" {key} ".join("(" + "; ".join(c.describe for c in group) + ")" for group in groups)
    if key == "any":
        return Condition(shown, conditions.any_group(groups))
    needed = [condition.key for group in groups for condition in group if condition.key is not None]
    return Condition(shown, conditions.every_group(groups), needed[0] if needed else None)


def literal_first_segment(pattern: str) -> str | None:
    """The first segment every path a glob matches begins with ("blog" for /blog/**), or None when it is not literal."""
    if not pattern.startswith("/"):
        return None
    segment = pattern[1:].partition("/")[0]
    return None if "*" in segment or "?" in segment else segment


def glob_to_regex(pattern: str, separator: str = "/") -> str:
    """`**` crosses separators, `*` and `?` do not; everything else is literal."""
    parts = []
    index = 0
    not_separator = f"[^{re.escape(separator)}]"
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append(not_separator + "*")
            index += 1
        elif pattern[index] == "?":
            parts.append(not_separator)
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return "(?:" + "".join(parts) + ")"
