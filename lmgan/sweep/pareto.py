"""The non-dominated trials of a multi-objective sweep: the trade-offs no other trial beats.

A trial dominates another when it is at least as good on every objective and better on one.
The sweep's driver marks the front on the trials' MLflow runs; the report draws it.
"""

from __future__ import annotations

import math
from typing import Sequence


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """Whether point `a` dominates point `b` under the objectives' "max"/"min" directions."""
    signs = [1 if m == "max" else -1 for m in modes]
    better_or_same = all(s * x >= s * y for s, x, y in zip(signs, a, b))
    return better_or_same and any(s * x > s * y for s, x, y in zip(signs, a, b))


def non_dominated(points: Sequence[Sequence[float] | None], modes: Sequence[str]) -> list[bool]:
    """For each point, whether it is on the Pareto front. A point with a missing or non-finite
    value (a trial that errored before its first evaluation) is never on it."""
    ok = [p is not None and len(p) == len(modes) and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                            for v in p) for p in points]
    return [ok[i] and not any(ok[j] and dominates(points[j], points[i], modes)
                              for j in range(len(points)) if j != i)
            for i in range(len(points))]
