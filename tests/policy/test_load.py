"""Loading rules: every valid fixture compiles, every broken one is refused with exactly its `file:line: message`.

tests/data/rules/good/*.yaml must load. Each tests/data/rules/bad/*.yaml starts with comment lines

    # expect: LINE: SUBSTRING            a problem in this file
    # expect: FILE:LINE: SUBSTRING       a problem in FILE (relative to this file), e.g. a network list

and loading it must raise RulesError whose problems are exactly those: each expectation matches one problem (same
file, same line, message containing the substring) and no problem is left over. Files under parts/ are imported
by the others and are not entry points.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action, Bans, Limit, LoadThresholds
from gate.policy.source import Problem, RulesError
from tests.policy.helpers import BAD, DOCS, GOOD, browser_headers, facts_for, line_of, run_gate

EXPECT = re.compile(r"^#\s*expect:\s*(?:(?P<file>[^\s:]+):)?(?P<line>\d+):\s*(?P<message>.+?)\s*$")
GOOD_FILES = sorted(GOOD.glob("*.yaml"))
BAD_FILES = sorted(BAD.glob("*.yaml"))
SHIPPED_RULES = [
    "site-files",
    "feeds",
    "impostors",
    "ai-agents-get-terms",
    "ai-operator-networks",
    "verified-search-engines",
    "unverified-search-engine-claims",
    "link-previews",
    "feed-readers-monitors-archivers",
    "seo-crawlers",
    "scanners",
    "libraries-and-headless-browsers",
    "unknown-bots",
    "browser-from-a-data-centre",
]


@dataclass(frozen=True)
class Expected:
    file: Path
    line: int
    message: str

    def matches(self, problem: Problem) -> bool:
        return Path(problem.file) == self.file and problem.line == self.line and self.message in problem.message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: ...{self.message}..."


def expectations(path: Path) -> list[Expected]:
    found = []
    for line in path.read_text().splitlines():
        match = EXPECT.match(line)
        if match:
            file = (path.parent / match["file"]).resolve() if match["file"] else path
            found.append(Expected(file, int(match["line"]), match["message"]))
    return found


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(RulesError) as raised:
        load_policy(path)
    return raised.value.problems


def unmatched(expected: list[Expected], problems: list[Problem]) -> tuple[list[Expected], list[Problem]]:
    """The expectations no problem meets, and the problems no expectation claims (one problem per expectation)."""
    left = list(problems)
    missing = []
    for expectation in expected:
        problem = next((problem for problem in left if expectation.matches(problem)), None)
        if problem is None:
            missing.append(expectation)
        else:
            left.remove(problem)
    return missing, left


def load(name: str) -> Policy:
    return load_policy(GOOD / name)


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


# The fixtures themselves


def test_there_are_fixtures_and_every_bad_one_says_what_it_expects() -> None:
    assert len(GOOD_FILES) >= 9
    assert len(BAD_FILES) >= 28
    assert [path.name for path in BAD_FILES if not expectations(path)] == []


# Good files


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda path: path.name)
def test_good_file_loads(path: Path) -> None:
    policy = load_policy(path)
    assert policy.files[0] == path
    assert re.fullmatch(r"[0-9a-f]{12}", policy.version)


def test_every_match_key_compiles_into_a_rule() -> None:
    policy = load("match-keys.yaml")
    assert [rule.name for rule in policy.rules] == [
        "by-agent-class", "by-agent", "by-user-agent", "by-path-glob", "by-path-regex", "by-method", "by-host",
        "by-header", "by-query", "by-network", "by-cidr", "by-verified", "by-signal",
    ]  # fmt: skip
    assert all(len(rule.conditions) == 1 for rule in policy.rules)


def test_limits_parse_every_rate_unit_and_default_the_burst() -> None:
    assert load("actions.yaml").limits == {
        "polite": Limit("polite", 60, 60.0, 20),
        "per-second": Limit("per-second", 5, 1.0, 1),
        "hourly": Limit("hourly", 100, 3600.0, 3),
        "daily": Limit("daily", 1000, 86400.0, 1),
    }


def test_actions_keep_their_parameters() -> None:
    effects = {rule.name: rule.effect for rule in load("actions.yaml").rules}
    assert effects["weigh-up"].weight == 2.5
    assert effects["weigh-down"].weight == -3
    assert (effects["open-teapot"].action, effects["open-teapot"].status) == (Action.ALLOW, 418)
    assert (effects["closed"].action, effects["closed"].status) == (Action.DENY, None)
    assert effects["closed-gone"].status == 410
    assert (effects["work"].action, effects["work"].difficulty) == (Action.CHALLENGE, 32)
    assert (effects["slower"].limit, effects["slower"].status) == ("hourly", 503)


def test_bans_and_load_thresholds_are_read() -> None:
    policy = load("escalation-and-load.yaml")
    assert policy.bans == Bans(after=40, window=600.0, duration=7200.0)
    assert policy.load == LoadThresholds(requests_per_second=250.0, upstream_p90=0.8, hold=90.0)
    assert policy.limits["per-pass"].per == ("pass", "network")


def test_the_under_load_profile_challenges_browsers_only_while_the_site_is_busy() -> None:
    policy = load("challenge-under-load.yaml")
    facts = facts_for("http://example.org/essays/", headers=browser_headers())
    busy = dataclasses.replace(facts, site_busy=True)
    assert policy.evaluate(facts, policy.fingerprint(facts)).action is Action.ALLOW
    decision = policy.evaluate(busy, policy.fingerprint(busy))
    assert (decision.action, decision.rule) == (Action.CHALLENGE, "challenge-browsers-under-load")
    assert any("site is busy" in reason for reason in decision.reasons)


def test_network_lists_come_inline_from_files_and_from_both() -> None:
    policy = load("networks.yaml")
    networks = policy.fingerprinter.networks
    assert networks.names == {"office", "blocked", "globbed", "carrier-grade"}
    assert GOOD / "networks.txt" in policy.files
    from_file = {"blocked", "globbed", "carrier-grade"}
    assert networks.lookup("192.0.2.7") == {"office"}
    assert networks.lookup("2001:db8:1::5") == {"office"}
    assert networks.lookup("203.0.113.200") == from_file
    assert networks.lookup("198.51.100.9") == from_file
    assert networks.lookup("2001:db8:dead:1::1") == from_file
    assert networks.lookup("100.100.1.1") == {"carrier-grade"}
    assert networks.lookup("198.51.100.10") == set()


def test_signal_weights_thresholds_and_default() -> None:
    policy = load("scoring.yaml")
    source = GOOD / "scoring.yaml"
    assert policy.weights["empty-user-agent"] == 10
    assert policy.weights["no-accept-language"] == -1
    assert policy.weights["library-headers"] == 4  # not overridden: the documented default
    assert [(threshold.name, threshold.score) for threshold in policy.thresholds] == [
        ("high", 8),
        ("middle", 5),
        ("low", 2),
    ]
    assert policy.thresholds[1].effect.limit == "slow"
    assert policy.default.effect.action is Action.ALLOW
    assert policy.default.source == f"{source}:{line_of(source, 'default:') + 1}"


def test_fingerprints_name_the_header_in_lower_case_and_keep_the_lists() -> None:
    ja4 = load("fingerprints.yaml").fingerprinter.ja4
    assert ja4 is not None
    assert ja4.header == "x-ja4"
    assert set(ja4.lists) == {"scraping-tools", "known-good"}
    assert "t13d1516h2_8daaf6152771_02713d6af862" in ja4.lists["known-good"]


def test_imports_put_local_rules_first_and_the_importing_file_wins() -> None:
    policy = load("imports.yaml")
    assert [rule.name for rule in policy.rules] == ["my-monitoring", "members-area", *SHIPPED_RULES]
    assert policy.limits["polite-bots"].rate == 10  # imports.yaml's own limit, not the shipped 60/min
    assert [threshold.name for threshold in policy.thresholds] == ["inconsistent-browser", "suspicious-browser"]
    assert GOOD / "parts" / "local.yaml" in policy.files
    assert shipped_rules() / "default.yaml" in policy.files


def test_shipped_agent_lists_load_through_a_glob() -> None:
    policy = load("shipped-agents.yaml")
    assert len(policy.fingerprinter.catalog.agents) > 300
    assert {path.name for path in policy.files} >= {"ai-crawlers.yaml", "search-engines.yaml", "scanners.yaml"}


def test_a_policy_without_rules_allows_by_the_built_in_default() -> None:
    policy = load("minimal.yaml")
    assert (policy.rules, policy.thresholds) == ((), ())
    assert (policy.default.effect.action, policy.default.source) == (Action.ALLOW, "built-in")


def test_the_version_changes_with_the_contents(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: a, action: allow}]\n")
    before = load_policy(rules).version
    rules.write_text("rules: [{name: a, action: deny}]\n")
    assert load_policy(rules).version != before


# Bad files


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.name)
def test_bad_file_reports_exactly_its_expected_problems(path: Path) -> None:
    problems = problems_of(path)
    missing, unexpected = unmatched(expectations(path), problems)
    assert (missing, unexpected) == ([], []), (
        "expected but not reported:\n  "
        + "\n  ".join(map(str, missing))
        + "\nreported but not expected:\n  "
        + "\n  ".join(map(str, unexpected))
    )


def test_all_problems_of_a_file_are_reported_together_in_line_order() -> None:
    problems = problems_of(BAD / "many-problems.yaml")
    assert len(problems) == 8
    assert [problem.line for problem in problems] == sorted(problem.line for problem in problems)
    assert str(RulesError(problems)).splitlines() == [str(problem) for problem in problems]


def test_a_problem_reads_file_line_message() -> None:
    assert str(Problem("rules.yaml", 7, "unknown key 'x' in a rule")) == "rules.yaml:7: unknown key 'x' in a rule"


def test_problems_of_several_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("limits:\n  slow: {rate: often}\n")
    (tmp_path / "rules.yaml").write_text("import: [base.yaml]\nrules:\n  - {name: x, action: alow}\n")
    problems = problems_of(tmp_path / "rules.yaml")
    assert [(Path(problem.file).name, problem.line) for problem in problems] == [("base.yaml", 2), ("rules.yaml", 3)]


def test_an_import_cycle_is_one_problem_when_the_entry_path_is_relative(monkeypatch: pytest.MonkeyPatch) -> None:
    # `gate rules lint import-cycle.yaml`: imports are resolved to absolute paths, the entry file must be too, or the
    # cycle is noticed one round late and the entry file's rules are read twice.
    monkeypatch.chdir(BAD)
    problems = problems_of(Path("import-cycle.yaml"))
    assert [problem.message.split(":")[0] for problem in problems] == ["import cycle"]


def test_a_missing_rules_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere.yaml")
    assert len(problems) == 1
    assert "no such rules file" in problems[0].message


@pytest.mark.parametrize("name", ['"\\ud800"', '"a\\0b.yaml"', '"*\\ud800*"'])
@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("agents: [{name}]", "no such file"),
        ("import: [{name}]", "no such rules file"),
        ("networks: {{office: {name}}}", "no such file"),
        ("terms: {{text_file: {name}}}", "cannot read"),
    ],
)
def test_a_file_name_no_file_can_have_is_a_problem_not_a_crash(
    tmp_path: Path, section: str, expected: str, name: str
) -> None:
    # YAML can spell a lone surrogate or a NUL, which the file system refuses with a ValueError rather than an OSError.
    # libyaml's parser (gate's, where PyYAML has it) refuses the surrogate itself, as invalid YAML.
    (tmp_path / "rules.yaml").write_text(section.format(name=name) + "\n")
    refused = (expected, "invalid YAML: found invalid Unicode character escape code")
    problems = problems_of(tmp_path / "rules.yaml")
    assert [any(message in problem.message for message in refused) for problem in problems] == [True]


def test_a_directory_means_its_default_yaml(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("rules: [{name: only, action: deny}]\n")
    assert [rule.name for rule in load_policy(tmp_path).rules] == ["only"]


# The shipped rules


def test_shipped_rules_load_with_the_documented_rules_in_order(shipped: Policy) -> None:
    assert [rule.name for rule in shipped.rules] == SHIPPED_RULES
    assert [(threshold.name, threshold.score) for threshold in shipped.thresholds] == [
        ("inconsistent-browser", 6),
        ("suspicious-browser", 3),
    ]
    assert (shipped.default.effect.action, shipped.default.effect.difficulty) == (Action.CHALLENGE, 16)
    assert shipped.limits["polite-bots"] == Limit("polite-bots", 60, 60.0, 20)


def test_every_shipped_rule_is_named_in_default_yaml(shipped: Policy) -> None:
    text = (shipped_rules() / "default.yaml").read_text()
    for rule in shipped.rules:
        file, _, line = rule.source.rpartition(":")
        assert Path(file) == shipped_rules() / "default.yaml"
        assert text.splitlines()[int(line) - 1].strip() == f"- name: {rule.name}"


def test_every_shipped_rule_is_in_the_table_of_docs_rules_md(shipped: Policy) -> None:
    docs = (DOCS / "rules.md").read_text()
    assert [rule.name for rule in shipped.rules if f"| `{rule.name}` |" not in docs] == []


def test_shipped_rules_read_every_agent_list(shipped: Policy) -> None:
    lists = {path.name for path in (shipped_rules() / "agents").glob("*.yaml")}
    assert lists <= {path.name for path in shipped.files}


# gate rules lint


@pytest.mark.parametrize("name", ["match-keys.yaml", "networks.yaml", "imports.yaml"])
def test_lint_says_ok_for_good_rules(name: str) -> None:
    result = run_gate("rules", "lint", str(GOOD / name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok: {GOOD / name}: ")
    assert result.stderr == ""


def test_lint_without_a_path_checks_the_shipped_rules() -> None:
    result = run_gate("rules", "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(
        f"ok: {shipped_rules() / 'default.yaml'}: {len(SHIPPED_RULES)} rules, 2 thresholds, "
    )


@pytest.mark.parametrize("name", ["many-problems.yaml", "invalid-cidr-file.yaml", "unknown-agent.yaml"])
def test_lint_prints_file_line_message_and_exits_1_for_bad_rules(name: str) -> None:
    path = BAD / name
    result = run_gate("rules", "lint", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [str(problem) for problem in problems_of(path)]
    for line in result.stdout.splitlines():
        assert re.match(r"^/\S+\.(yaml|txt):\d+: \S", line), line
    assert f"problem(s) in {path}" in result.stderr
    assert "Traceback" not in result.stderr


def test_lint_of_a_missing_path_exits_1(tmp_path: Path) -> None:
    result = run_gate("rules", "lint", str(tmp_path / "nowhere.yaml"))
    assert result.returncode == 1
    assert "no such rules file" in result.stdout


def test_check_explains_a_decision_as_if_the_site_were_busy() -> None:
    url = "https://example.org/essays/"
    request = {"url": url, "headers": dict(browser_headers())}
    lines = "\n".join(json.dumps(request | {"busy": busy}) for busy in (False, True))
    result = run_gate("check", "--rules", str(GOOD / "challenge-under-load.yaml"), "--jsonl", "-", stdin=lines)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["action"] for line in result.stdout.splitlines()] == ["allow", "challenge"]
    flags = run_gate(
        "check", "--rules", str(GOOD / "challenge-under-load.yaml"), "--url", url, "--busy",
        *(f"--header={name}: {value}" for name, value in browser_headers()),
    )  # fmt: skip
    assert json.loads(flags.stdout)["rule"] == "challenge-browsers-under-load", flags.stderr
