"""The report's plotly charts, each a page snippet marked safe (`Markup`): the one kind of HTML
the template inserts raw. They take plain data and the words to show, so that every text on the
page is written in one place (page.py); plotly.js itself is written once beside the page.
"""

from __future__ import annotations

import warnings

from markupsafe import Markup

from lmgan.sweep.report.queries import Trial
from lmgan.sweep.schema import Exploit

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac")   # a trial's colour, the same in the lineage and the schedules


def fig_html(fig, div_id: str, height: int) -> Markup:
    """A plotly chart as a page snippet, marked safe (plotly escapes the strings it embeds in its
    JSON); plotly.js is not included, the page loads it from its files folder."""
    fig.update_layout(height=height, margin=dict(l=60, r=30, t=40, b=50), template="plotly_white")
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                              default_height=f"{height}px", config={"displaylogo": False}))


def importance_chart(imp: dict[str, float], objective: str) -> Markup:
    """Optuna's importances as horizontal bars, the most important on top."""
    import plotly.graph_objects as go
    order = sorted(imp, key=imp.get)
    fig = go.Figure(go.Bar(x=[imp[k] for k in order], y=order, orientation="h", marker_color="#4c78a8",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title=f"importance for {objective}", yaxis_title=None)
    return fig_html(fig, "importance-chart", max(220, 60 + 40 * len(order)))


def parallel_chart(study, objective: str) -> Markup | None:
    """Optuna's parallel-coordinate plot of the study: which param values the good trials share."""
    import optuna
    if study is None or not study.trials:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_parallel_coordinate(study, target_name=objective)
    fig.update_layout(title=None)
    return fig_html(fig, "parallel-coordinates", 460)


def history_chart(trials: list[Trial], best: Trial | None, objective: str) -> Markup | None:
    """Every trial's objective over iterations, the best one's line thickest."""
    import plotly.graph_objects as go
    if not any(t.history for t in trials):
        return None
    fig = go.Figure()
    for t in trials:
        if t.history:
            fig.add_trace(go.Scatter(x=[s for s, _ in t.history], y=[v for _, v in t.history],
                                     mode="lines+markers", name=t.trial_id,
                                     line=dict(width=4 if t is best else 1.5)))
    fig.update_layout(xaxis_title="iteration", yaxis_title=objective)
    return fig_html(fig, "objective-history", 460)


def colours(trials: list[Trial]) -> dict[str, str]:
    return {t.trial_id: PALETTE[i % len(PALETTE)] for i, t in enumerate(trials)}


def lineage_chart(trials: list[Trial], exploits: list[tuple[str, Exploit, str]]) -> Markup | None:
    """A lane per trial over the iterations it trained, and an arrow per exploit (trial id, the
    exploit, its hover text) from the donor's lane to the trial's at the donor checkpoint's
    iteration: which weights each trial ends with."""
    import plotly.graph_objects as go
    ends = {t.trial_id: max([t.iters or 0] + [s for h in t.schedule.values() for s, _ in h]) for t in trials}
    if not any(ends.values()):
        return None
    palette, lanes = colours(trials), [t.trial_id for t in trials]
    fig = go.Figure()
    for t in trials:
        fig.add_trace(go.Scatter(x=[0, ends[t.trial_id]], y=[t.trial_id] * 2, mode="lines", name=t.trial_id,
                                 line=dict(width=8, color=palette[t.trial_id]), opacity=0.6, showlegend=False,
                                 hovertemplate=f"{t.trial_id}: iterations 0–{ends[t.trial_id]}<extra></extra>"))
    if exploits:
        x, y, text, symbols = [], [], [], []
        for trial, e, hover in exploits:
            x += [e.iter, e.iter, None]
            y += [e.from_trial, trial, None]
            text += [hover, hover, ""]
            symbols += ["circle", "arrow", "circle"]
            if e.from_trial not in lanes:
                lanes.append(e.from_trial)
        fig.add_trace(go.Scatter(x=x, y=y, text=text, mode="lines+markers", name="exploit",
                                 hoverinfo="text", line=dict(color="#333", width=1.5),
                                 marker=dict(symbol=symbols, size=[7, 13, 0] * len(exploits),
                                             angleref="previous", color="#333"), showlegend=False))
    fig.update_layout(xaxis_title="iteration", yaxis_title=None, hovermode="closest",
                      yaxis=dict(type="category", categoryorder="array", categoryarray=lanes[::-1]))
    return fig_html(fig, "lineage-chart", max(220, 90 + 36 * len(lanes)))


def schedules_chart(trials: list[Trial], keys: list[str]) -> Markup | None:
    """One subplot per scheduled key, each trial its values over iterations as a step line (held
    from one report to the next); a log axis for learning rates and values spanning decades."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    if not keys:
        return None
    palette = colours(trials)
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, subplot_titles=keys,
                        vertical_spacing=min(0.12, 0.5 / len(keys)))
    for row, k in enumerate(keys, 1):
        for t in trials:
            if points := t.schedule.get(k):
                fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers",
                                         line=dict(shape="hv", color=palette[t.trial_id]), marker=dict(size=4),
                                         name=t.trial_id, legendgroup=t.trial_id, showlegend=row == 1,
                                         hovertemplate=f"{t.trial_id}: {k} %{{y:.3g}} at iteration %{{x}}"
                                                       f"<extra></extra>"), row=row, col=1)
        values = [v for t in trials for _, v in t.schedule.get(k, [])]
        if values and min(values) > 0 and (k.startswith("lr") or max(values) > 10 * min(values)):
            fig.update_yaxes(type="log", row=row, col=1)
    fig.update_xaxes(title_text="iteration", row=len(keys), col=1)
    return fig_html(fig, "schedules-chart", 80 + 240 * len(keys))


def pareto_chart(trials: list[Trial], names: list[str], labels: list[str], hover: dict[str, str]) -> Markup:
    """The trials' scores on the objectives `names` (axis titles `labels`; `hover`: trial id →
    its text). Two objectives: a scatter, the front's trials large and joined in order, the others
    faint; three or more: a scatter matrix of every pair, marked the same way."""
    import plotly.graph_objects as go

    def score(t, n):
        return t.outcome.scores[n]

    groups = [("Pareto front", sorted((t for t in trials if t.pareto), key=lambda t: score(t, names[0])),
               dict(size=14, color="#e0a800", line=dict(width=1, color="#333")), 1.0),
              ("dominated", [t for t in trials if not t.pareto], dict(size=8, color="#888"), 0.4)]
    fig = go.Figure()
    for name, group, marker, opacity in groups:
        if not group:
            continue
        text = [hover[t.trial_id] for t in group]
        if len(names) == 2:
            on_front = name == "Pareto front"      # its trials named beside their points
            fig.add_trace(go.Scatter(x=[score(t, names[0]) for t in group], y=[score(t, names[1]) for t in group],
                                     mode="lines+markers+text" if on_front else "markers", name=name,
                                     marker=marker, opacity=opacity, hovertext=text, hoverinfo="text",
                                     text=[t.trial_id for t in group] if on_front else None,
                                     textposition="top right", line=dict(color="#e0a800", width=2)))
        else:
            fig.add_trace(go.Splom(dimensions=[dict(label=lab, values=[score(t, n) for t in group])
                                               for n, lab in zip(names, labels)],
                                   name=name, marker=marker, opacity=opacity, text=text, hoverinfo="text",
                                   diagonal_visible=False, showupperhalf=False))
    if len(names) == 2:
        fig.update_layout(xaxis_title=labels[0], yaxis_title=labels[1])
        return fig_html(fig, "pareto-chart", 480)
    return fig_html(fig, "pareto-chart", 200 * len(names) + 100)
