"""What the sweep driver prints while trials run: one line per trial evaluation and one line for
the sweep, instead of Ray Tune's status tables (those come back with --verbose).

    t02 4b1d41f9  iter  300/1000  0.93 it/s  motion_corr 0.104 (its best 0.104; sweep 0.212)  ~13 min left
    sweep demo-...: 1 finished, 1 stopped, 1 running, 1 to start of 4; 9.8 min elapsed, ≤ 31 min left

A trial ASHA stops is said to be stopped, at which rung; an errored one, with its reason; a
PBT trial that continues from another's checkpoint, with its values before and after. The
sweep's estimate assumes no further stops, so it is an upper bound.
"""

from __future__ import annotations

import re
import sys
import time

from ray.tune import Callback

from lmgan.errors import first_line
from lmgan.sweep import outcome
from lmgan.sweep.plan import is_baseline
from lmgan.sweep.tracking import short
from lmgan.sweep.schema import EXPLOITED, ERRORED, FINISHED, IT_PER_S, ITER, STOPPED, Exploit


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5940 else f"{seconds / 3600:.1f} h"


def trial_name(trial) -> str:
    """t01, t02, ... in the order Tune created the trials (its experiment tag starts with that
    number): the name the progress lines, the trial's process and its MLflow run share."""
    number = re.match(r"\d+", str(trial.experiment_tag))     # PBT appends "@perturbed[...]"
    n = int(number.group()) if number else 0
    # Tune's own variant generator (PBT's) counts from 0 and names trials <hash>_00000; a
    # searcher (Optuna) counts from 1
    own = re.search(r"_\d{5}$", str(trial.trial_id))
    return f"t{n + 1 if own else n:02d}"


def asha_rungs(grace: int, max_iters: int, reduction_factor: int = 3) -> list[int]:
    """The iterations at which ASHA compares trials: grace × rf^k up to max_iters."""
    rungs, at = [], grace
    while at <= max_iters:
        rungs.append(at)
        at *= reduction_factor
    return rungs


class SweepProgress(Callback):
    def __init__(self, plan, out=None):
        self.plan, self.out = plan, out          # None: stderr (looked up when printing: picklable)
        self.higher = plan.mode == "max"
        self.names: dict[str, str] = {}          # trial id → t01, t02, ... (trial_name)
        self.points: dict[str, list] = {}        # trial id → its (iteration, objective) reports
        self.best: dict[str, float] = {}         # trial id → its judged value so far (outcome.judged)
        self.reached: dict[str, int] = {}        # trial id → iterations reported
        self.ended: dict[str, str] = {}          # trial id → finished | stopped | errored
        self.t0 = time.time()

    # ----------------------------------------------------------------------------- Tune's hooks
    def on_trial_start(self, iteration, trials, trial, **info):
        self.names[trial.trial_id] = self._named(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid, obj = trial.trial_id, self.plan.objective
        if tid not in self.names:
            self.names[tid] = self._named(trial)
        it = int(result.get(ITER, 0))
        if exploit := result.get(EXPLOITED):
            self._say(self.exploit_line(tid, Exploit.from_json(exploit)))
        elif it == self.reached.get(tid):   # a paused trial at its end, resumed to say it again
            return
        self.reached[tid] = it
        value, rate = result.get(obj), result.get(IT_PER_S) or 0.0
        if value is not None:
            self.points.setdefault(tid, []).append((it, value))
            if judged := outcome.judged(self.points[tid], self.plan.mode, self.plan.judged_by_last):
                self.best[tid] = judged[0]
        left = f"  ~{_minutes((self.plan.max_iters - it) / rate)} left" if rate > 0 and it < self.plan.max_iters else ""
        if self.plan.multi_objective:       # no one "best": each objective's value
            score = "  ".join(f"{n} {result[n]:.3g}" if result.get(n) is not None else f"{n} —"
                              for n, _ in self.plan.goals)
        else:
            its = "its last" if self.plan.judged_by_last else "its best"
            score = (f"{obj} {value:.3g} ({its} {self.best[tid]:.3g}; sweep {self._sweep_best():.3g})"
                     if value is not None else f"{obj} —")
        self._say(f"{self._name(tid)}  iter {it:>{len(str(self.plan.max_iters))}}/{self.plan.max_iters}  "
                  f"{rate:.2f} it/s  {score}{left}")
        self._say(self.sweep_line(trials))

    def on_trial_complete(self, iteration, trials, trial, **info):
        tid = trial.trial_id
        it = int((trial.last_result or {}).get(ITER, self.reached.get(tid, 0)))
        best = f"; best {self.plan.objective} {self.best[tid]:.3g}" if tid in self.best else ""
        if it >= self.plan.max_iters:
            self.ended[tid] = FINISHED
            self._say(f"{self._name(tid)} finished at iteration {it}{best}")
        elif self.plan.scheduler != "asha":
            self.ended[tid] = STOPPED
            self._say(f"{self._name(tid)} stopped at iteration {it}{best}")
        else:
            rung = max((r for r in asha_rungs(self.plan.grace_iters, self.plan.max_iters) if r <= it), default=it)
            self.ended[tid] = STOPPED
            self._say(f"{self._name(tid)} stopped by ASHA at the {rung}-iteration rung "
                      f"(below the rung's best third){best}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = ERRORED
        why = ""
        path = getattr(trial, "error_file", None)
        if path:
            try:
                lines = [ln for ln in open(path).read().strip().splitlines() if ln.strip()]
                why = f": {first_line(Exception(lines[-1]), 200)}" if lines else ""
            except OSError:
                pass
        self._say(f"{self._name(trial.trial_id)} errored{why} (its MLflow run has the reason)")

    # ----------------------------------------------------------------------------- the lines
    def sweep_line(self, trials) -> str:
        counts = {s: sum(v == s for v in self.ended.values()) for s in (FINISHED, STOPPED, ERRORED)}
        running = len(self.names) - len(self.ended)
        waiting = max(self.plan.trials - len(self.names), 0)
        parts = [f"{n} {s}" for s, n in counts.items() if n] + [f"{running} running"]
        if waiting:
            parts.append(f"{waiting} to start")
        elapsed = time.time() - self.t0
        done = sum(self.reached.values())
        remaining = sum(self.plan.max_iters - self.reached.get(t, 0) for t in self.names if t not in self.ended)
        remaining += waiting * self.plan.max_iters
        eta = f", ≤ {_minutes(remaining * elapsed / done)} left" if done else ""
        return f"sweep {self.plan.name}: {', '.join(parts)} of {self.plan.trials}; {_minutes(elapsed)} elapsed{eta}"

    def exploit_line(self, tid: str, exploit: Exploit) -> str:
        """A PBT exploit: whose checkpoint the trial continues from, and its values before → after."""
        changes = ", ".join(f"{k} {'?' if exploit.was.get(k) is None else short(exploit.was[k])} → {short(v)}"
                            for k, v in exploit.new.items())
        return (f"{self._name(tid)} continues from {self._name(exploit.from_trial)}'s checkpoint of iteration "
                f"{exploit.iter} (PBT): {changes}")

    def _sweep_best(self) -> float:
        values = list(self.best.values())
        return max(values) if self.higher else min(values)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.higher else a < b

    def _named(self, trial) -> str:
        baseline = is_baseline(getattr(trial, "config", None) or {}, self.plan.baseline)
        return trial_name(trial) + (" (baseline)" if baseline else "")

    def _name(self, tid: str) -> str:
        return f"{self.names.get(tid, 't??')} {tid}"

    def _say(self, line: str) -> None:
        print(line, file=self.out or sys.stderr, flush=True)
