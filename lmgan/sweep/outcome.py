"""The one rule for how a sweep came out: a trial's judged value, the ranking, the best trial, the
Pareto front and what the search gained over the baseline. The driver's summary, the progress
lines, `lmgan report` and the scheduler benchmark all decide through these functions, so what the
console says and what the report shows cannot disagree.

A trial is judged by its best evaluation under ASHA and FIFO (an early peak is a checkpoint you
keep), by its last under PBT (its final model is what its schedule made) and in a multi-objective
sweep (Optuna scores a trial by its last report). `schema.Objectives.judged_by_last` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def latest_by_step(points: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    """(iteration, value) in iteration order, the last reported value where an iteration has
    several: a PBT clone continues from an earlier iteration and reports its new lineage's values
    there again; those replace the old lineage's."""
    latest = {}
    for step, value in points:
        latest[int(step)] = value
    return sorted(latest.items())


def judged(points: Sequence[tuple[int, float]], mode: str, by_last: bool) -> tuple[float, int] | None:
    """(value, iteration) a trial is judged by, from its evaluations in report order (a repeated
    iteration: its last report counts); None before a finite value. The best: the earliest of equals."""
    series = [(it, float(v)) for it, v in latest_by_step(points) if finite(v)]
    if not series:
        return None
    if by_last:
        it, v = series[-1]
        return v, it
    sign = 1 if mode == "max" else -1
    it, v = max(series, key=lambda p: (sign * p[1], -p[0]))
    return v, it


@dataclass
class TrialOutcome:
    """How one trial came out. `value` and `at` are the primary objective's judged value and its
    iteration; `scores` every objective's value at that judgement (multi-objective sweeps)."""
    trial: str                       # Tune's trial id
    status: str                      # schema.STATUSES, or interrupted
    reached: int                     # iterations it trained
    value: float | None = None
    at: int | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    values: dict = field(default_factory=dict)      # its searched values
    baseline: bool = False
    run_id: str = ""
    pareto: bool = False


def rank(trials: list[TrialOutcome], mode: str) -> list[TrialOutcome]:
    """Best first by the judged value, equals by trial id (the driver and the report list trials in
    different orders); trials without one last, in their given order."""
    sign = -1 if mode == "max" else 1
    scored = sorted((t for t in trials if t.value is not None), key=lambda t: (sign * t.value, t.trial))
    return scored + [t for t in trials if t.value is None]


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """Whether `a` is at least as good as `b` on every objective and better on one."""
    signs = [1 if m == "max" else -1 for m in modes]
    return all(s * x >= s * y for s, x, y in zip(signs, a, b)) and any(s * x > s * y for s, x, y in zip(signs, a, b))


def non_dominated(points: Sequence[Sequence[float] | None], modes: Sequence[str]) -> list[bool]:
    """For each point, whether it is on the Pareto front. A point with a missing or non-finite
    value (a trial that errored before its first evaluation) is never on it."""
    ok = [p is not None and len(p) == len(modes) and all(finite(v) for v in p) for p in points]
    return [ok[i] and not any(ok[j] and dominates(points[j], points[i], modes)
                              for j in range(len(points)) if j != i) for i in range(len(points))]


def mark_front(trials: list[TrialOutcome], goals: Sequence[tuple[str, str]]) -> list[TrialOutcome]:
    """Set `pareto` on the trials no other beats on every objective; returns the front, in order."""
    names = [n for n, _ in goals]
    marks = non_dominated([tuple(t.scores.get(n) for n in names) for t in trials], [m for _, m in goals])
    for t, on in zip(trials, marks):
        t.pareto = on
    return [t for t in trials if t.pareto]


def best(ranked: list[TrialOutcome], multi: bool) -> TrialOutcome | None:
    """The sweep's best trial: the first ranked with a value; none for several objectives
    (the front is the result)."""
    if multi or not ranked or ranked[0].value is None:
        return None
    return ranked[0]


def baseline_gain(base: TrialOutcome | None, top: TrialOutcome | None, mode: str) -> float | None:
    """How much the best trial beat the baseline by (> 0: better), None where either has no value
    or the baseline is itself the best."""
    if base is None or top is None or base is top or base.value is None or top.value is None:
        return None
    return (top.value - base.value) * (1 if mode == "max" else -1)


@dataclass
class SweepOutcome:
    """A sweep's result: its trials best first, the best (one objective) or the front (several),
    the baseline trial, and whether the driver was interrupted before the trials ended."""
    ranked: list[TrialOutcome]
    best: TrialOutcome | None
    front: list[TrialOutcome]
    baseline: TrialOutcome | None
    gain: float | None
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.ranked)


def decide(trials: list[TrialOutcome], goals: Sequence[tuple[str, str]], interrupted: bool = False) -> SweepOutcome:
    """Rank the trials and decide the best, the front and the baseline gain."""
    mode, multi = goals[0][1], len(goals) > 1
    ranked = rank(trials, mode)
    front = mark_front(ranked, goals) if multi else []
    top = best(ranked, multi)
    base = next((t for t in ranked if t.baseline), None)
    return SweepOutcome(ranked, top, front, base, None if multi else baseline_gain(base, top, mode), interrupted)
