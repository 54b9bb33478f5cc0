"""Label issues found by `imgcls data clean` (issue 18): a training set with a share of its labels
flipped at random (seeded), the command run on it, and the precision and recall of its ranking in the
top share; then the same on the clean set (how much it flags there). Writes
benchmarks/label_issues/NAME.json and benchmarks/label_issues.md.

    .venv/bin/python benchmarks/label_issues.py --data mnist:/tmp/mnist --preset mnist-speedrun
    .venv/bin/python benchmarks/label_issues.py --data /tmp/cifar10 --preset cifar10-speedrun -- --epochs 4

MNIST's labels are flipped in a copy of its IDX files; an image folder's in a CSV label file over the
same images. Options after ``--`` go to `imgcls data clean`. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgcls.data.source import open_source

HERE = Path(__file__).parent
RESULTS = HERE / "label_issues"
FIGURE = HERE.parent / "docs" / "img" / "label_issues.png"  # the curve, shown in docs/clean.md


def flipped_copy(spec: str, share: float, seed: int, folder: Path) -> tuple[str, np.ndarray]:
    """(a data spec whose training labels have ``share`` flipped to another class, the flipped indices)."""
    source = open_source(spec)
    train = source.split("train")
    rng = np.random.default_rng(seed)
    n, k = len(train), source.num_classes
    flipped = np.sort(rng.choice(n, size=round(share * n), replace=False))
    labels = train.targets.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, k, len(flipped))) % k
    if source.kind == "mnist":
        root = Path(spec.split(":", 1)[1])
        for f in root.glob("*ubyte*"):
            (folder / f.name).symlink_to(f.resolve())
        name = next(f.name for f in root.glob("train-labels*"))
        (folder / name).unlink()
        raw = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
        (folder / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
        return f"mnist:{folder}", flipped
    path = folder / "noisy.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for p, t in zip(train.paths, labels):
            w.writerow([str(Path(p).resolve()), source.classes[t], "train"])
        for split, s in source.splits.items():
            if split != "train":
                for p, t in zip(s.paths, s.targets):
                    w.writerow([str(Path(p).resolve()), source.classes[t], split])
    return str(path), flipped


def run_clean(spec: str, out: Path, extra: list[str]) -> tuple[list[dict], np.ndarray, float]:
    """(the label-issue rows, ranked; the out-of-fold probabilities; the whole command's seconds)."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "imgcls", "data", "clean", spec, "--out", str(out), "--no-progress",
                        *extra], capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    rows = [
        row
        for row in csv.DictReader((out / "label_issues.csv").open())
        if row["reason"].startswith("label issue")
    ]
    return rows, np.load(out / "probabilities.npy"), time.perf_counter() - start


def index_of(spec: str, paths: list[str] | None) -> callable:
    if paths is None:
        return lambda name: int(re.search(r"#(\d+)$", name).group(1))
    where = {str(Path(p).resolve()): i for i, p in enumerate(paths)}
    return lambda name: where[str(Path(name).resolve())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="")
    ap.add_argument("--flip", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument(
        "--noisy-only", action="store_true", help="skip the clean-set run (its column reads 'not run')"
    )
    ap.add_argument("--report", action="store_true", help="only rewrite the table and the plot")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    if args.report:
        write_report()
        return
    extra = [*(["--preset", args.preset] if args.preset else []), *args.extra]
    train = open_source(args.data).split("train")
    find = index_of(args.data, getattr(train, "paths", None))
    result = {
        "data": args.data,
        "preset": args.preset,
        "extra": args.extra,
        "flip": args.flip,
        "images": len(train),
    }
    with tempfile.TemporaryDirectory() as tmp:
        noisy, flipped = flipped_copy(args.data, args.flip, args.seed, Path(tmp))
        rows, probs, seconds = run_clean(noisy, Path(tmp) / "noisy-report", extra)
        top = [find(r["file"]) for r in rows[: len(flipped)]]
        hits = int(np.isin(top, flipped).sum())
        # how good the fold models were: their out-of-fold accuracy on the true labels
        fold_accuracy = float((probs.argmax(1) == train.targets).mean())
        result["noisy"] = {"flipped": len(flipped), "flagged": len(rows), "top_hits": hits,
                           "precision": hits / max(len(top), 1), "recall": hits / len(flipped),
                           "fold_accuracy": round(fold_accuracy, 4), "seconds": round(seconds, 1)}  # fmt: skip
        print(f"noisy: {result['noisy']}", file=sys.stderr)
        result["clean"] = None
        if not args.noisy_only:
            rows, _, seconds = run_clean(args.data, Path(tmp) / "clean-report", extra)
            result["clean"] = {
                "flagged": len(rows),
                "flagged_share": len(rows) / len(train),
                "seconds": round(seconds, 1),
            }
            print(f"clean: {result['clean']}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    name = args.tag or (args.preset or Path(args.data.split(":")[-1]).name)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_report()


def write_report() -> None:
    """benchmarks/label_issues.md (every recorded run) and docs/img/label_issues.png (precision and recall in the
    top share against the fold models' out-of-fold accuracy: how good the models must be)."""
    runs = [(f.stem, json.loads(f.read_text())) for f in sorted(RESULTS.glob("*.json"))]
    lines = ["# Label issues found by `imgcls data clean`", "",
             "`.venv/bin/python benchmarks/label_issues.py --data D --preset P` — a share of the training labels flipped "
             "at random (seeded) to another class; precision and recall of the ranked label issues in the top "
             "share (as many as were flipped); the fold models' out-of-fold accuracy on the true labels; then the "
             "flagged share on the clean set. Time: the whole command. The curve: docs/img/label_issues.png.", "",
             "| data | recipe | images | flipped | fold models' accuracy | precision | recall | flagged (noisy) | flagged on clean | time noisy / clean s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for _, r in runs:
        n, c = r["noisy"], r["clean"]
        on_clean = f"{c['flagged']:,} ({100 * c['flagged_share']:.2f} %)" if c else "not run"
        clean_s = f"{c['seconds']:.0f}" if c else "-"
        acc = f"{100 * n['fold_accuracy']:.2f} %" if "fold_accuracy" in n else "not recorded"
        lines.append(f"| {r['data']} | {r['preset'] or '-'} {' '.join(r['extra'])} | {r['images']:,} | {n['flipped']:,} "
                     f"({100 * r['flip']:.0f} %) | {acc} | {n['precision']:.3f} | {n['recall']:.3f} | {n['flagged']:,} | "
                     f"{on_clean} | {n['seconds']:.0f} / {clean_s} |")  # fmt: skip
    (HERE / "label_issues.md").write_text("\n".join(lines) + "\n")
    print((HERE / "label_issues.md").read_text())
    points = sorted((r["noisy"]["fold_accuracy"], r["noisy"]["precision"], r["noisy"]["recall"], name)
                    for name, r in runs if "fold_accuracy" in r["noisy"])  # fmt: skip
    if not points:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc, prec, rec, names = zip(*points)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([100 * a for a in acc], prec, "o-", label="precision in the top 2 %")
    ax.plot([100 * a for a in acc], rec, "s--", label="recall in the top 2 %")
    for a, p_, name in zip(acc, prec, names):
        ax.annotate(name, (100 * a, p_), fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax.axhline(0.8, color="grey", lw=0.6, ls=":")
    ax.axhline(0.7, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("fold models' out-of-fold accuracy on the true labels (%)")
    ax.set_ylabel("share of the flipped labels")
    ax.set_ylim(0, 1.02)
    ax.set_title("Label issues found against the fold models' accuracy (2 % flipped)", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=120)


if __name__ == "__main__":
    main()
