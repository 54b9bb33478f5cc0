"""The study's page (the style of ``report.html``): the optimisation history (each trial's score and
the best so far), each hyper-parameter's importance (Optuna's fANOVA), and the trials as a table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..analysis.report import PAGE, figure_png, pyplot


def importances(study: Any) -> dict[str, float]:
    """fANOVA importance of each parameter (empty with fewer than two finished trials, or when every
    finished trial drew the same values)."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return {}
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError):  # no variation to explain
        return {}


def _history(study: Any) -> str:
    import optuna

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    ax.scatter([t.number for t in done], [t.value for t in done], color="#3b6ea5", label="finished", zorder=3)
    if pruned:
        last = [max(t.intermediate_values.values(), default=float("nan")) for t in pruned]
        ax.scatter([t.number for t in pruned], last, color="#aaaaaa", marker="x", label="pruned (last score)")
    best, xs, ys = float("-inf"), [], []
    for t in sorted(done, key=lambda t: t.number):
        best = max(best, t.value)
        xs.append(t.number)
        ys.append(best)
    ax.step(xs, ys, where="post", color="#c0392b", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation score")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return figure_png(fig)


def _importance_figure(values: dict[str, float]) -> str | None:
    if not values:
        return None
    plt = pyplot()
    names = list(values)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.4 * len(names)))
    ax.barh(names, [values[n] for n in names], color="#3b6ea5")
    ax.set_xlabel("importance (fANOVA: share of the score's variance)")
    ax.grid(alpha=0.3, axis="x")
    return figure_png(fig)


def write_report(study: Any, path: Path, recipe: Path | None) -> Path:
    values = importances(study)
    figures = [f for f in (_history(study), _importance_figure(values)) if f]
    params = sorted({k for t in study.trials for k in t.params})
    head = "".join(
        f"<th>{html.escape(c)}</th>" for c in ["trial", "state", "score", "epochs", *params, "run"]
    )
    rows = []
    for t in study.trials:
        cells = [t.number, t.state.name.lower(), "" if t.value is None else f"{t.value:.4f}",
                 t.user_attrs.get("epochs", ""), *(t.params.get(p, "") for p in params), t.user_attrs.get("run", "")]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    best = study.best_trial if any(t.value is not None for t in study.trials) else None
    summary = (
        f"Study {html.escape(study.study_name)}: {len(study.trials)} trials. "
        + (f"Best: trial {best.number}, validation score {best.value:.4f}. " if best else "")
        + (f"Recipe: <code>imgcls train --config {html.escape(str(recipe))}</code>." if recipe else "")
    )
    imp = ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in values.items()) or "not enough finished trials"
    body = (f"<p>{summary}</p><p>Importance (fANOVA): {imp}.</p>"
            + "<section><h2>Figures</h2>" + "".join(f'<img src="{f}" alt="tune figure">' for f in figures) + "</section>"
            + f"<section><h2>Trials</h2><div style='overflow-x:auto'><table><tr>{head}</tr>{''.join(rows)}</table></div></section>")  # fmt: skip
    path.write_text(PAGE.format(title="imgcls tune", body=body))
    return path
