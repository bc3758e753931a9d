"""Classification accuracy of the shipped agent lists on the User-Agent corpus (tests/data/user-agents).

For each file: how many strings, how many labelled as some bot or tool class, how many as browser, and for the
labelled rows how many got exactly their class.
"""

from __future__ import annotations

from gate.policy import shipped_rules
from gate.policy.load import load_policy
from tests.support.corpus import corpus_files, labelled, tally


def main() -> None:
    catalog = load_policy(shipped_rules()).fingerprinter.catalog
    print(f"agent lists: {len(catalog.agents)} agents")
    print("| corpus file | strings | labelled bot | labelled browser | share as expected |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("browsers", "bots"):
        for path in corpus_files(kind):
            found = tally(catalog, path)
            expected = found.classes["browser"] if kind == "browsers" else found.bots
            print(
                f"| {found.source} | {found.total} | {found.bots} | {found.classes['browser']} | "
                f"{100 * expected / found.total:.2f} % |"
            )
    rows = labelled()
    exact = sum(catalog.classify(agent).agent_class == expected for expected, agent, _ in rows)
    print(f"\nlabelled.tsv: {exact} of {len(rows)} rows get exactly their class ({100 * exact / len(rows):.2f} %)")


if __name__ == "__main__":
    main()
