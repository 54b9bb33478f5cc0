"""`imgcls export`: a run as ONNX or pt2, checked against PyTorch on real images."""

from __future__ import annotations

import argparse

from ..config import at_least
from .options import expand_images, number


def add(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export

    checks = expand_images(args.check_images) if args.check_images else None
    r = export(args.run, args.format, args.out, dynamic_batch=args.dynamic_batch, opset=args.opset,
               logits=args.logits, check_images=checks)  # fmt: skip
    batches = " and ".join(str(b) for b in r.batches)
    print(f"exported: {r.path} ({r.format}); sidecar: {r.sidecar}")
    print(
        f"checked on {r.images} real images at batch {batches}: max |difference| vs PyTorch {r.max_diff:.2e}"
    )
    return 0
