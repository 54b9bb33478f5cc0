"""Write src/imgcls/pretrained/catalogue.json (and the label files) from what torchvision and timm
publish about their weights — read from their source, never imported (they do not load here).

    .venv/bin/pip download --no-deps torchvision==0.29.1 timm==1.0.31 -d /tmp/wheels
    (cd /tmp/wheels && unzip -q -o torchvision-*.whl 'torchvision/*' && unzip -q -o timm-*.whl 'timm/*')
    .venv/bin/python tools/make_weights_catalogue.py /tmp/wheels tools/timm_results_imagenet.csv

torchvision: every ``*_Weights`` enum of torchvision/models/*.py whose model is in our zoo (its URL,
whose file name carries the SHA-256 prefix torch.hub checks; its eval transform; ``num_params``,
ImageNet-1K acc@1/acc@5, file size, licence). timm: the pretrained configs of the zoo models built
in timm's layout (ViT, DeiT, ResNetV2, SE-ResNet, Inception v4, Xception, MobileNet v1) with a
Hugging Face Hub repo; their top-1 and parameter count come from timm's published
results-imagenet.csv (``tools/timm_results_imagenet.csv``, the rows of these models), which was
measured at the size and crop the entry then uses. Only supervised ImageNet classification weights
(in1k, in21k, in21k fine-tuned) are kept; what is left out, and why, is in docs/transfer.md.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
OUT = ROOT / "src" / "imgcls" / "pretrained"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TV_FILES = ["alexnet", "vgg", "googlenet", "inception", "resnet", "densenet", "mobilenetv2", "mobilenetv3", "efficientnet",
            "regnet", "convnext", "swin_transformer", "vision_transformer"]  # fmt: skip
# torchvision builder -> (our model, converter, input size the weights need (None: the model's own))
TV_NAMES = {"vit_b_16": "vit_base_patch16_224", "vit_l_16": "vit_large_patch16_224"}
TV_TAGS = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k", "IMAGENET1K_SWAG_E2E_V1": "tv_swag_e2e_in1k",
           "IMAGENET1K_SWAG_LINEAR_V1": "tv_swag_lc_in1k"}  # fmt: skip
# timm model -> our model, for the zoo models built in timm's layout
TIMM = {
    "vision_transformer.py": {n: n for n in ("vit_tiny_patch16_224", "vit_tiny_patch16_384", "vit_small_patch16_224",
                                             "vit_small_patch16_384", "vit_base_patch16_224", "vit_base_patch16_384",
                                             "vit_large_patch16_224", "vit_large_patch16_384")},
    "deit.py": {n: n for n in ("deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224")},
    "resnetv2.py": {"resnetv2_50": "resnetv2_50"},
    "resnet.py": {"seresnet50": "seresnet50"},
    "inception_v4.py": {"inception_v4": "inception_v4"},
    "xception.py": {"legacy_xception": "xception"},
    "efficientnet.py": {"mobilenetv1_100": "mobilenet_v1"},
}  # fmt: skip
SUPERVISED = re.compile(r"(^|_)(in1k|in21k|in21k_ft_in1k|in22k_ft_in1k)$")


# ---- torchvision ----------------------------------------------------------------------------------


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    """A literal, with module-level names and ``**name`` in dicts resolved; None where it cannot be."""
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(_literal(v, names) or {})
            else:
                out[_literal(k, names)] = _literal(v, names)
        return out
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):  # InterpolationMode.BICUBIC
        return node.attr.lower()
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def torchvision_entries(src: Path, zoo: set[str]) -> list[dict[str, Any]]:
    entries = []
    for stem in TV_FILES:
        tree = ast.parse((src / "torchvision" / "models" / f"{stem}.py").read_text())
        names: dict[str, Any] = {}
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Dict)
            ):
                names[node.targets[0].id] = _literal(node.value, names)
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("_Weights")):
            builder = cls.name[: -len("_Weights")].lower()
            model = TV_NAMES.get(builder, builder)
            default = next((getattr(a.value, "attr", getattr(a.value, "id", None)) for a in cls.body
                            if isinstance(a, ast.Assign) and a.targets[0].id == "DEFAULT"), None)  # fmt: skip
            for a in cls.body:
                if not (
                    isinstance(a, ast.Assign) and isinstance(a.value, ast.Call) and a.targets[0].id in TV_TAGS
                ):
                    continue
                kw = {k.arg: k.value for k in a.value.keywords}
                url = _literal(kw["url"], names)
                transform = {k.arg: _literal(k.value, names) for k in kw["transforms"].keywords}
                meta = _literal(kw["meta"], names)
                metrics = (meta.get("_metrics") or {}).get("ImageNet-1K") or {}
                size = transform.get("crop_size")
                mine = model
                if builder == "vit_b_16" and size == 384:
                    mine = "vit_base_patch16_384"
                if mine not in zoo or (builder.startswith("vit_") and size not in (224, 384)):
                    continue
                if builder == "vit_l_16" and size != 224:
                    continue  # SWAG's ViT-L at 512 px: no zoo variant at that size
                transform_input = builder in ("googlenet", "inception_v3")  # torchvision renormalises inside
                entries.append({
                    "tag": f"{mine}.{TV_TAGS[a.targets[0].id]}", "model": mine, "default": a.targets[0].id == default,
                    "source": "torchvision", "url": url, "sha256_prefix": re.search(r"-([0-9a-f]{8,})\.pth$", url).group(1),
                    "hf_repo": None, "hf_file": None, "converter": "torchvision_vit" if builder.startswith("vit_") else None,
                    "num_classes": 1000, "labels": "imagenet-1k",
                    "preprocess": {"size": size, "resize": transform.get("resize_size", 256),
                                   "interpolation": transform.get("interpolation", "bilinear"),
                                   "mean": [0.5] * 3 if transform_input else list(IMAGENET_MEAN),
                                   "std": [0.5] * 3 if transform_input else list(IMAGENET_STD)},
                    "dataset": "ImageNet-1K" if "SWAG" not in a.targets[0].id else "IG-3.6B, fine-tuned on ImageNet-1K",
                    "top1": metrics.get("acc@1"), "top5": metrics.get("acc@5"), "params": meta.get("num_params"),
                    "file_mb": meta.get("_file_size"), "license": meta.get("license") or "BSD-3-Clause (torchvision)",
                    "recipe": meta.get("recipe"),
                })  # fmt: skip
    return entries


# ---- timm -----------------------------------------------------------------------------------------


def timm_cfgs(src: Path, file: str) -> dict[str, dict[str, Any]]:
    """The pretrained configs of one timm model file: its ``_cfg`` helpers run on the literal table."""
    timm = src / "timm"
    constants: dict[str, Any] = {}
    exec((timm / "data" / "constants.py").read_text(), constants)  # plain constants
    tree = ast.parse((timm / "models" / file).read_text())
    namespace: dict[str, Any] = {
        **constants,
        "Dict": dict,
        "Any": Any,
        "Optional": Any,
        "generate_default_cfgs": lambda d: d,
    }
    for node in tree.body:
        if (isinstance(node, ast.FunctionDef) and node.name.startswith("_cfg")) or (
            isinstance(node, ast.FunctionDef) and re.match(r"_\w*cfg$", node.name)
        ):
            exec(compile(ast.Module([node], []), file, "exec"), namespace)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "default_cfgs":
            value = node.value
            table = value.args[0] if isinstance(value, ast.Call) else value
            out = {}
            for k, v in zip(table.keys, table.values):
                try:
                    out[ast.literal_eval(k)] = eval(compile(ast.Expression(v), file, "eval"), namespace)
                except Exception:  # an entry built from something else: not one of ours
                    continue
            return out
    return {}


def timm_entries(src: Path, results: Path, zoo: set[str]) -> list[dict[str, Any]]:
    rows = {
        r["model"]: r for r in csv.DictReader(line for line in results.open() if not line.startswith("#"))
    }
    entries = []
    for file, names in TIMM.items():
        cfgs = timm_cfgs(src, file)
        for key, cfg in cfgs.items():
            name, _, tag = key.partition(".")
            url = None if cfg.get("hf_hub_id") else cfg.get("url")  # a legacy cfg: a release URL, no Hub repo
            if name not in names or not (cfg.get("hf_hub_id") or url) or not SUPERVISED.search(tag):
                continue
            mine = names[name]
            if mine not in zoo:
                continue
            row = rows.get(key)
            size = int(row["img_size"]) if row else cfg["input_size"][-1]
            crop = float(row["crop_pct"]) if row else cfg.get("crop_pct", 0.875)
            classes = cfg.get("num_classes", 1000)
            entries.append({
                "tag": f"{mine}.{tag}", "model": mine, "default": False, "source": "timm", "url": url,
                "sha256_prefix": re.search(r"-([0-9a-f]{8,})\.pth$", url).group(1) if url else None,
                "hf_repo": None if url else f"timm/{key}", "hf_file": None if url else "model.safetensors", "converter": None, "num_classes": classes,
                "labels": {1000: "imagenet-1k", 21843: "imagenet-21k"}.get(classes),
                "preprocess": {"size": size, "resize": int(size / crop), "interpolation": (row or cfg)["interpolation"],
                               "mean": list(cfg["mean"]), "std": list(cfg["std"])},
                "dataset": "ImageNet-21k" if tag.endswith("in21k") else
                           "ImageNet-21k, fine-tuned on ImageNet-1K" if "in21k_ft" in tag else "ImageNet-1K",
                "top1": float(row["top1"]) if row else None, "top5": float(row["top5"]) if row else None,
                "params": round(float(row["param_count"].replace(",", "")) * 1e6) if row else None,
                "file_mb": None, "license": cfg.get("license") or "apache-2.0 (timm)", "recipe": cfg.get("origin_url"),
                "timm_name": key,
            })  # fmt: skip
    return entries


def choose_defaults(entries: list[dict[str, Any]]) -> None:
    """torchvision marks its default; for timm-only models the best ImageNet-1K top-1 is."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_model.setdefault(e["model"], []).append(e)
    for group in by_model.values():
        if any(e["default"] for e in group):
            continue
        scored = [e for e in group if e["top1"] is not None and e["num_classes"] == 1000]
        chosen = (
            max(scored, key=lambda e: e["top1"])
            if scored
            else next(e for e in group if e["num_classes"] == 1000)
        )
        chosen["default"] = True


