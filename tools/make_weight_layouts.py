"""Write tests/fixtures/weights/layouts.json.gz: the keys and shapes of the state dict each catalogue entry's
file holds, for the entries whose architecture has no reference manifest of the same source in
tests/fixtures/reference (those are checked against the manifest itself).

The layouts are read from torchvision's and timm's own models, built once here (they are never a
dependency of imgcls or its tests; their compiled ops do not load on this CPU wheel, so torchvision's
meta-kernel registrations are skipped — the models themselves are plain PyTorch):

    .venv/bin/pip download --no-deps torchvision==0.29.1 timm==1.0.31 -d /tmp/wheels
    mkdir -p /tmp/tvfull && cd /tmp/tvfull && unzip -q -o /tmp/wheels/torchvision-*.whl && unzip -q -o /tmp/wheels/timm-*.whl
    PYTHONPATH=/tmp/tvfull .venv/bin/python tools/make_weight_layouts.py
"""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).parents[1]
OUT = ROOT / "tests" / "fixtures" / "weights" / "layouts.json.gz"
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
TV_BUILDERS = {
    "vit_base_patch16_224": "vit_b_16",
    "vit_base_patch16_384": "vit_b_16",
    "vit_large_patch16_224": "vit_l_16",
}


def main() -> None:
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    sys.path.insert(0, str(ROOT / "src"))
    import timm
    import torch
    import torchvision
    import torchvision.models as tvm

    from imgcls.pretrained import catalogue

    layouts: dict[str, list] = {}
    tags: dict[str, str] = {}
    for e in catalogue():
        manifest = REFERENCE / f"{e.model}.json"
        if manifest.is_file():
            ref = json.loads(manifest.read_text())
            if ref["source"].split()[0] == e.source and ref["num_classes"] == e.num_classes:
                continue
        if e.source == "torchvision":
            builder = TV_BUILDERS.get(e.model, e.model)
            kwargs = {"image_size": e.preprocess.size} if builder.startswith("vit_") else {}
            key = f"torchvision:{builder}:{e.num_classes}:{kwargs.get('image_size', '')}"
            make = lambda b=builder, k=kwargs, n=e.num_classes: getattr(tvm, b)(num_classes=n, **k)
        else:
            name = e.timm_name.split(".")[0]
            key = f"timm:{name}:{e.num_classes}"
            make = lambda n=name, c=e.num_classes: timm.create_model(n, num_classes=c)
        if key not in layouts:
            torch.manual_seed(0)
            model = make()
            layouts[key] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
            print(
                f"{key}: {len(layouts[key])} tensors, {sum(p.numel() for p in model.parameters()):,} parameters"
            )
            del model
        tags[e.tag] = key
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(json.dumps({"source": f"torchvision {torchvision.__version__}, "
                                         f"timm {timm.__version__}", "tags": tags, "layouts": layouts}).encode(), mtime=0))  # fmt: skip
    print(f"{len(tags)} entries, {len(layouts)} layouts -> {OUT}")


if __name__ == "__main__":
    main()
