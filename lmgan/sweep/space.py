"""Search spaces as data: a YAML mapping of config key → one distribution.

    lr_g: {loguniform: [1.0e-5, 1.0e-3]}   # low, high (low > 0)
    dropout: {uniform: [0.0, 0.5]}          # low, high
    rnn_layers: {int: [1, 4]}               # low, high, both included
    vp_kernel: {choice: [3, 5, 7]}          # any values

Every key must be a config key, every range non-empty, and every value the space can produce a
valid config (bounds and choices are checked through config.validate), so a bad space fails
before any trial starts, not in trial 17.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmgan.config import SWEEP, Config, apply_overrides, keys_with, load_yaml, validate
from lmgan.errors import LmganError

KINDS = ("loguniform", "uniform", "int", "choice")
# Searched keys that would break a sweep's comparability or its bookkeeping: the sweep sets them.
NOT_SEARCHABLE = frozenset(keys_with(SWEEP))


@dataclass(frozen=True)
class Param:
    key: str
    kind: str       # one of KINDS
    values: tuple   # (low, high) or the choices

    def to_tune(self):
        from ray import tune
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "int":
            return tune.randint(self.values[0], self.values[1] + 1)  # randint's upper is exclusive
        return tune.choice(list(self.values))

    def to_optuna(self):
        from optuna import distributions as d
        if self.kind == "loguniform":
            return d.FloatDistribution(*self.values, log=True)
        if self.kind == "uniform":
            return d.FloatDistribution(*self.values)
        if self.kind == "int":
            return d.IntDistribution(*self.values)
        return d.CategoricalDistribution(list(self.values))

    def to_mutation(self):
        """PBT's form: a choice is a list (explore steps to a neighbour), a range a distribution
        (explore multiplies by 0.8 or 1.2, or resamples)."""
        return list(self.values) if self.kind == "choice" else self.to_tune()

    def clamp(self, value):
        """`value` moved into the range: PBT's multiplications must not leave the space."""
        if self.kind == "choice":
            return value
        low, high = self.values
        v = min(max(value, low), high)
        return int(round(v)) if self.kind == "int" else float(v)

    def contains(self, value) -> bool:
        """Whether the distribution can propose `value` (a baseline outside it is still run)."""
        if self.kind == "choice":
            return value in self.values
        return self.values[0] <= value <= self.values[1]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{{{', '.join(map(str, self.values))}}}"
        return f"{self.kind}[{self.values[0]:g}, {self.values[1]:g}]"


def load_space(path: str | Path, base: Config | None = None) -> dict[str, Param]:
    """Parse and check a search-space file against `base` (the sweep's fixed config)."""
    raw = load_yaml(path)
    if not raw:
        raise LmganError(f"{path}: the search space is empty")
    return parse_space(raw, str(path), base or Config())


def parse_space(raw: dict, source: str, base: Config) -> dict[str, Param]:
    known = set(Config.__dataclass_fields__)
    space = {}
    for key, spec in raw.items():
        where = f"{source}: {key}"
        if key not in known:
            raise LmganError(f"{source}: unknown search-space key {key!r} (not a config key)")
        if key in NOT_SEARCHABLE:
            raise LmganError(f"{where}: cannot be searched (set it with --set or the sweep options)")
        space[key] = param = parse_param(key, spec, where)
        for v in param.values:   # bounds and choices must each give a valid config
            validate(apply_overrides(base, {key: v}, where))
    return space


def parse_param(key: str, spec, where: str) -> Param:
    """One key's Param from its YAML form `{kind: values}`, the form and the range checked but not
    what the values do to a config (`parse_space` checks that): `lmgan report` reads a sweep's
    space back this way when it was valid against that sweep's fixed config, not the defaults."""
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in KINDS):
        raise LmganError(f"{where}: expected one of {{{': ..., '.join(KINDS)}: ...}}")
    kind, values = next(iter(spec.items()))
    return _param(key, kind, values, where)


def _param(key: str, kind: str, values, where: str) -> Param:
    if not isinstance(values, list) or not values:
        raise LmganError(f"{where}: {kind} needs a non-empty list")
    if kind == "choice":
        if len(set(map(repr, values))) != len(values):
            raise LmganError(f"{where}: choice lists a value twice")
        return Param(key, kind, tuple(values))
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise LmganError(f"{where}: {kind} needs [low, high] numbers")
    low, high = values
    if kind == "int" and not all(float(v).is_integer() for v in values):
        raise LmganError(f"{where}: int needs integer bounds")
    if not low < high:
        raise LmganError(f"{where}: empty range [{low}, {high}] (low must be below high)")
    if kind == "loguniform" and low <= 0:
        raise LmganError(f"{where}: loguniform needs low > 0")
    if kind == "int":
        return Param(key, kind, (int(low), int(high)))
    return Param(key, kind, (float(low), float(high)))


def to_tune(space: dict[str, Param]) -> dict:
    return {key: p.to_tune() for key, p in space.items()}


def to_optuna(space: dict[str, Param]) -> dict:
    return {key: p.to_optuna() for key, p in space.items()}


def dump_space(space: dict[str, Param]) -> dict:
    """The YAML form again (logged on the sweep's MLflow run)."""
    return {key: {p.kind: list(p.values)} for key, p in space.items()}
