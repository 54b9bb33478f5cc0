"""The export table of docs/export.md: every family of the zoo exported to ONNX and to pt2.

    .venv/bin/python benchmarks/export_table.py            # print the table
    .venv/bin/python benchmarks/export_table.py --write    # and put it into docs/export.md

Each family's representative (first variant, or the one named in FAMILIES) is built with random
weights at its smallest input (at least 32 px), exported with a dynamic batch, and its outputs on
8 random images compared with PyTorch's at batch 1 and 7 (`imgcls.export.check_family`). A family
that does not export gets its one-line reason, naming the operator.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from imgcls.export import check_family
from imgcls.models import build_model, model_info
from imgcls.models.base import min_input_size

ROOT = Path(__file__).parents[1]
# family -> the variant that stands for it (one row per model class: MobileNet v1/v2/v3 and
# EfficientNet's MBConv/FusedMBConv stages are different code)
FAMILIES = {
    "lenet": "lenet5", "alexnet": "alexnet", "vgg": "vgg11_bn", "googlenet": "googlenet",
    "inception": "inception_v3", "inception (v4)": "inception_v4", "resnet": "resnet18", "cifar_resnet": "resnet20",
    "preact_resnet": "resnetv2_50", "densenet": "densenet121", "xception": "xception", "mobilenet (v1)": "mobilenet_v1",
    "mobilenet (v2)": "mobilenet_v2", "mobilenet (v3)": "mobilenet_v3_small", "efficientnet": "efficientnet_b0",
    "efficientnet (v2)": "efficientnet_v2_s", "regnet": "regnet_y_400mf", "convnext": "convnext_tiny",
    "vit": "vit_tiny_patch16_224", "swin": "swin_t", "cct": "cct_7_3x1", "coatnet": "coatnet_0", "airbench": "airbench94",
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the table in docs/export.md")
    args = parser.parse_args()
    rows = ["| family | checked as | ONNX | pt2 |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for family, name in FAMILIES.items():
            start = time.perf_counter()
            results = [check_family(name, fmt, tmp) for fmt in ("onnx", "pt2")]
            size = max(min_input_size(build_model(name, device="meta")), 32)
            rows.append(
                f"| {family} | `{name}` ({model_info(name).in_chans}x{size}x{size}) | {results[0]} | {results[1]} |"
            )
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True, file=sys.stderr)
    table = "\n".join(rows)
    print(table)
    if args.write:
        doc = ROOT / "docs" / "export.md"
        text = doc.read_text()
        marked = re.compile(r"<!-- export-table -->.*?<!-- /export-table -->", re.DOTALL)
        block = f"<!-- export-table -->\n{table}\n<!-- /export-table -->"
        doc.write_text(
            marked.sub(block, text) if marked.search(text) else text.replace("EXPORT_TABLE", block)
        )


if __name__ == "__main__":
    main()
