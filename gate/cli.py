"""The `gate` command: serve, check, audit, rules lint, keygen, bans, consent, ranges."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import gate
from gate.config import SERVE_OPTIONS, ConfigError, parse_resolver, settings_from
from gate.keys import write_key_file

if TYPE_CHECKING:
    from gate.verify import Verifier


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit 2: the same shape as an invalid value."""
        self.exit(2, f"gate: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    parser = Parser(prog="gate", description="Self-hosted crawler-defense reverse proxy.")
    parser.add_argument("--version", action="version", version=f"gate {gate.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="run the proxy", description="Run gate in front of an upstream.")
    for option in SERVE_OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        if option.is_switch:
            serve.add_argument(option.flag, dest=option.dest, action="store_true", default=None, help=help_text)
        elif option.parse_many is not None:
            serve.add_argument(option.flag, dest=option.dest, action="append", metavar=option.metavar, help=help_text)
        else:
            serve.add_argument(option.flag, dest=option.dest, metavar=option.metavar, help=help_text)

    check = commands.add_parser(
        "check",
        help="explain the decision for a request",
        description="Explain what the policy decides for one request (flags) or many (JSON lines on stdin).",
    )
    check.add_argument("--url", help="the request's absolute URL, e.g. https://example.org/essays/")
    check.add_argument("--method", default="GET")
    check.add_argument("--ip", default="127.0.0.1", help="the client address")
    check.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="repeatable")
    check.add_argument("--jsonl", metavar="-", help="read requests as JSON lines from standard input ('-')")
    check.add_argument("--resolver", metavar="IP[:PORT]", help="DNS server for reverse DNS (default: the system's)")
    check.add_argument(
        "--offline", action="store_true", help="no reverse DNS or key directory fetches: such claims stay unconfirmed"
    )
    check.add_argument("--rules", type=Path, help="rules file or directory (default: GATE_RULES or the shipped rules)")
    check.add_argument("--busy", action="store_true", help="decide as if the site were busy (rules with load: busy)")

    rules = commands.add_parser("rules", help="work with rules files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, parser_class=Parser)
    lint = rules_commands.add_parser("lint", help="validate rules", description="Validate rules; exit 1 on error.")
    lint.add_argument("path", nargs="?", type=Path, help="rules file or directory (default: the shipped rules)")

    keygen = commands.add_parser(
        "keygen", help="write a secret key file", description="Write a new secret key file (mode 0600)."
    )
    keygen.add_argument("path", type=Path, help="key file to write (what --secret-file reads)")
    replace = keygen.add_mutually_exclusive_group()
    replace.add_argument("--rotate", action="store_true", help="new signing key; keep the current one valid")
    replace.add_argument("--force", action="store_true", help="overwrite an existing file")

    admin = Parser(add_help=False)  # --admin, before or after the subcommand
    admin.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help="gate's metrics listener (default: GATE_METRICS_BIND or 127.0.0.1:9464)",
    )
    bans = commands.add_parser(
        "bans",
        parents=[admin],
        help="list or lift bans",
        description="List or lift the bans of a running gate (through its metrics listener, from this machine).",
    )
    bans_commands = bans.add_subparsers(dest="bans_command", required=True, parser_class=Parser)
    listing = bans_commands.add_parser("list", help="the banned addresses, longest ban first", parents=[admin])
    listing.add_argument("--json", action="store_true", help="print the JSON gate answers")
    remove = bans_commands.add_parser(
        "remove", help="lift the ban of an address (and forget its refusals)", parents=[admin]
    )
    remove.add_argument("address", help="the banned IP address")

    ranges = commands.add_parser("ranges", help="update the crawler address lists operators publish")
    ranges_commands = ranges.add_subparsers(dest="ranges_command", required=True, parser_class=Parser)
    update = ranges_commands.add_parser(
        "update",
        help="fetch, check and write the lists that verify crawlers",
        description="Fetch the address lists crawler operators publish, check each, and write it atomically; a "
        "running gate reloads changed files by itself. A list that fails a check is not written.",
    )
    update.add_argument("names", nargs="*", metavar="NAME", help="only these lists (default: all)")
    update.add_argument("--dir", type=Path, help="where the lists are (default: the shipped rules' networks/verified/)")
    update.add_argument(
        "--source", action="append", default=[], metavar="NAME=URL", help="fetch NAME from URL instead (a mirror)"
    )

    audit = commands.add_parser(
        "audit",
        help="what gate would have done with a site's access logs",
        description="Run access log lines (nginx/Apache combined or common, plain or gzip) through the policy, the "
        "limits and bans as gate serve would, on the log's own clock, and report what it would have done.",
    )
    audit.add_argument("logs", nargs="+", type=Path, metavar="LOGFILE")
    audit.add_argument("--rules", type=Path, help="rules file or directory (default: GATE_RULES or the shipped rules)")
    audit.add_argument(
        "--log-format",
        metavar="PATTERN",
        help="nginx log_format of the lines, e.g. '$remote_addr [$time_local] \"$request\" $status ...' "
        "(default: combined, then common)",
    )
    audit.add_argument("--robots-txt", type=Path, metavar="FILE", help="the site's own robots.txt, merged as gate does")
    audit.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH ('-' for standard output)")
    audit.add_argument("--html", type=Path, metavar="PATH", help="write the report as an HTML page with charts")
    audit.add_argument(
        "--resolve", action="store_true", help="check claimed crawlers by reverse DNS (slower: a lookup per address)"
    )
    audit.add_argument("--resolver", metavar="IP[:PORT]", help="DNS server for --resolve (default: the system's)")

    consent = commands.add_parser(
        "consent",
        parents=[admin],
        help="list or revoke crawlers' consents to the terms",
        description="List the terms acceptances a running gate has recorded, or revoke one (from this machine).",
    )
    consent_commands = consent.add_subparsers(dest="consent_command", required=True, parser_class=Parser)
    consent_list = consent_commands.add_parser(
        "list", help="every acceptance: agent, purpose, terms, when, from where", parents=[admin]
    )
    consent_list.add_argument("--json", action="store_true", help="print the JSON gate answers")
    revoke = consent_commands.add_parser("revoke", help="refuse a consent token from now on", parents=[admin])
    revoke.add_argument("id", help="the consent's id (see list); one starting with - goes after --: revoke -- -AbC")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    commands = {"serve": run_serve, "check": run_check, "rules": run_lint, "keygen": run_keygen}
    if arguments.command == "bans":
        return run_admin(run_bans, arguments)
    if arguments.command == "consent":
        return run_admin(run_consent, arguments)
    if arguments.command == "ranges":
        return run_ranges(arguments)
    if arguments.command == "audit":
        return run_audit(arguments)
    return commands[arguments.command](arguments)


def run_serve(arguments: argparse.Namespace) -> int:
    try:
        settings = settings_from(vars(arguments), os.environ)
    except ConfigError as error:
        for problem in error.problems:
            print(f"gate: error: {problem}", file=sys.stderr)
        return 2
    from gate.logs import configure_logging
    from gate.policy.load import load_policy
    from gate.policy.source import RulesError
    from gate.server import serve

    try:
        load_policy(settings.rules)  # refuse to start on broken rules; the workers load them again
    except RulesError as error:
        for rules_problem in error.problems:
            print(f"gate: error: --rules: {rules_problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    serve(settings)
    return 0


def rules_path(given: Path | None) -> Path:
    from gate.policy import shipped_rules

    return given or (Path(os.environ["GATE_RULES"]) if os.environ.get("GATE_RULES") else shipped_rules())


def run_check(arguments: argparse.Namespace) -> int:
    from gate.check import explain, explain_json_lines, parse_header, scope_for
    from gate.policy.load import load_policy
    from gate.policy.source import RulesError

    try:
        policy = load_policy(rules_path(arguments.rules))
    except RulesError as error:
        for problem in error.problems:
            print(f"gate: error: {problem}", file=sys.stderr)
        return 2
    if arguments.jsonl is not None and arguments.jsonl != "-":
        print("gate: error: --jsonl takes '-' (standard input)", file=sys.stderr)
        return 2
    if arguments.jsonl is None and not arguments.url:
        print("gate: error: give --url, or --jsonl - with requests on standard input", file=sys.stderr)
        return 2
    try:
        resolver = parse_resolver(arguments.resolver) if arguments.resolver else None
        headers = [parse_header(text) for text in arguments.header]
        scope = scope_for(arguments.method, arguments.url, arguments.ip, headers) if arguments.url else None
    except ValueError as error:  # BadRequest too
        print(f"gate: error: {error}", file=sys.stderr)
        return 2

    async def check() -> None:
        verifier = None if arguments.offline else check_verifier(resolver)
        try:
            if scope is None:
                async for answer in explain_json_lines(policy, sys.stdin, verifier):
                    print(json.dumps(answer), flush=True)
            else:
                print(json.dumps(await explain(policy, scope, arguments.busy, verifier), indent=2))
        finally:
            if verifier is not None:
                await verifier.close()

    asyncio.run(check())
    return 0


def run_audit(arguments: argparse.Namespace) -> int:
    from gate.audit.html import render_html
    from gate.audit.logs import DEFAULT_FORMATS, LogFormat
    from gate.audit.report import render_text
    from gate.audit.run import audit
    from gate.policy.load import load_policy
    from gate.policy.source import RulesError

    try:
        rules = rules_path(arguments.rules)
        policy = load_policy(rules)
        formats = [LogFormat(arguments.log_format)] if arguments.log_format else list(DEFAULT_FORMATS)
        resolver = parse_resolver(arguments.resolver) if arguments.resolver else None
        robots = arguments.robots_txt.read_text(encoding="utf-8", errors="replace") if arguments.robots_txt else ""
        for path in arguments.logs:
            if not path.is_file() or not os.access(path, os.R_OK):
                raise ValueError(f"{path}: no such log file, or not readable")
        for output in (arguments.html, None if arguments.json in (None, "-") else Path(arguments.json)):
            if output is not None:
                output.touch()  # an unwritable report path fails now, not after the whole replay
    except RulesError as error:
        for problem in error.problems:
            print(f"gate: error: {problem}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"gate: error: {error}", file=sys.stderr)
        return 2
    total = sum(path.stat().st_size for path in arguments.logs)
    progress = ProgressBar(total) if sys.stderr.isatty() else None

    async def audited() -> dict[str, Any]:
        verifier = check_verifier(resolver) if arguments.resolve else None
        try:
            result = await audit(
                arguments.logs, policy, formats, f"rules {rules} (version {policy.version})", verifier, robots, progress
            )
        finally:
            if verifier is not None:
                await verifier.close()
        return result.to_json()

    report = asyncio.run(audited())
    if progress is not None:
        progress.done()
    if report["lines"]["total"] and not report["lines"]["parsed"]:
        print("gate: error: no line read as a request: is it an access log? (see --log-format)", file=sys.stderr)
        return 1
    if arguments.html:
        arguments.html.write_text(render_html(report), encoding="utf-8")
    if arguments.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render_text(report), end="")
    return 0


class ProgressBar:
    """A one-line progress bar on the terminal (standard error), by bytes read."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.started = time.monotonic()

    def __call__(self, done: int) -> None:
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * 30)
        elapsed = time.monotonic() - self.started
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} {elapsed:6.1f} s", end="", file=sys.stderr)

    def done(self) -> None:
        print(file=sys.stderr)


def check_verifier(resolver: str | None) -> Verifier:
    """A verifier that waits for its answers: `gate check` explains, it has no visitor to keep waiting."""
    from gate.store.memory import MemoryStore
    from gate.verify import Verifier
    from gate.verify.directory import FETCH_SECONDS, KeyDirectories
    from gate.verify.rdns import DEFAULT_TIMEOUT, ReverseDns

    store = MemoryStore()
    wait = DEFAULT_TIMEOUT + 1  # longer than the lookup may take, so the answer is its end, never the wait's
    return Verifier(store, ReverseDns(store, resolver, DEFAULT_TIMEOUT, wait), KeyDirectories(FETCH_SECONDS + 1))


def run_lint(arguments: argparse.Namespace) -> int:
    from gate.policy.load import entry_file, load_policy
    from gate.policy.source import RulesError

    path = rules_path(arguments.path)
    try:
        policy = load_policy(path)
    except RulesError as error:
        for problem in error.problems:
            print(problem)
        print(f"{len(error.problems)} problem(s) in {entry_file(path)}", file=sys.stderr)
        return 1
    catalog = policy.fingerprinter.catalog
    print(
        f"ok: {entry_file(path)}: {len(policy.rules)} rules, {len(policy.thresholds)} thresholds, "
        f"{len(catalog.agents)} agents, {len(policy.fingerprinter.networks.names)} network lists, "
        f"{len(policy.files)} files, version {policy.version}"
    )
    return 0


def run_keygen(arguments: argparse.Namespace) -> int:
    path: Path = arguments.path
    if path.exists() and not (arguments.rotate or arguments.force):
        print(f"gate: error: {path} exists: use --rotate to add a new key or --force to replace it", file=sys.stderr)
        return 1
    if arguments.rotate and not path.exists():
        print(f"gate: error: {path} does not exist: nothing to rotate", file=sys.stderr)
        return 1
    try:
        ring = write_key_file(path, rotate=arguments.rotate)
    except (OSError, ValueError) as error:
        print(f"gate: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} (signing key {ring.signing.id}, {len(ring.keys)} key(s) accepted)")
    return 0


def run_ranges(arguments: argparse.Namespace) -> int:
    from gate.policy import shipped_rules
    from gate.ranges import SOURCES, update

    sources = dict(SOURCES)
    for given in arguments.source:
        name, _, url = given.partition("=")
        if name not in SOURCES or not url.startswith(("https://", "http://")):
            known = ", ".join(SOURCES)
            print(f"gate: error: --source {given!r}: expected NAME=URL with NAME one of {known}", file=sys.stderr)
            return 2
        sources[name] = (url,)
    unknown = [name for name in arguments.names if name not in SOURCES]
    if unknown:
        print(f"gate: error: unknown list {', '.join(unknown)} (known: {', '.join(SOURCES)})", file=sys.stderr)
        return 2
    directory = arguments.dir or shipped_rules() / "networks" / "verified"
    if not directory.is_dir():
        print(f"gate: error: --dir {directory}: no such directory", file=sys.stderr)
        return 2
    chosen = {name: urls for name, urls in sources.items() if not arguments.names or name in arguments.names}
    written, problems = update(directory, chosen)
    for done in written:
        before = "new" if done.previous is None else f"was {done.previous}"
        print(f"{done.name}: {done.count} prefixes ({before})")
    for problem in problems:
        print(f"gate: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


class AdminError(Exception):
    """A running gate's metrics listener could not be asked, or refused; the message says why."""


def call_admin(arguments: argparse.Namespace, method: str, path: str, refused: str = "") -> dict[str, Any]:
    """One request to the metrics listener of the gate running here (`--admin`, else GATE_METRICS_BIND); its
    answer, or AdminError with gate's reason (else `refused`) when it is not a 200."""
    import httpx

    from gate.config import parse_host_port

    try:
        admin = getattr(arguments, "admin", None) or os.environ.get("GATE_METRICS_BIND") or "127.0.0.1:9464"
        where = parse_host_port(admin)
    except ValueError as error:
        raise AdminError(f"--admin: {error}") from error
    try:
        answer = httpx.request(method, f"http://{where}{path}", timeout=30)
    except httpx.HTTPError as error:
        raise AdminError(f"no answer from gate's metrics listener at {where}: {error}") from error
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise AdminError(f"unexpected answer (HTTP {answer.status_code}); is {where} gate's metrics listener?")
    if answer.status_code != 200:
        raise AdminError(str(body.get("error") or refused or f"HTTP {answer.status_code}"))
    return body


def run_admin(command: Callable[[argparse.Namespace], int], arguments: argparse.Namespace) -> int:
    try:
        return command(arguments)
    except AdminError as error:
        print(f"gate: error: {error}", file=sys.stderr)
        return 1


def run_bans(arguments: argparse.Namespace) -> int:
    from urllib.parse import quote

    if arguments.bans_command == "remove":
        path = f"/bans/{quote(arguments.address, safe='')}"
        body = call_admin(arguments, "DELETE", path, refused=f"{arguments.address} is not banned")
        print(f"lifted the ban of {body['address']}")
        return 0
    body = call_admin(arguments, "GET", "/bans")
    if arguments.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"{'ADDRESS':<40} {'LEFT':>8}  {'STRIKES':>7}  LIMIT")
    for ban in body["bans"]:
        left = f"{ban['seconds_left'] // 60}m{ban['seconds_left'] % 60:02d}s"
        print(f"{ban['address']:<40} {left:>8}  {ban['strikes'] or '-':>7}  {ban['limit'] or '-'}")
    print(f"{len(body['bans'])} banned", file=sys.stderr)
    return 0


def run_consent(arguments: argparse.Namespace) -> int:
    if arguments.consent_command == "revoke":
        body = call_admin(arguments, "DELETE", f"/consents/{arguments.id}")
        print(f"revoked consent {body['id']}")
        return 0
    body = call_admin(arguments, "GET", "/consents")
    if arguments.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"{'ID':<18} {'AGENT':<24} {'PURPOSE':<10} {'TERMS':<12} {'ACCEPTED':<20} {'FROM':<16} CONTACT")
    for record in body["consents"]:
        accepted = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record["accepted_at"]))
        state = " (revoked)" if record["revoked"] else ""
        print(
            f"{record['id']:<18} {record['agent']:<24} {record['purpose']:<10} {record['terms_version']:<12} "
            f"{accepted:<20} {record['ip']:<16} {record['contact']}{state}"
        )
    print(f"{len(body['consents'])} consents", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
