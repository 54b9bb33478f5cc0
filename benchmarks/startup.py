"""How much of a short first run is start-up (issue 29): `imgcls train` on a folder of photos (the
model chosen for it, two epochs) and `make demo`'s LeNet-5 epoch on MNIST, each with nothing cached
(an empty IMGCLS_CACHE: no precision verdict, no decoded pixels), beside PyTorch's own floor — the
seconds `import torch` and building a `torch.optim` optimiser take in a bare interpreter (the first
optimiser imports torch._dynamo). Reads each run's timings.json; writes benchmarks/startup.json + .md.

    .venv/bin/python benchmarks/startup.py --photos DIR --mnist data/mnist      # ~4 min on 2 cores
    .venv/bin/python benchmarks/startup.py ... --src OTHER_CHECKOUT/src --label before

``--src`` times another checkout's code with this environment (a git worktree of an older commit);
each label's rows are kept in the JSON, so a before/after table builds up over two calls.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT_JSON, OUT_MD = HERE / "startup.json", HERE / "startup.md"
FLOOR = "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def timed_run(args: list[str], src: Path | None) -> dict[str, float]:
    """One `imgcls train` in a fresh folder and an empty cache: its timings.json and wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IMGCLS_CACHE": str(Path(tmp) / "cache")}
        if src is not None:
            env["PYTHONPATH"] = str(src.resolve())
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imgcls", "train", *args, "--out", tmp, "--no-progress"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        wall = time.perf_counter() - start
        (timings,) = Path(tmp).glob("*/timings.json")
        return {**json.loads(timings.read_text()), "wall": wall}


def floor_seconds(repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", FLOOR], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def render(data: dict) -> str:
    lines = [
        "# Start-up of a short first run",
        "",
        f"`.venv/bin/python benchmarks/startup.py` on {data['cpu']} ({data['cores']} cores), {data['date']}: "
        "nothing cached (an empty `IMGCLS_CACHE`). Start-up is process start to the first training step "
        "(imports, data, model, the precision trial). PyTorch's floor: `import torch` and a first "
        f"`torch.optim` optimiser in a bare interpreter, {data['floor']:.1f} s.",
        "",
        "| code | run | wall s | start-up s | start-up share | training steps s | evaluation s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in data["runs"].items():
        for name, t in runs.items():
            lines.append(f"| {label} | {name} | {t['total']:.1f} | {t['startup']:.1f} | {t['startup'] / t['total']:.0%} "
                         f"| {t['train']:.1f} | {t['eval']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--photos", type=Path, required=True, help="a folder of photos: train/CLASS/*.jpg, val/CLASS/*.jpg"
    )
    ap.add_argument("--mnist", type=Path, default=Path("data/mnist"))
    ap.add_argument("--src", type=Path, help="time this checkout's src/ instead of the installed imgcls")
    ap.add_argument("--label", default="this commit")
    args = ap.parse_args()
    data = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {"runs": {}}
    runs = {
        f"train --data PHOTOS --epochs 2 ({sum(1 for _ in args.photos.rglob('*.jpg'))} photos)":
            timed_run(["--data", str(args.photos), "--epochs", "2"], args.src),
        "make demo (lenet5, 1 MNIST epoch)":
            timed_run(["--data", f"mnist:{args.mnist}", "--model", "lenet5", "--epochs", "1"], args.src),
    }  # fmt: skip
    data.update(
        cpu=cpu_model(), cores=os.cpu_count(), date=datetime.date.today().isoformat(), floor=floor_seconds()
    )
    data["runs"][args.label] = runs
    OUT_JSON.write_text(json.dumps(data, indent=1) + "\n")
    OUT_MD.write_text(render(data))
    print(render(data))


if __name__ == "__main__":
    main()
