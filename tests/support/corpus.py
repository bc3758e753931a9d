"""The User-Agent corpus in tests/data/user-agents: real strings from public data sets, with their sources."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gate.fingerprint.agents import AgentCatalog

CORPUS = Path(__file__).resolve().parent.parent / "data" / "user-agents"
NOT_BOTS = frozenset({"browser", "unknown"})


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def corpus_files(kind: str) -> list[Path]:
    """The files of one kind: "browsers" or "bots"."""
    return sorted((CORPUS / kind).glob("*.txt"))


def labelled() -> list[tuple[str, str, str]]:
    """(expected class, User-Agent, source) rows of labelled.tsv."""
    rows = []
    for line in read_lines(CORPUS / "labelled.tsv"):
        expected, user_agent, source = line.split("\t")
        rows.append((expected, user_agent, source))
    return rows


@dataclass(frozen=True)
class Tally:
    source: str
    total: int
    classes: Counter[str]

    @property
    def bots(self) -> int:
        """Strings labelled as some kind of bot or tool (anything but browser and unknown)."""
        return sum(count for name, count in self.classes.items() if name not in NOT_BOTS)


def tally(catalog: AgentCatalog, path: Path) -> Tally:
    agents = read_lines(path)
    classes: Counter[str] = Counter(catalog.classify(agent).agent_class for agent in agents)
    return Tally(f"{path.parent.name}/{path.name}", len(agents), classes)