def main() -> None:
    wheels, results = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, str(ROOT / "src"))
    import imgcls

    zoo = set(imgcls.list_models())
    entries = torchvision_entries(wheels / "tv", zoo) + timm_entries(wheels / "timm", results, zoo)
    choose_defaults(entries)
    entries.sort(key=lambda e: (e["model"], not e["default"], e["tag"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "catalogue.json").write_text(json.dumps(entries, indent=1) + "\n")
    tv_meta = ast.parse((wheels / "tv" / "torchvision" / "models" / "_meta.py").read_text())
    categories = next(
        ast.literal_eval(n.value)
        for n in tv_meta.body
        if isinstance(n, ast.Assign) and n.targets[0].id == "_IMAGENET_CATEGORIES"
    )
    (OUT / "imagenet_1k.txt").write_text("\n".join(categories) + "\n")
    info = wheels / "timm" / "timm" / "data" / "_info"
    lemma = dict(
        line.split("\t", 1)
        for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
        if "\t" in line
    )
    synsets = (info / "imagenet21k_goog_synsets.txt").read_text().split()
    (OUT / "imagenet_21k.txt").write_text(
        "\n".join(lemma.get(s, s).split(",")[0].strip() for s in synsets) + "\n"
    )
    print(
        f"{len(entries)} entries for {len({e['model'] for e in entries})} models -> {OUT / 'catalogue.json'}"
    )


if __name__ == "__main__":
    main()
