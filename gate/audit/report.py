"""What gate would have done, added up: per action, agent class, agent, network, path and hour, in memory bounded
whatever the log's size (networks and paths are counted with a Misra-Gries summary: the top ones are found, with
counts that are lower bounds).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gate.audit.logs import Malformed
from gate.audit.simulate import Judged
from gate.policy.model import Action

ACTIONS = [action.value for action in Action if action is not Action.WEIGH]  # weigh rules never decide
NOT_FORWARDED = frozenset({"challenge", "deny", "terms", "throttle"})
AI_CLASSES = frozenset({"ai-crawler", "ai-assistant"})
LIBRARY_CLASSES = frozenset({"http-library", "headless-browser"})
TOP = 20
MAX_KEY = 512
TOP_AGENTS = 50
MAX_SAMPLES = 20
MAX_BANNED = 1000
MAX_HOURS = 24 * 400


class TopCounter:
    """The most frequent keys of a stream in bounded memory (Misra-Gries): a key with more than 1/capacity of the
    requests is always kept, and every count is a lower bound, short by at most total/capacity."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self.counts: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.actions: dict[str, Counter[str]] = {}

    def add(self, key: str, action: str, size: int = 0) -> None:
        key = key[:MAX_KEY]  # a 64 KiB path is still one key, not 64 KiB of memory
        self.counts[key] += 1
        self.bytes[key] += size
        self.actions.setdefault(key, Counter())[action] += 1
        if len(self.counts) > 2 * self.capacity:  # amortised: one prune per `capacity` new keys
            threshold = sorted(self.counts.values(), reverse=True)[self.capacity]
            for name in [name for name, count in self.counts.items() if count <= threshold]:
                del self.counts[name], self.bytes[name], self.actions[name]
            for name in self.counts:
                self.counts[name] -= threshold

    def top(self, count: int) -> list[dict[str, Any]]:
        return [
            {"requests": amount, "bytes": self.bytes[key], "actions": dict(self.actions[key]), "key": key}
            for key, amount in self.counts.most_common(count)
        ]


