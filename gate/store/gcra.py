"""GCRA, the generic cell rate algorithm, as both stores run it: exact at any instant (no window edges).

Each quota keeps one number, the theoretical arrival time (TAT) of the next request. A request at `now` is allowed
when the new TAT (max(TAT, now) + interval) is at most `interval * burst` ahead of now. Times are integer
milliseconds, so the Lua script in the Redis store computes exactly what this module does.
"""

from __future__ import annotations

from collections.abc import Sequence

from gate.store.base import Quota, Verdict


def milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def advance(tat: int | None, now: int, interval: int, count: int = 1) -> int:
    """The TAT after `count` requests at `now` (a quota never charged, or full again, starts from now)."""
    return max(tat if tat is not None else now, now) + interval * count


def charge(quotas: Sequence[Quota], stored: Sequence[int | None], now: int) -> tuple[list[Verdict], list[int] | None]:
    """Verdicts for one request, and the new TATs to store (None when refused: nothing is charged)."""
    verdicts: list[Verdict] = []
    new_tats: list[int] = []
    for quota, tat in zip(quotas, stored, strict=True):
        interval = milliseconds(quota.interval)
        tolerance = interval * quota.burst
        new_tat = advance(tat, now, interval)
        ahead = new_tat - now
        if ahead > tolerance:
            verdicts.append(Verdict(False, 0, (ahead - tolerance) / 1000, (ahead - interval) / 1000))
        else:
            verdicts.append(Verdict(True, (tolerance - ahead) // interval, 0.0, ahead / 1000))
        new_tats.append(new_tat)
    return verdicts, new_tats if all(verdict.allowed for verdict in verdicts) else None
