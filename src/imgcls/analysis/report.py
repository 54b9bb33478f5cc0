"""One self-contained ``report.html`` per evaluation: every plot and image inlined (PNG, base64),
no scripts, no external files — it opens anywhere and can be mailed.

Sections: summary; per-class table; confusion-matrix heatmap and most-confused pairs; training
curves (the run's metrics.jsonl); reliability diagram; ROC and precision-recall curves; the
top-losses gallery; Grad-CAM or attention overlays.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import metrics as M
from ..run import RunFolder

TOP_LOSSES = 16
EXPLAINED = 6


def figure_png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_png(pixels: np.ndarray, scale: int = 1) -> str:
    img = Image.fromarray(pixels if pixels.shape[-1] != 1 else pixels[..., 0])
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(cm: np.ndarray, classes: list[str]) -> str:
    plt = pyplot()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, label="share of the true class")
    ax.set_title("confusion matrix")
    return figure_png(fig)


def curves_figure(history: list[dict[str, Any]]) -> str | None:
    if not history:
        return None
    plt = pyplot()
    epochs = [h["epoch"] + 1 for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, [h["train"]["loss"] for h in history], "o-", label="train")
    b.plot(epochs, [h["train"]["acc"] for h in history], "o-", label="train")
    if all(h["val"] for h in history):  # a run without a val split has train curves only
        a.plot(epochs, [h["val"]["loss"] for h in history], "o-", label="val")
        b.plot(epochs, [h["val"]["acc"] for h in history], "o-", label="val")
    a.set_title("loss")
    b.set_title("accuracy")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return figure_png(fig)


def reliability_figure(cal: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    edges = np.array(cal["bins"])
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    count = np.array(cal["count"])
    acc = np.where(count > 0, cal["accuracy"], 0)
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {cal['ece']:.3f})")
    ax.legend(loc="upper left")
    return figure_png(fig)


def roc_pr_figure(y: np.ndarray, score: np.ndarray, names: list[str]) -> str:
    """ROC and PR curves; ``y``/``score`` (N,) for binary, (N, L) per label for multi-label."""
    plt = pyplot()
    y, score = (y[:, None], score[:, None]) if y.ndim == 1 else (y, score)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for j, name in enumerate(names):
        if not y[:, j].any() or y[:, j].all():
            continue
        fpr, tpr, _ = M.roc_curve(y[:, j], score[:, j])
        a.plot(fpr, tpr, label=f"{name} (AUC {M.roc_auc(y[:, j], score[:, j]):.3f})")
        prec, rec, _ = M.precision_recall_curve(y[:, j], score[:, j])
        b.step(rec, prec, where="post", label=f"{name} (AP {M.average_precision(y[:, j], score[:, j]):.3f})")
    a.plot([0, 1], [0, 1], "k--", alpha=0.5)
    a.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    b.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure_png(fig)


def overlay(pixels: np.ndarray, heat: np.ndarray) -> np.ndarray:
    plt = pyplot()
    rgb = pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, -1)
    colored = (plt.get_cmap("jet")(heat)[..., :3] * 255).astype(np.float64)
    return (0.55 * rgb + 0.45 * colored).clip(0, 255).astype(np.uint8)


def write_report(clf: Any, result: Any, run: RunFolder, path: Path) -> None:
    m, classes, kind = result.metrics, clf.classes, clf.task.kind
    parts: list[str] = []
    summary = {"model": m.get("model"), "data": m.get("data"), "split": m.get("split"), "images": m.get("images"),
               "task": kind, "test-time augmentation": m.get("tta"), "temperature": round(float(m.get("temperature", 1)), 4)}  # fmt: skip
    headline = {k: m[k] for k in ("accuracy", "top5", "balanced_accuracy", "loss", "ece", "roc_auc", "pr_auc", "mAP",
                                   "subset_accuracy", "hamming_loss") if m.get(k) is not None}  # fmt: skip
    headline.update({f"{avg} F1": m[avg]["f1"] for avg in ("macro", "micro", "weighted")})
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items()
    )
    rows += "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" for k, v in headline.items())
    parts.append(f'<section id="summary"><h2>Summary</h2><table>{rows}</table></section>')

    per = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{m['precision'][i]:.3f}</td><td>{m['recall'][i]:.3f}</td>"
        f"<td>{m['f1'][i]:.3f}</td><td>{int(m['support'][i])}</td></tr>"
        for i, c in enumerate(classes)
    )
    parts.append(f'<section id="per-class"><h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th>'
                 f"<th>F1</th><th>support</th></tr>{per}</table></section>")  # fmt: skip

    if kind != "multilabel":
        cm = np.asarray(m["confusion_matrix"])
        parts.append(
            f'<section id="confusion"><h2>Confusion matrix</h2><img alt="confusion matrix" src="{confusion_figure(cm, classes)}">'
        )
        off = [
            (cm[i, j], classes[i], classes[j])
            for i in range(len(classes))
            for j in range(len(classes))
            if i != j and cm[i, j]
        ]
        pairs = "".join(
            f"<li>{html.escape(t)} → {html.escape(p)}: {n}</li>" for n, t, p in sorted(off, reverse=True)[:10]
        )
        parts.append(
            f"<h3>Most confused (true → predicted)</h3><ol>{pairs or '<li>none</li>'}</ol></section>"
        )

    history = list(run.read_lines(run.metrics))
    curves = curves_figure(history)
    if curves:
        parts.append(
            f'<section id="curves"><h2>Training curves</h2><img alt="training curves" src="{curves}"></section>'
        )
    if "calibration" in m:
        parts.append(
            f'<section id="calibration"><h2>Calibration</h2><img alt="reliability diagram" src="{reliability_figure(m["calibration"])}"></section>'
        )
    if kind == "binary":
        fig = roc_pr_figure(result.targets, result.probs[:, 1], [classes[1]])
        parts.append(
            f'<section id="roc"><h2>ROC and precision-recall</h2><img alt="ROC and PR curves" src="{fig}"></section>'
        )
    elif kind == "multilabel":
        fig = roc_pr_figure(result.targets, result.probs, classes)
        parts.append(
            f'<section id="roc"><h2>ROC and precision-recall per label</h2><img alt="ROC and PR curves" src="{fig}"></section>'
        )

    parts.append(_top_losses(clf, result))
    parts.append(_explanations(clf, result))
    page = PAGE.format(
        title=html.escape(f"imgcls report: {m.get('model')} on {m.get('data')} ({m.get('split')})"),
        body="\n".join(parts),
    )
    path.write_text(page)


def _per_sample_loss(clf: Any, result: Any) -> np.ndarray:
    p, y = result.probs, result.targets
    if clf.task.kind == "multilabel":
        q = np.clip(p, 1e-12, 1 - 1e-12)
        return -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(1)
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))


def _top_losses(clf: Any, result: Any) -> str:
    losses = _per_sample_loss(clf, result)
    order = np.argsort(-losses)[:TOP_LOSSES]
    cells = []
    for i in order:
        pixels = clf.preprocess.pixels(result.sources[i]).permute(1, 2, 0).numpy()
        scale = max(1, 96 // pixels.shape[0])
        if clf.task.kind == "multilabel":
            true = ", ".join(c for c, t in zip(clf.classes, result.targets[i]) if t) or "(none)"
            pred = (
                ", ".join(c for c, q in zip(clf.classes, result.probs[i]) if q >= clf.task.threshold)
                or "(none)"
            )
            text = f"true: {true}<br>predicted: {pred}"
        else:
            j = int(result.probs[i].argmax())
            text = (f"true: {html.escape(clf.classes[result.targets[i]])}<br>predicted: {html.escape(clf.classes[j])} "
                    f"{result.probs[i, j]:.2f}")  # fmt: skip
        name = html.escape(Path(str(result.names[i])).name)
        cells.append(f'<figure><img alt="{name}" src="{image_png(pixels, scale)}"><figcaption>{text}<br>loss {losses[i]:.2f}<br>'
                     f"<small>{name}</small></figcaption></figure>")  # fmt: skip
    return (
        f'<section id="top-losses"><h2>Top losses</h2><div class="gallery">{"".join(cells)}</div></section>'
    )


def _explanations(clf: Any, result: Any) -> str:
    from .cam import explain

    picks = list(range(min(EXPLAINED, len(result.sources))))
    if not picks:
        return ""
    pixels = torch.stack([clf.preprocess.pixels(result.sources[i]) for i in picks])
    x = clf.preprocess.normalizer(pixels)
    try:
        method, maps = explain(clf.model, x.to(clf.device))
    except (ValueError, RuntimeError, TypeError) as e:
        return f'<section id="explain"><h2>Where the model looks</h2><p>not available for this model ({html.escape(str(e))})</p></section>'
    cells = []
    for k, i in enumerate(picks):
        img = pixels[k].permute(1, 2, 0).numpy()
        scale = max(1, 96 // img.shape[0])
        label = html.escape(clf.classes[int(result.probs[i].argmax())])
        cells.append(f'<figure><img alt="input" src="{image_png(img, scale)}"><img alt="{method}" '
                     f'src="{image_png(overlay(img, maps[k].cpu().numpy()), scale)}"><figcaption>predicted {label}</figcaption></figure>')  # fmt: skip
    title = "Grad-CAM" if method == "grad-cam" else "Attention (last layer)"
    return f'<section id="explain"><h2>Where the model looks: {title}</h2><div class="gallery">{"".join(cells)}</div></section>'


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; }} th, td {{ padding: 0.2rem 0.7rem; border-bottom: 1px solid #ddd; text-align: left; }}
img {{ max-width: 100%; }} .gallery {{ display: flex; flex-wrap: wrap; gap: 0.8rem; }}
figure {{ margin: 0; font-size: 0.8rem; width: 200px; }} figure img {{ image-rendering: pixelated; width: 96px; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""