@dataclass
class Audit:
    files: list[str]
    rules: str
    lines: int = 0
    malformed: int = 0
    samples: list[Malformed] = field(default_factory=list)
    first: float | None = None
    last: float | None = None
    requests: Counter[str] = field(default_factory=Counter)  # by action
    bytes: Counter[str] = field(default_factory=Counter)
    classes: dict[str, Counter[str]] = field(default_factory=dict)  # class -> action -> requests
    class_bytes: dict[str, Counter[str]] = field(default_factory=dict)  # class -> action -> bytes
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)  # named agents: bounded by the agent lists
    networks: TopCounter = field(default_factory=TopCounter)
    ai_paths: TopCounter = field(default_factory=TopCounter)
    library_paths: TopCounter = field(default_factory=TopCounter)
    hourly: dict[int, tuple[Counter[str], Counter[str]]] = field(default_factory=dict)  # hour -> (actions, classes)
    banned: list[dict[str, Any]] = field(default_factory=list)
    violators: TopCounter = field(default_factory=TopCounter)  # "agent network" -> violations
    unverified_claims: int = 0
    passed: int = 0  # let in on a pass token a browser earned at an earlier challenge

    def add_malformed(self, entry: Malformed) -> None:
        self.lines += 1
        self.malformed += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(entry)

    def add(self, judged: Judged) -> None:
        self.lines += 1
        entry, signals, action = judged.entry, judged.signals, judged.action.value
        self.first = entry.time if self.first is None else min(self.first, entry.time)
        self.last = entry.time if self.last is None else max(self.last, entry.time)
        self.requests[action] += 1
        self.bytes[action] += entry.bytes
        self.passed += judged.passed
        agent_class = signals.agent_class
        self.classes.setdefault(agent_class, Counter())[action] += 1
        self.class_bytes.setdefault(agent_class, Counter())[action] += entry.bytes
        if signals.agent is not None:
            agent = self.agents.setdefault(
                signals.agent.name,
                {"agent_class": agent_class, "requests": 0, "bytes": 0, "actions": Counter(), "robots": 0},
            )
            agent["requests"] += 1
            agent["bytes"] += entry.bytes
            agent["actions"][action] += 1
            agent["robots"] += judged.robots_violation
        if judged.robots_violation and signals.agent_name:
            self.violators.add(f"{signals.agent_name} {judged.facts.prefix}", action)
        self.networks.add(judged.facts.prefix, action, entry.bytes)
        if agent_class in AI_CLASSES:
            self.ai_paths.add(judged.facts.path, action)
        elif agent_class in LIBRARY_CLASSES:
            self.library_paths.add(judged.facts.path, action)
        hour = int(entry.time // 3600)
        if hour in self.hourly or len(self.hourly) < MAX_HOURS:
            actions, classes = self.hourly.setdefault(hour, (Counter(), Counter()))
            actions[action] += 1
            classes[agent_class] += 1
        if judged.banned_now and len(self.banned) < MAX_BANNED:
            limit = judged.refusal.limit.name if judged.refusal and judged.refusal.limit else ""
            self.banned.append({"ip": entry.ip, "at": iso(entry.time), "limit": limit})
        if signals.claim is not None:
            self.unverified_claims += 1

    def to_json(self) -> dict[str, Any]:
        total_requests = sum(self.requests.values())
        total_bytes = sum(self.bytes.values())
        saved_requests = sum(self.requests[action] for action in NOT_FORWARDED)
        saved_bytes = sum(self.bytes[action] for action in NOT_FORWARDED)
        agents = sorted(self.agents.items(), key=lambda item: -item[1]["requests"])
        return {
            "generated": iso(time.time()),
            "files": self.files,
            "rules": self.rules,
            "lines": {
                "total": self.lines,
                "parsed": self.lines - self.malformed,
                "malformed": self.malformed,
                "malformed_samples": [
                    {"file": sample.file, "line": sample.line, "reason": sample.reason, "sample": sample.sample}
                    for sample in self.samples
                ],
            },
            "period": {"first": iso(self.first), "last": iso(self.last)},
            "totals": {"requests": total_requests, "bytes": total_bytes},
            "actions": ACTIONS,
            "by_action": {
                action: {"requests": self.requests[action], "bytes": self.bytes[action]} for action in ACTIONS
            },
            "by_class": {name: dict(actions) for name, actions in sorted(self.classes.items())},
            "by_class_bytes": {name: dict(actions) for name, actions in sorted(self.class_bytes.items())},
            "agents": [agent_json(name, data) for name, data in agents[:TOP_AGENTS]],
            "ai_crawlers": [agent_json(name, data) for name, data in agents if data["agent_class"] in AI_CLASSES],
            "networks": [renamed(item, "network") for item in self.networks.top(TOP)],
            "paths": {
                "ai": [renamed(item, "path") for item in self.ai_paths.top(TOP)],
                "libraries": [renamed(item, "path") for item in self.library_paths.top(TOP)],
            },
            "hourly": [
                {"hour": iso(hour * 3600), "actions": dict(actions), "classes": dict(classes)}
                for hour, (actions, classes) in sorted(self.hourly.items())
            ],
            "banned": self.banned,
            "robots_violators": [
                {"agent": key.rpartition(" ")[0], "network": key.rpartition(" ")[2], "violations": item["requests"]}
                for item in self.violators.top(TOP)
                for key in [item["key"]]
            ],
            "saved": {
                "requests": saved_requests,
                "bytes": saved_bytes,
                "requests_share": saved_requests / total_requests if total_requests else 0.0,
                "bytes_share": saved_bytes / total_bytes if total_bytes else 0.0,
            },
            "unverified_claims": self.unverified_claims,
            "passed": self.passed,
        }


def renamed(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {key: item.pop("key"), **item}


def agent_json(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent": name,
        "agent_class": data["agent_class"],
        "requests": data["requests"],
        "bytes": data["bytes"],
        "actions": dict(data["actions"]),
        "robots_violations": data["robots"],
    }


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def render_text(report: dict[str, Any]) -> str:
    """The terminal summary: what gate would have done, and to whom."""
    lines, totals = report["lines"], report["totals"]
    period = report["period"]
    out = [
        f"gate audit of {', '.join(report['files'])} with {report['rules']}",
        f"{lines['parsed']:,} requests from {period['first'] or '-'} to {period['last'] or '-'}; "
        f"{lines['malformed']:,} malformed lines",
        "",
        f"{'action':<10} {'requests':>12} {'share':>7} {'bytes':>12} {'share':>7}",
    ]
    for action in report["actions"]:
        counts = report["by_action"][action]
        out.append(
            f"{action:<10} {counts['requests']:>12,} {share(counts['requests'], totals['requests']):>7} "
            f"{human_bytes(counts['bytes']):>12} {share(counts['bytes'], totals['bytes']):>7}"
        )
    saved = report["saved"]
    if report["passed"]:
        out.append(
            f"  (allow includes {report['passed']:,} requests let in on the pass a browser earned at a challenge:"
            " browsers are taken to solve it)"
        )
    out += [
        "",
        f"upstream load saved: {saved['requests']:,} requests ({saved['requests_share']:.1%}), "
        f"{human_bytes(saved['bytes'])} ({saved['bytes_share']:.1%})",
        "",
        "by agent class:",
    ]
    for name, actions in sorted(report["by_class"].items(), key=lambda item: -sum(item[1].values())):
        shown = ", ".join(f"{action} {count:,}" for action, count in sorted(actions.items(), key=lambda i: -i[1]))
        size = human_bytes(sum(report["by_class_bytes"][name].values()))
        out.append(f"  {name:<18} {sum(actions.values()):>10,} {size:>12}  ({shown})")
    if report["ai_crawlers"]:
        out += ["", "AI crawlers and assistants:"]
        for agent in report["ai_crawlers"][:15]:
            shown = ", ".join(f"{action} {count:,}" for action, count in agent["actions"].items())
            violations = f"; {agent['robots_violations']:,} robots.txt violations" if agent["robots_violations"] else ""
            out.append(
                f"  {agent['agent']:<22} {agent['requests']:>9,} requests, {human_bytes(agent['bytes'])} ({shown})"
                f"{violations}"
            )
    if report["networks"]:
        out += ["", "busiest networks (at least):"]
        out += [
            f"  {item['network']:<22} {item['requests']:>9,}  {item['actions']}" for item in report["networks"][:10]
        ]
    if report["banned"]:
        out += ["", f"would have been banned: {len(report['banned']):,} addresses, e.g."]
        out += [f"  {ban['ip']} at {ban['at']} (limit {ban['limit']})" for ban in report["banned"][:10]]
    if report["unverified_claims"]:
        out += [
            "",
            f"{report['unverified_claims']:,} requests named a crawler that only reverse DNS or a signature could"
            " prove; run with --resolve to check them",
        ]
    return "\n".join(out) + "\n"


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} TiB"
