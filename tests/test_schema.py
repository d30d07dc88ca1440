"""lmgan/sweep/schema.py is the one home of what a sweep writes: no tag, metric or file name is
spelled anywhere else in the product, and the typed records read back what they write."""

import ast
import re
from pathlib import Path

import pytest

from lmgan.sweep import schema

REPO = Path(__file__).resolve().parents[1]
PRODUCT = [p for p in [*(REPO / "lmgan").rglob("*.py"), *(REPO / "dashboards").glob("*.py")]
           if p != REPO / "lmgan" / "sweep" / "schema.py"]
# A tag (lmgan.best_trial, mlflow.parentRunId) or tag prefix (lmgan.exploit.), not a module path
# (lmgan.sweep.driver: two dots and more) nor a file name (mlflow.db).
TAG = re.compile(r"^(lmgan|mlflow)\.[A-Za-z_]+\.?$")
# Metric names built from a key: best_<objective>, baseline_<objective>, schedule.<key>, time_<part>_s.
PREFIXES = ("best_", "baseline_", "schedule.", "time_")
FILES = {"lineage.json", "origin.json", "ckpt.pt", "mlflow_unsent", "summary.csv", "summary.md",
         "search_space.yaml", "error_config.yaml", "mlflow_failed_sends", "wall_s"}
# Package names, as in `python -m lmgan.bench` (the tag lmgan.sweep is also a package: its spelling
# as a literal is not caught).
NOT_TAGS = {"lmgan.sweep", "lmgan.bench", "lmgan.data", "lmgan.metrics", "mlflow.db"}


def _strings(path: Path):
    """(line, text, is a metric name built from a key) of every string in the code, docstrings
    left out; an f-string counts as a metric name when it is a prefix and one value (best_{key},
    schedule.{key}) or time_{part}_s."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    built = {id(n.values[0]) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)
             and isinstance(n.values[0], ast.Constant) and isinstance(n.values[1:2] and n.values[1], ast.FormattedValue)
             and (len(n.values) == 2 or (len(n.values) == 3 and getattr(n.values[2], "value", None) == "_s"))}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            yield n.lineno, n.value, id(n) in built


def test_no_tag_metric_or_file_name_is_spelled_outside_the_schema():
    spelled = []
    for path in PRODUCT:
        is_sweep = "sweep" in path.parts or path.parent.name == "dashboards"
        for line, text, formatted in _strings(path):
            where = f"{path.relative_to(REPO)}:{line}: {text!r}"
            if TAG.match(text) and text not in NOT_TAGS:
                spelled.append(where)
            elif is_sweep and text in FILES:
                spelled.append(where)
            elif is_sweep and formatted and text.startswith(PREFIXES):
                spelled.append(where)
    assert not spelled, "use lmgan.sweep.schema's names:\n" + "\n".join(spelled)


def test_every_name_the_schema_holds_is_described_in_its_docstring():
    names = {k: v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str)
             and TAG.match(v)}
    undocumented = [k for k in names if k not in schema.__doc__]
    assert not undocumented, f"schema.py's layout does not mention {undocumented}"


def test_an_exploit_reads_back_what_it_writes_and_older_records_still_read():
    e = schema.Exploit(iter=15, from_trial="t_b", at=20, was={"lr_g": 1e-4}, donor={"lr_g": 2e-4},
                       new={"lr_g": 2.4e-4})
    assert schema.Exploit.from_json(e.to_json()) == e
    older = '{"iter": 5, "from": "t_c", "new": {"lr_d": 0.001}}'       # as trainable.py wrote them
    assert schema.Exploit.from_json(older).from_trial == "t_c"
    warned = []
    tags = {schema.exploit_tag(2): e.to_json(), schema.exploit_tag(1): older, schema.exploit_tag(3): "{}"}
    got = schema.exploits_from_tags(tags, warned.append)
    assert [x.iter for x in got] == [5, 15] and len(warned) == 1 and "lmgan.exploit.03" in warned[0]
    with pytest.raises(ValueError):
        schema.Exploit.from_dict({"iter": "5", "from": "t"})


def test_objectives_round_trip_through_tags_and_older_sweeps_fall_back():
    o = schema.Objectives((("fvd", "min"), ("av_align", "max")), "fifo")
    assert schema.Objectives.from_tags(o.to_tags()) == o and o.multi and o.judged_by_last
    old = schema.Objectives.from_tags({}, {"objective": "fvd"}, registry_mode=lambda n: "min")
    assert old.goals == (("fvd", "min"),) and not old.judged_by_last
    assert schema.Objectives((("ssim", "max"),), "pbt").judged_by_last
