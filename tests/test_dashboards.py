"""dashboards/lmgan-sweep.json queries exactly the gauges lmgan/sweep/telemetry.py exports.

Every lmgan metric a panel or a variable queries is one the trainable exports, every exported
gauge is plotted somewhere, and every label a query, a variable or a legend uses on an lmgan
metric is one that metric carries (sweep, trial and its own extra tag) or one Ray adds. Plus the
structure Grafana needs: unique panel ids, a grid position inside the 24 columns, a datasource
that is the dashboard's Prometheus variable, unique refIds and a query in every target. And the
"latest" panels (instant queries) hold a trial's progress and results after it ends
(last_over_time over the dashboard's range) but not what only a running trial has (speed, memory).
"""

import json
import re
from pathlib import Path

import pytest

from lmgan.sweep import telemetry

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "dashboards" / "lmgan-sweep.json"
# Labels Ray or Prometheus put on every exported series, usable in any lmgan selector.
RAY_LABELS = {"SessionName", "NodeAddress", "instance", "job", "Component", "WorkerId", "Version"}
LMGAN = re.compile(r"\bray_lmgan_\w+")
SELECTOR = re.compile(r"\b(ray_lmgan_\w+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r"(\w+)\s*(=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\(\s*(\w+)\s*(\{[^}]*\})?\s*,\s*(\w+)\s*\)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
HELD_SELECTOR = re.compile(r"last_over_time\(\s*(ray_lmgan_\w+)\s*(?:\{[^}]*\})?\s*\[\$__range\]\s*\)")


@pytest.fixture(scope="module")
def dash():
    return json.loads(DASHBOARD.read_text())


def _panels(dash):
    """Every panel, rows' nested panels included."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _targets(dash):
    return [(p, t) for p in _panels(dash) for t in p.get("targets", [])]


def _variable_queries(dash):
    out = []
    for v in dash["templating"]["list"]:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        out.append(q["query"] if isinstance(q, dict) else q)
        if v.get("definition"):
            out.append(v["definition"])
    return out


def _allowed_labels(metric):
    _, extra = telemetry.GAUGES[metric.removeprefix("ray_")]
    return set(telemetry.TAGS) | ({extra} if extra else set()) | RAY_LABELS


def test_every_queried_lmgan_metric_is_exported(dash):
    exported = telemetry.prometheus_names()
    queries = [t["expr"] for _, t in _targets(dash)] + _variable_queries(dash)
    used = {m for q in queries for m in LMGAN.findall(q)}
    assert used, "the dashboard queries no lmgan metric"
    assert used <= exported, f"not exported by lmgan/sweep/telemetry.py: {sorted(used - exported)}"


def test_every_exported_gauge_has_a_panel(dash):
    plotted = {m for _, t in _targets(dash) for m in LMGAN.findall(t["expr"])}
    missing = telemetry.prometheus_names() - plotted
    assert not missing, f"exported but plotted nowhere: {sorted(missing)}"


def test_selectors_use_only_labels_the_metric_carries(dash):
    queries = [t["expr"] for _, t in _targets(dash)] + _variable_queries(dash)
    for q in queries:
        for metric, braces in SELECTOR.findall(q):
            labels = set(MATCHER.findall(braces or ""))
            names = {name for name, _ in labels}
            bad = names - _allowed_labels(metric)
            assert not bad, f"{metric} has no label(s) {sorted(bad)}: {q}"


def test_groupings_and_legends_use_only_labels_the_metric_carries(dash):
    for panel, t in _targets(dash):
        metrics = set(LMGAN.findall(t["expr"]))
        if not metrics:
            continue
        assert not re.search(r"ray_(?!lmgan_)\w+", t["expr"]), "keep lmgan and Ray metrics in separate queries"
        allowed = set.intersection(*(_allowed_labels(m) for m in metrics))
        grouped = {g.strip() for clause in GROUPING.findall(t["expr"]) for g in clause.split(",") if g.strip()}
        assert grouped <= allowed, f"{panel['title']}: grouping by {sorted(grouped - allowed)}"
        legend = set(LEGEND_LABEL.findall(t.get("legendFormat", "")))
        assert legend <= allowed, f"{panel['title']}: legend label(s) {sorted(legend - allowed)}"
        # A label the legend names must survive the aggregation.
        if grouped and legend:
            assert legend <= grouped, f"{panel['title']}: legend {sorted(legend)} vs by ({sorted(grouped)})"


def test_label_values_variables_name_real_labels(dash):
    found = 0
    for q in _variable_queries(dash):
        for metric, braces, label in LABEL_VALUES.findall(q):
            if not metric.startswith("ray_lmgan_"):
                continue
            found += 1
            assert metric in telemetry.prometheus_names(), q
            assert label in _allowed_labels(metric), q
    assert found


def test_variables(dash):
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    sweep_q = variables["sweep"]["query"]
    assert (sweep_q["query"] if isinstance(sweep_q, dict) else sweep_q) == "label_values(ray_lmgan_iteration, sweep)"
    assert variables["trial"]["multi"] and variables["trial"]["includeAll"]
    # Every $variable a query or a title uses is defined.
    texts = [t["expr"] for _, t in _targets(dash)] + _variable_queries(dash) + \
            [p.get("title", "") for p in _panels(dash)]
    used = {m for s in texts for m in re.findall(r"\$\{?(\w+)", s)} - {"__interval", "__rate_interval", "__range"}
    assert used <= set(variables), f"undefined variables: {sorted(used - set(variables))}"
    for p in _panels(dash):
        if p.get("repeat"):
            assert p["repeat"] in variables and variables[p["repeat"]].get("multi"), p["title"]


def test_grafana_structure(dash):
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["uid"] and dash["title"]
    panels = _panels(dash)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied = set()
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("x", "y", "w", "h")), p["title"]
        assert 0 <= g["x"] and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"{p['title']} overlaps another panel"
        occupied |= cells
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"] == p["datasource"], p["title"]
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            assert t["expr"].count("{") == t["expr"].count("}"), t["expr"]
            assert t["expr"].count("[") == t["expr"].count("]"), t["expr"]


def test_latest_panels_hold_progress_and_results_after_a_trial_ends(dash):
    """Ray drops a gauge ~20 s after its trial stops re-sending it (telemetry.py): an instant
    query of a trial's progress or results reads the last value over the dashboard's range, one of
    a running trial's speed or memory reads only what is live now. Range queries (time series)
    plot what was exported, as it was: a finished trial's line ends where it ended."""
    held = {"ray_" + name for name in telemetry.HELD}
    assert held < telemetry.prometheus_names()
    holding = 0
    for panel, t in _targets(dash):
        used = LMGAN.findall(t["expr"])
        wrapped = HELD_SELECTOR.findall(t["expr"])
        if "last_over_time" in t["expr"] or "$__range" in t["expr"]:
            assert t.get("instant") and len(wrapped) == t["expr"].count("last_over_time"), \
                f"{panel['title']}: last_over_time(<metric>[$__range]) only in instant queries: {t['expr']}"
        if not used or not t.get("instant"):
            continue
        for metric in used:
            if metric in held:
                holding += 1
                assert metric in wrapped, f"{panel['title']}: hold {metric} with last_over_time(...[$__range])"
            else:
                assert metric not in wrapped, f"{panel['title']}: {metric} is live only, do not hold it"
    assert holding
