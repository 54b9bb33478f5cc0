"""The ``imgcls`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .config import Range, above, at_least, share
from .errors import ConfigError, ImgclsError
from .memory import keep_freed_memory
from .quick_exit import exit_code, exit_now
from .tta import TTA


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """``["act=gelu", "drop_rate=0.2"]`` -> ``{"act": "gelu", "drop_rate": "0.2"}`` (typed later, per model)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {item!r} is not KEY=VALUE (e.g. --model-arg act=gelu)")
        out[key.strip()] = value.strip()
    return out


def cmd_models(args: argparse.Namespace) -> int:
    from .analysis.zoo_table import describe_models, render_table

    rows = describe_models(args.pattern, parse_model_args(args.model_arg), flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        render_table(rows)
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from .data.check import check_data, render
    from .data.source import open_source

    report = check_data(open_source(args.data), workers=args.workers, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    for error in report["errors"]:  # what makes the data untrainable: said last, and the exit status says it
        print(f"imgcls: error: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


def cmd_data_clean(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .clean import clean, write_cleaned
    from .config import apply_overrides, load_yaml, merge
    from .data.source import open_source
    from .engine.config import TrainConfig

    if args.model and args.weights:
        raise ConfigError("give --model (trained on each fold) or --weights (probed), not both")
    source = open_source(args.data)
    out = Path(args.out)
    cfg = None
    if not args.weights:
        base = load_yaml(args.config) if args.config else {}
        if args.preset:
            from .recipes import load_preset

            base = merge(load_preset(args.preset), base)
        given = {"data": args.data, "out": str(out / "folds"), "seed": args.seed, "progress": not args.no_progress,
                 "tensorboard": False}  # fmt: skip
        if args.model:
            given["model"] = args.model
        if args.epochs or "epochs" not in base:
            given["epochs"] = args.epochs or 3
        cfg = apply_overrides(TrainConfig, base, given)
    result = clean(source, out, cfg=cfg, weights=args.weights, model=args.model, folds=args.folds, seed=args.seed,
                   threshold=args.threshold, progress=not args.no_progress)  # fmt: skip
    n = len(source.split("train"))
    print(f"{len(result.issues):,} label issues in {n:,} training images ({100 * len(result.issues) / max(n, 1):.2f} %), "
          f"{len(result.duplicates):,} near-duplicate pairs, {len(result.leaks):,} test images found in train "
          f"({result.seconds:.0f} s)")  # fmt: skip
    for row in result.rows[:10]:
        print(
            f"  {row['file']}: {row['given']} -> {row['suggested'] or '-'} ({row['score']}; {row['reason']})"
        )
    print(f"csv: {out / 'label_issues.csv'}\nreport: {out / 'label_issues.html'}")
    if args.apply:
        print(
            f"cleaned label file: {write_cleaned(result, source, out / 'cleaned.csv')} (train with --data it)"
        )
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from .data.catalog import listing

    rows = listing()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datasets --data opens by name ({len(rows)})", title_justify="left")
    for col, justify in (("name", "left"), ("--data", "left"), ("images (per split)", "right"), ("classes", "right"),
                         ("size", "left"), ("task", "left"), ("licence", "left"), ("download", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["name"]), str(r["spec"]), str(r["images"]), str(r["classes"]), str(r["size"]),
                      str(r["task"]), str(r["licence"]), "imgcls data download" if r["download"] else "by hand")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print("Also: image folders, CSV/JSON label files and tar shards (see imgcls train --help, --data).")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from .data.catalog import fetch

    spec = fetch(args.name, args.dir, quiet=args.no_progress)
    print(f"{args.name} is in {args.dir}; train on it with: imgcls train --data {spec}")
    return 0


def cmd_data_shard(args: argparse.Namespace) -> int:
    from .data.shards import INDEX_FILE, write_shards
    from .data.source import open_source

    index = write_shards(open_source(args.src), args.out, args.shard_size, seed=args.seed)
    for split, info in index.items():
        print(
            f"{split}: {info['samples']:,} samples in {len(info['shards'])} shard(s) -> {args.out}/{split}-*.tar"
        )
    print(f"classes and counts: {Path(args.out) / INDEX_FILE}")
    return 0


# what `imgcls finetune` changes in the training defaults: the head alone for an epoch, then everything
# with layer-wise decaying rates (the blocks nearest the input change least). Measured with
# benchmarks/transfer.py (CIFAR-10 5 -> 5 classes, 100 images each, ResNet-20): this 74.8 % against
# 57.9 % for lr 1e-3 / decay 0.7 / 2 frozen epochs, 70.8 % without layer decay, 59.5 % from scratch.
FINETUNE_DEFAULTS = {
    "model": {"freeze": "backbone", "freeze_epochs": 1},
    "optim": {"layer_decay": 0.85},
    "sched": {"warmup_epochs": 0.5},
}


def train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of parsed ``imgcls train`` / ``finetune`` arguments: the YAML file, the
    finetune defaults, the options on top, and ``--pretrained`` made an ``--init`` name."""
    from dataclasses import replace

    from .config import apply_overrides, load_yaml, merge
    from .engine.config import TrainConfig

    skip = ("func", "command", "config", "model_arg", "pretrained", "preset")
    overrides = {k: v for k, v in vars(args).items() if k not in skip}
    if args.model_arg:
        overrides["model_args"] = parse_model_args(args.model_arg)
    base = load_yaml(args.config) if args.config else {}
    if getattr(args, "preset", None):
        from .recipes import load_preset

        base = merge(load_preset(args.preset), base)
    if args.command == "finetune":
        if not overrides.get("init") and not args.pretrained and not overrides.get("resume"):
            raise ConfigError(
                "imgcls finetune needs --pretrained [TAG] or --init WEIGHTS (a run folder, a torchvision / "
                "timm state dict, or a catalogue name: imgcls weights list)"
            )
        base = merge(FINETUNE_DEFAULTS, base)
    cfg = apply_overrides(TrainConfig, base, overrides)
    if args.pretrained:
        if cfg.model.init:
            raise ConfigError(f"--pretrained and --init {cfg.model.init!r}: give one of them")
        if not cfg.model.model:
            raise ConfigError(
                "--pretrained needs --model NAME (imgcls weights list shows the models with weights)"
            )
        tag = cfg.model.model if args.pretrained is True else args.pretrained
        cfg = replace(cfg, model=replace(cfg.model, init=tag))
    return cfg


def number(kind: type, valid: Range) -> Any:
    """An argparse type: ``kind`` (int or float) within ``valid``, or an error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value not in valid:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.trainer import train

    result = train(train_config(args))
    if _rank():  # under torchrun, rank 0 alone reports
        return 130 if result.status == "interrupted" else 0
    best = result.best
    summary = f"run: {result.run}  ({result.status} after epoch {result.epoch}, step {result.step})"
    if set(best) - {"epoch"}:
        summary += "\nbest val: " + "  ".join(
            f"{k} {v:.4f}" for k, v in best.items() if k not in ("epoch", "images")
        )
        summary += f"  (epoch {int(best['epoch']) + 1})"
    if result.test:
        summary += "\ntest:     " + "  ".join(f"{k} {v:.4f}" for k, v in result.test.items() if k != "images")
    if result.status in ("interrupted", "stopped"):
        summary += f"\nresume with: imgcls train --resume {result.run}"
    print(summary)
    return 130 if result.status == "interrupted" else 0


def cmd_bench(args: argparse.Namespace) -> int:

    import torch

    from .bench import BenchSpec, bench_models
    from .bench.accuracy import train_under_budget
    from .bench.report import write_report
    from .bench.roofline import roofline
    from .bench.table import render, to_csv, to_json
    from .errors import UnknownModelError, did_you_mean
    from .models import list_models

    names: list[str] = []
    for part in args.models.split(","):
        found = list_models(part.strip())
        if not found:
            raise UnknownModelError(f"no model matches {part!r}{did_you_mean(part, list_models())}")
        names += [n for n in found if n not in names]
    if bool(args.data) != bool(args.budget):
        raise ConfigError("accuracy under a budget needs both --data DATA and --budget TIME (e.g. 10m)")
    spec = BenchSpec(img_size=args.img_size, batch_size=args.batch_size, precision=args.precision, mode=args.mode,
                     backend=args.backend, compare_eager=args.compare_eager, threads=args.threads or 0,
                     device=args.device, min_time=args.min_time, repeats=args.repeats)  # fmt: skip
    spec.check()
    roof = roofline(torch.device(args.device))
    rows = bench_models(names, spec, progress=not args.no_progress)
    if args.data:
        out = Path(args.out)
        for row in rows:
            print(f"imgcls: training {row['model']} for {args.budget} on {args.data}", file=sys.stderr)
            extra = (["--threads", str(args.threads)] if args.threads else []) + (
                ["--img-size", str(args.img_size)] if args.img_size else [])  # fmt: skip
            row.update(train_under_budget(row["model"], args.data, args.budget, out, extra))
    render(rows, roof)
    if args.csv:
        Path(args.csv).write_text(to_csv(rows))
    if args.json:
        Path(args.json).write_text(to_json(rows, roof))
    if args.report:
        note = f"Accuracy: each model trained for {args.budget} on {args.data}." if args.data else ""
        print(f"report: {write_report(rows, roof, Path(args.report), note)}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    import dataclasses

    from .config import apply_overrides, load_yaml, merge
    from .engine.budget import parse_duration
    from .engine.config import TrainConfig
    from .models import model_info
    from .tune.report import write_report
    from .tune.space import load_space
    from .tune.study import TuneSpec, run_study, write_recipe

    skip = ("func", "command", "config", "model_arg", "preset", "space", "trials", "timeout", "storage", "study",
            "pruner")  # fmt: skip
    fixed = {k: v for k, v in vars(args).items() if k not in skip}
    if args.model_arg:
        fixed["model_args"] = parse_model_args(args.model_arg)
    base = load_yaml(args.config) if args.config else {}
    if args.preset:
        from .recipes import load_preset

        base = merge(load_preset(args.preset), base)
    first = apply_overrides(TrainConfig, base, fixed)  # checked before any trial runs
    if not first.data.data:
        raise ConfigError("imgcls tune needs --data SOURCE (the data every trial trains on)")
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}")
    model = first.model.model
    fields = {f.name for f in dataclasses.fields(model_info(model).config)} if model else None
    space = load_space(args.space, fields)
    study = args.study or f"{model or 'default'}-tune"
    spec = TuneSpec(base=base, fixed=fixed, space=space, trials=args.trials,
                    timeout=parse_duration(args.timeout) if args.timeout else None, storage=args.storage,
                    study=study, pruner=args.pruner, out=Path(first.out), seed=first.seed)  # fmt: skip
    result = run_study(spec)
    folder = Path(first.out) / study
    folder.mkdir(parents=True, exist_ok=True)
    finished = [t for t in result.trials if t.value is not None]
    recipe = write_recipe(result, folder / "best.yaml") if finished else None
    report = write_report(result, folder / "tune.html", recipe)
    states = {}
    for t in result.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"study {study}: {len(result.trials)} trials ({', '.join(f'{n} {k}' for k, n in states.items())})")
    if finished:
        best = result.best_trial
        print(f"best: trial {best.number}, validation score {best.value:.4f}, {best.params}")
        print(f"recipe: {recipe}  (imgcls train --config {recipe} reproduces it)")
    print(f"report: {report}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from .pretrained import entries
    from .pretrained.listing import render, rows

    found = rows(entries(args.pattern))
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        render(found)
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from .pretrained import fetch, find

    for spec in args.tags:
        entry = find(spec)
        path = fetch(entry, progress=not args.no_progress)
        print(f"{entry.tag}: {path}")
    return 0


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    import os

    return int(os.environ.get("RANK", "0"))


def expand_images(paths: Sequence[str]) -> list[str]:
    """Files as given; folders -> every image file under them (natural order)."""
    import os

    from .data.folder import is_image_name
    from .errors import ImgclsError
    from .sorting import natural_key

    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = [
                os.path.join(d, f)
                for d, _, fs in os.walk(p)
                for f in fs
                if is_image_name(f) and not f.startswith(".")
            ]
            out += sorted(found, key=natural_key)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise ImgclsError(f"{p!r} does not exist")
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import load, to_csv
    from .progress import track

    clf = load(args.run)
    if args.threshold is not None:
        clf.task.threshold = args.threshold
    files = expand_images(args.images)
    preds = []
    batches = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]
    for batch in track(batches, "predicting", disable=len(batches) < 2 or args.no_progress, unit="batch"):
        preds += clf.predict(batch, topk=args.topk, tta=args.tta, batch_size=args.batch_size, skip_bad=True)
    bad = [p for p in preds if p.error]
    for p in bad:
        print(f"imgcls: skipped {p.source}: {p.error}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([p.as_dict() for p in preds], indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(preds, args.topk))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{args.run}: {clf.meta.model if clf.meta else 'model'}, {clf.task.kind}")
        table.add_column("file", overflow="fold")
        table.add_column("prediction")
        shown_k = min(args.topk, len(clf.classes)) if clf.task.kind != "multilabel" else args.topk
        table.add_column(f"top {shown_k}" if shown_k < len(clf.classes) else "all classes", overflow="fold")
        for p in preds:
            if p.error:
                table.add_row(p.source, "[red]unreadable", p.error)
            else:
                shown = (
                    ", ".join(p.labels) if clf.task.kind == "multilabel" else f"{p.label} {p.probability:.0%}"
                )
                table.add_row(p.source, shown, "  ".join(f"{c} {q:.2f}" for c, q in p.top(args.topk)))
        Console().print(table)
    return 1 if bad and len(bad) == len(preds) else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run

    result = evaluate_run(args.run, args.data, args.split, args.tta, args.calibrate, args.batch_size, args.out,
                          report=not args.no_report, progress=not args.no_progress)  # fmt: skip
    m = result.metrics
    keys = (
        "accuracy",
        "top5",
        "balanced_accuracy",
        "roc_auc",
        "pr_auc",
        "mAP",
        "subset_accuracy",
        "ece",
        "loss",
    )
    shown = "  ".join(f"{k} {m[k]:.4f}" for k in keys if m.get(k) is not None)
    print(f"{m['model']} on {m['data']} [{m['split']}, {m['images']} images, tta {m['tta']}]: {shown}")
    from .run import RunFolder

    run, out = RunFolder.of(args.run), Path(args.out) if args.out else None
    print(f"written: {run.eval_metrics(out)}" + ("" if args.no_report else f", {run.report(out)}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    checks = expand_images(args.check_images) if args.check_images else None
    r = export(args.run, args.format, args.out, dynamic_batch=args.dynamic_batch, opset=args.opset,
               logits=args.logits, check_images=checks)  # fmt: skip
    batches = " and ".join(str(b) for b in r.batches)
    print(f"exported: {r.path} ({r.format}); sidecar: {r.sidecar}")
    print(
        f"checked on {r.images} real images at batch {batches}: max |difference| vs PyTorch {r.max_diff:.2e}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(args.target, args.host, args.port, args.backend, args.token, args.max_batch, args.max_wait_ms,
          args.queue_size, args.timeout, args.max_body_mb * 2**20, args.threads)  # fmt: skip
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .data.source import open_source
    from .features import backbone, extract, save_npz

    source = open_source(args.data).with_val(args.val_fraction, args.seed)
    model, pre, key = backbone(args.weights, source.channels, args.model, args.img_size)
    splits = {s: extract(model, source, s, pre, init=args.weights, key=key, batch_size=args.batch_size, progress=not args.no_progress)
              for s in (args.splits.split(",") if args.splits else source.splits)}  # fmt: skip
    save_npz(
        args.out,
        splits,
        {"model": key.split(":")[0], "weights": args.weights, "data": args.data, "classes": source.classes},
    )
    for s, (f, _) in splits.items():
        print(f"{s}: {f.shape[0]:,} x {f.shape[1]} features")
    print(f"written: {args.out}")
    return 0


def add_config_options(p: argparse.ArgumentParser, cls: type) -> None:
    """One --option per leaf of the config tree (dashes for underscores), typed later by the config."""
    import dataclasses

    from .config import help_of, leaves

    groups: dict[str, argparse._ArgumentGroup] = {}
    for path, f, kind in leaves(cls):
        section = path.rsplit(".", 1)[0] if "." in path else "run"
        group = groups.setdefault(section, p.add_argument_group(section))
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.name == "model_args":
            continue
        help_text = f"{help_of(f)} (default: {default})".replace("%", "%%")
        if kind is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            group.add_argument(flag, default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_text)


DATA_HELP = (
    "an image folder (ROOT/CLASS/* or ROOT/{train,val,test}/CLASS/*), a .csv/.json label file, tar shards "
    "('dir/train-{000000..000009}.tar'), or a dataset by name (imgcls data list): mnist:DIR, cifar10:DIR, "
    "svhn:DIR, stl10:DIR?fold=K, flowers102:DIR, imagenet:DIR, medmnist:FILE.npz, ..."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcls",
        description="Image classification on PyTorch: the famous architectures, provably correct, fast on a CPU.",
    )
    parser.add_argument("--version", action="version", version=f"imgcls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "models",
        help="list the model zoo: params, GFLOPs, input size, paper",
        description="List the registered models with their parameter count, forward GFLOPs at their default "
        "input size (torch.utils.flop_counter: 2 FLOPs per multiply-add), input size and paper.",
    )
    p.add_argument(
        "pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*' (default: all)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field of the listed model(s), e.g. --model-arg width_per_group=128",
    )
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "train",
        help="train a model on a data source; leaves a self-describing run folder",
        description="Train MODEL on DATA. Every option below is a field of the training config; a YAML "
        "file (--config) sets them by section and options on the command line override it. The run folder "
        "gets config.yaml (every default resolved), labels.json, metrics.jsonl, steps.jsonl, checkpoints/last.pt, "
        "model.safetensors (best weights) and TensorBoard events. Exit status: 0 finished, 130 interrupted "
        "(resumable), 2 a usage or data error, 3 the loss diverged.",
    )
    p.add_argument(
        "--config", metavar="YAML", help="a YAML file of config sections (overridden by the options)"
    )
    from .recipes import presets

    p.add_argument(
        "--preset", metavar="NAME", help=f"start from a bundled recipe ({', '.join(presets())}); --config and "
        "the options override it",
    )  # fmt: skip
    p.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field of the model, e.g. --model-arg drop_rate=0.2 (repeatable)",
    )  # fmt: skip
    from .engine.config import TrainConfig

    p.add_argument(
        "--pretrained", nargs="?", const=True, default=None, metavar="TAG",
        help="start from the model's published ImageNet weights (its default, or TAG, e.g. tv_in1k; "
        "imgcls weights list): fetched into torch hub's / Hugging Face's cache, their preprocessing kept",
    )  # fmt: skip
    add_config_options(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="metrics.json and a self-contained report.html for a trained run",
        description="Evaluate a run on a split of DATA (default: the run's own data, its test split, else val): "
        "loss, accuracy, top-k, precision/recall/F1, confusion matrix, calibration, ROC/PR where they apply; "
        "report.html holds the plots, the top-losses gallery and Grad-CAM / attention overlays.",
    )
    p.add_argument("run", help="a run folder (or its model.safetensors)")
    p.add_argument("--data", help="data source (default: the one the run trained on)")
    p.add_argument("--split", help="train | val | test (default: test if the data has one, else val)")
    p.add_argument(
        "--tta",
        choices=TTA,
        default="none",
        help="test-time views: none | flip | flip-shift (the logits averaged, as training's --test-tta) | "
        "ten_crop | multiscale (the probabilities averaged); mirrors only for a model trained with them",
    )
    p.add_argument(
        "--calibrate", action="store_true", help="fit temperature scaling on val; saved as calibration.json"
    )
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=64)
    p.add_argument("--out", help="folder for metrics.json and report.html (default: the run folder)")
    p.add_argument("--no-report", action="store_true", help="metrics.json only")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "predict",
        help="class probabilities for images or folders of images",
        description="Predict with a trained run (or its model.safetensors), or with a pretrained model by name "
        "(resnet50, resnet50.tv_in1k, timm:TAG; ImageNet's classes): each image's top classes and "
        "probabilities. Folders are searched for images. Files that cannot be read are reported and skipped; "
        "the rest are predicted (exit status 1 only when none could be read).",
    )
    p.add_argument("run", help="a run folder, a model.safetensors written by imgcls train, or a weight name")
    p.add_argument("images", nargs="+", help="image files and/or folders")
    p.add_argument(
        "--topk", type=number(int, at_least(1)), default=5, help="classes to show per image (default: 5)"
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--threshold",
        type=number(float, share()),
        help="decision threshold for binary / multi-label (default: the run's)",
    )
    p.add_argument(
        "--tta",
        choices=TTA,
        default="none",
        help="test-time views: none | flip | flip-shift (the logits averaged, as training's --test-tta) | "
        "ten_crop | multiscale (the probabilities averaged); mirrors only for a model trained with them",
    )
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=64)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "finetune",
        help="fine-tune pretrained weights (--pretrained, --init): the head first, then everything with layer-wise rates",
        description="imgcls train with transfer-learning defaults: --freeze backbone for --freeze-epochs 1 (batch "
        "norms of the frozen backbone kept in eval mode), then every layer with --layer-decay 0.85, after a "
        "0.5-epoch warm-up. Every train option is available and overrides these.",
    )
    p.add_argument(
        "--config", metavar="YAML", help="a YAML file of config sections (overridden by the options)"
    )
    p.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE", help="override a model config field"
    )
    p.add_argument(
        "--pretrained", nargs="?", const=True, default=None, metavar="TAG",
        help="start from the model's published ImageNet weights (its default, or TAG, e.g. tv_in1k; "
        "imgcls weights list): fetched into torch hub's / Hugging Face's cache, their preprocessing kept",
    )  # fmt: skip
    add_config_options(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "tune",
        help="search hyper-parameters on Optuna: each trial a run folder; the best written as a recipe",
        description="Train --trials runs of MODEL on DATA with values drawn from --space (a YAML file: each "
        "training option or model_args.KEY with {low, high[, log, step]} or {choices: [...]}) by Optuna's TPE "
        "sampler, pruning runs whose validation score falls behind (median or successive halving). Trials go to "
        "OUT/STUDY/trial-NNN; OUT/STUDY/best.yaml is the best trial's config (imgcls train --config reproduces "
        "it); OUT/STUDY/tune.html shows the history and each option's importance (fANOVA). Processes that "
        "name the same --storage and --study share the study (parallel trials, on one machine or many).",
    )
    p.add_argument("--space", required=True, metavar="YAML", help="the search space")
    p.add_argument(
        "--trials", type=number(int, at_least(1)), default=20, help="trials this process runs (default: 20)"
    )
    p.add_argument("--timeout", help="stop starting trials after this long (20s, 10m, 1h)")
    p.add_argument(
        "--storage", help="Optuna storage URL shared by processes, e.g. sqlite:///study.db (default: memory)"
    )
    p.add_argument("--study", help="study name (default: MODEL-tune)")
    p.add_argument("--pruner", choices=["median", "halving", "none"], default="median")
    p.add_argument("--config", metavar="YAML", help="a YAML file of config sections every trial starts from")
    p.add_argument("--preset", metavar="NAME", help="start every trial from a bundled recipe")
    p.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE", help="a fixed model config field"
    )
    add_config_options(p, TrainConfig)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "features",
        help="pooled backbone features of a data source, to a .npz",
        description="Run a backbone once over each split of DATA (eval preprocessing) and save the pooled "
        "features (what the classifier sees) with the targets: SPLIT_features, SPLIT_targets, meta. Cached.",
    )
    p.add_argument(
        "weights",
        help="a run folder, model.safetensors, a torchvision / timm state dict (then --model), or a weight name",
    )
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--model", help="registered model name (default: from the weights' metadata)")
    p.add_argument("--splits", help="comma-separated splits (default: all)")
    p.add_argument("--img-size", type=number(int, at_least(8)))
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=128)
    p.add_argument("--val-fraction", type=number(float, share(high_open=True)), default=0.1)
    p.add_argument("--seed", type=number(int, at_least(0)), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "export",
        help="the trained model as an ONNX or torch.export (.pt2) file, checked against PyTorch",
        description="Export a run's best weights as ONNX (torch's dynamo exporter, run by onnxruntime) or pt2 "
        "(torch.export; torch.export.load runs it), computing class probabilities from normalised images, with a "
        "sidecar JSON (classes, task, threshold, temperature, input size, resize/crop, mean/std). The file is run "
        "on real images and compared with PyTorch before success is reported. pt2 files unpickle their weights: "
        "load only pt2 files you made.",
    )
    p.add_argument("run", help="a run folder (or its model.safetensors)")
    p.add_argument("--format", choices=("onnx", "pt2"), default="onnx")
    p.add_argument("--out", help="the file to write (default: RUN/model.onnx or RUN/model.pt2)")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (checked at 1 and 7)")
    p.add_argument("--opset", type=number(int, at_least(7)), help="ONNX opset (default: the exporter's)")
    p.add_argument("--logits", action="store_true", help="output logits instead of probabilities")
    p.add_argument("--check-images", nargs="+", metavar="PATH",
                   help="images (files or folders) to check the export on (default: the run's evaluation images)")  # fmt: skip
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "serve",
        help="an HTTP API and a web page over a run folder or an exported ONNX file",
        description="Serve one model: GET / (a page to drop an image on), POST /predict, POST /predict/batch, "
        "GET /health, /ready, /info, /metrics (Prometheus), /docs (OpenAPI). Concurrent requests are batched "
        "into one forward pass. Safe by default: loopback only unless a token is given (Authorization: Bearer "
        "TOKEN), bodies limited, images checked by their bytes and decoded by the one safe decode path, a "
        "bounded queue (503 when full), JSON errors, no endpoint that loads or changes a model.",
    )
    p.add_argument(
        "target",
        help="a run folder or a weight name (torch backend), or an exported .onnx file (onnx backend)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=number(int, Range(0, 65535)), default=8000)
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="torch: the run folder's weights; onnx: an exported file (a run folder's model.onnx)")  # fmt: skip
    p.add_argument(
        "--token", help="required of every client (else IMGCLS_TOKEN); needed to listen beyond loopback"
    )
    p.add_argument(
        "--max-batch", type=number(int, at_least(1)), default=32, help="images per forward pass at most"
    )
    p.add_argument(
        "--max-wait-ms",
        type=number(float, at_least(0)),
        default=5.0,
        help="how long a forward pass waits to fill up",
    )
    p.add_argument(
        "--queue-size", type=number(int, at_least(1)), default=256, help="images waiting at most (then 503)"
    )
    p.add_argument(
        "--timeout",
        type=number(float, above(0)),
        default=30.0,
        help="seconds a request may wait for its result",
    )
    p.add_argument(
        "--max-body-mb", type=number(float, above(0)), default=16.0, help="largest request body, in MiB"
    )
    p.add_argument(
        "--threads",
        type=number(int, at_least(1)),
        help="intra-op threads of the model (default: the library's)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "bench",
        help="compare models on this machine: params, GFLOPs, img/s, latency, memory, accuracy under a budget",
        description="Measure each model in its own process: inference img/s at --batch-size and latency at batch 1, "
        "training img/s, peak memory and achieved GFLOP/s (warm-up, then repeats; the median, the spread in "
        "--json/--csv), beside the machine's matmul roofline. --compare-eager adds plain fp32 eager PyTorch, so the "
        "speed-up of the defaults is measured. --data with --budget trains every model for the same wall-clock "
        "time (imgcls train --budget) and adds its test accuracy. CSV/JSON use timm's benchmark column names.",
    )
    p.add_argument(
        "--models", required=True, help="names and/or patterns, comma-separated ('resnet18,vit_*')"
    )
    p.add_argument("--img-size", type=number(int, at_least(8)), help="input size (default: each model's own)")
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=32)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: our defaults (bf16 autocast where native, channels_last for conv nets)")  # fmt: skip
    p.add_argument("--mode", choices=("infer", "train", "both"), default="both")
    p.add_argument("--backend", choices=("torch", "onnx", "compile"), default="torch",
                   help="onnx: exported and run by onnxruntime (inference); compile: torch.compile (inductor)")  # fmt: skip
    p.add_argument(
        "--compare-eager", action="store_true", help="also measure plain fp32 contiguous eager PyTorch"
    )
    p.add_argument("--data", help="train each model on this data for --budget and add its test accuracy")
    p.add_argument("--budget", help="wall-clock time per model for --data (20s, 10m, 1h)")
    p.add_argument(
        "--out", default="runs/bench", help="where the budget runs' folders go (default: runs/bench)"
    )
    p.add_argument(
        "--threads", type=number(int, at_least(1)), help="intra-op threads (default: one per core)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument(
        "--min-time",
        type=number(float, above(0)),
        default=2.0,
        help="seconds of timed calls per measurement, at least",
    )
    p.add_argument(
        "--repeats",
        type=number(int, at_least(1)),
        default=5,
        help="timed calls per measurement, at least (after 2 warm-up)",
    )
    p.add_argument("--csv", help="write the rows as CSV (timm's column names)")
    p.add_argument("--json", help="write the rows and the roofline as JSON")
    p.add_argument("--report", help="write an HTML page with the table and the accuracy / cost figures")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_bench)

    weights = sub.add_parser("weights", help="the pretrained weight catalogue: list and fetch")
    weights_sub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = weights_sub.add_parser(
        "list",
        help="published ImageNet weights of the zoo's models, and which are downloaded",
        description="The weight catalogue: every torchvision / timm weight a zoo model loads, with its training "
        "data, published top-1, input (resize -> crop), classes, size and whether it is in the cache already.",
    )
    p.add_argument(
        "pattern", nargs="?", default="*", help="tag pattern, e.g. 'resnet*' or a word (default: all)"
    )
    p.add_argument("--json", action="store_true", help="print JSON (every field) instead of a table")
    p.set_defaults(func=cmd_weights_list)
    p = weights_sub.add_parser(
        "fetch",
        help="download weights into torch hub's / Hugging Face's cache (hash checked)",
        description="Download catalogue weights (a tag, a model name for its default, torchvision:NAME, "
        "timm:NAME) into the caches torchvision and timm use, checked; prints each file's path.",
    )
    p.add_argument("tags", nargs="+", help="weight tags or model names")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_weights_fetch)

    data = sub.add_parser(
        "data",
        help="inspect data (check), find label issues and near-duplicates (clean), write tar shards (shard)",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = data_sub.add_parser(
        "check",
        help="classes, counts, sizes, bad files, duplicates and leakage of a data source",
        description="Read, hash and fully decode every image of DATA: classes and counts per split (with an "
        "imbalance warning), image sizes and modes, bad files with the reason, exact duplicates and images "
        "found in more than one split.",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--workers",
        type=number(int, at_least(0)),
        default=0,
        help="decoding processes (default: 0, in this process)",
    )
    p.set_defaults(func=cmd_data_check)
    p = data_sub.add_parser(
        "list",
        help="the datasets --data opens by name: images, classes, size, task, licence, download",
        description="The datasets imgcls reads in their own formats, named on the command line as NAME:DIR: "
        "images per split, classes, image size, task, licence, and whether `imgcls data download` fetches it.",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_data_list)
    p = data_sub.add_parser(
        "download",
        help="fetch a dataset by name into DIR from its official home, checksummed",
        description="Download NAME's files from the dataset's official home into DIR, each checked against its "
        "published MD5 (written under a temporary name and renamed only when complete: an interrupted or corrupt "
        "download leaves nothing that looks whole) and unpacked; prints the --data spec that opens it. Datasets "
        "without a public download (ImageNet, Sign Language MNIST) say where to get them.",
    )
    p.add_argument(
        "name",
        help="a name from `imgcls data list` (mnist, cifar10, svhn, stl10, flowers102, pathmnist, ...)",
    )
    p.add_argument("dir", help="the folder to download into")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data_download)
    p = data_sub.add_parser(
        "shard",
        help="write a data source as tar shards (WebDataset layout) for streaming",
        description="Write every split of SRC as shuffled tar shards OUT/{split}-000000.tar ... in WebDataset "
        "layout (KEY.jpg/png + KEY.json + KEY.cls) with OUT/labels.json; train from them with --data OUT.",
    )
    p.add_argument("src", help=DATA_HELP)
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--shard-size", default="256MB", help="samples per shard (1000) or bytes per shard (256MB; default)"
    )
    p.add_argument(
        "--seed",
        type=number(int, at_least(0)),
        default=0,
        help="seed of the shuffle before sharding (default: 0)",
    )
    p.set_defaults(func=cmd_data_shard)
    p = data_sub.add_parser(
        "clean",
        help="find mislabelled images (confident learning), near-duplicates and test images in train",
        description="Out-of-fold probabilities of DATA's training images — --folds runs of MODEL, each trained on "
        "the other folds and predicting its own over the recipe's test-time views (test_tta) "
        "(--preset / --config / --epochs set the recipe; e.g. --preset mnist-speedrun), or with "
        "--weights a logistic-regression probe on their pooled features (the cheap path for large sets) — then "
        "confident learning ranks the images whose label looks wrong. Near-duplicates (thumbnail cosine "
        "similarity) in train and test images found in train are listed too. Writes OUT/label_issues.csv "
        "(file, given, suggested, score, reason), OUT/label_issues.html and OUT/summary.json; --apply also "
        "writes OUT/cleaned.csv, a label file with the suggested labels and without the duplicates (the "
        "images and the original labels are not touched).",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--model", help="the model trained on each fold (default: chosen from the data)")
    p.add_argument("--weights", help="probe the pooled features of these weights instead of training")
    p.add_argument("--folds", type=number(int, at_least(2)), default=5)
    p.add_argument(
        "--epochs",
        type=number(int, at_least(1)),
        default=None,
        help="epochs per fold (default: the recipe's, else 3)",
    )
    p.add_argument("--preset", help="the recipe of the fold runs (e.g. mnist-speedrun)")
    p.add_argument("--config", metavar="YAML", help="a YAML recipe of the fold runs")
    p.add_argument(
        "--threshold",
        type=number(float, share()),
        default=0.97,
        help="near-duplicate cosine similarity (default: 0.97)",
    )
    p.add_argument("--out", default="clean-report", help="report folder (default: clean-report)")
    p.add_argument("--apply", action="store_true", help="also write OUT/cleaned.csv, the cleaned label file")
    p.add_argument("--seed", type=number(int, at_least(0)), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_data_clean)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    keep_freed_memory()  # every command's tensors: reused, not re-faulted from the kernel (see memory.py)
    try:
        return int(args.func(args) or 0)
    except ImgclsError as e:
        print(f"imgcls: error{f' (rank {_rank()})' if _rank() else ''}: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print("imgcls: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The console script: ``main`` with the process left at once when it is done (see quick_exit.py)."""
    try:
        code = main()
    except SystemExit as e:  # argparse's --help, --version and usage errors
        code = exit_code(e.code)
    exit_now(code)


if __name__ == "__main__":
    run()
