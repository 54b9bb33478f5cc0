"""Load on `imgcls serve` (loopback only, bounded): p50 / p99 latency and requests/s at 1, 4, 16
and 64 concurrent clients, for the torch and onnx backends, against the bare model's batch-1
latency and batch-32 throughput measured in the same run.

    .venv/bin/python benchmarks/serve_load.py                          # resnet18 at 224 px
    .venv/bin/python benchmarks/serve_load.py --model resnet50 --clients 1,16 --requests 4

The model has random weights (timing does not depend on them), saved as a run folder and exported
to ONNX; the requests are real CIFAR-10 test images re-encoded as 400x300 JPEGs (a photo's decode and
resize). The server is the real `imgcls serve` command in its own process on an ephemeral loopback
port; the clients are asyncio + httpx in this process. Each level sends `--requests` x clients
requests (at least 40). The bare model runs the backend's forward on decoded batches, in this
process while the server is idle. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).parents[1]


def make_run(model: str, folder: Path) -> Path:
    """A run folder of ``model`` with random weights (and 10 classes), exported to ONNX."""
    import imgcls
    from imgcls.data.pipeline import preprocess_for
    from imgcls.run import RunFolder, RunMeta

    torch.manual_seed(0)
    net = imgcls.create_model(model, num_classes=10)
    pre = preprocess_for(imgcls.model_info(model), 3)
    run = RunFolder(folder / model)
    run.create()
    run.write_weights(
        net.state_dict(), RunMeta(model, 10, [f"class{i}" for i in range(10)], "multiclass", pre.to_dict())
    )
    r = subprocess.run([sys.executable, "-m", "imgcls", "export", str(run.root), "--dynamic-batch", "--check-images",
                        str(ROOT / "tests" / "fixtures" / "images" / "cifar")], capture_output=True, text=True)  # fmt: skip
    if r.returncode:
        raise SystemExit(r.stderr)
    return run.root


def photos() -> list[bytes]:
    out = []
    for path in sorted((ROOT / "tests" / "fixtures" / "cifar_jpg" / "test").rglob("*.jpg")):
        buf = io.BytesIO()
        Image.open(path).convert("RGB").resize((400, 300), Image.Resampling.BICUBIC).save(
            buf, "JPEG", quality=90
        )
        out.append(buf.getvalue())
    return out


def bare(run: Path, kind: str, images: list[bytes]) -> tuple[float, float]:
    """(batch-1 latency median in s, batch-32 img/s) of the backend's forward alone."""
    from imgcls.serve import open_backend

    backend = open_backend(run, kind)
    pixels = [backend.prepare(b) for b in images]
    one = torch.stack(pixels[:1])
    batch = torch.stack([pixels[i % len(pixels)] for i in range(32)])
    backend.infer(one), backend.infer(batch)  # warm-up
    singles = []
    for _ in range(30):
        start = time.perf_counter()
        backend.infer(one)
        singles.append(time.perf_counter() - start)
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        backend.infer(batch)
        batches.append(time.perf_counter() - start)
    return statistics.median(singles), 32 / statistics.median(batches)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def level(url: str, images: list[bytes], clients: int, total: int) -> tuple[list[float], float]:
    """Latencies of ``total`` requests sent by ``clients`` concurrent clients, and requests/s."""
    latencies: list[float] = []
    sent = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < total:
            i = sent
            sent += 1
            start = time.perf_counter()
            r = await c.post(url + "/predict", content=images[i % len(images)])
            r.raise_for_status()
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as c:
        await asyncio.gather(*(client(c) for _ in range(3)))  # warm-up
        latencies.clear()
        sent = 0
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        return latencies, total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument(
        "--requests", type=int, default=8, help="requests per client at each level (at least 40 in all)"
    )
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    images = photos()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(args.model, Path(tmp))
        for kind in args.backends.split(","):
            latency1, throughput32 = bare(run, kind, images)
            port = free_port()
            server = subprocess.Popen([sys.executable, "-m", "imgcls", "serve", str(run), "--backend", kind, "--port", str(port),
                                       "--max-batch", str(args.max_batch)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.time() + 120
                while time.time() < deadline:
                    try:
                        if httpx.get(url + "/ready").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                for clients in map(int, args.clients.split(",")):
                    lat, rps = asyncio.run(level(url, images, clients, max(40, clients * args.requests)))
                    q = statistics.quantiles(lat, n=100)
                    row = {"backend": kind, "clients": clients, "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * q[98],
                           "req_s": rps, "bare_batch1_ms": 1000 * latency1, "bare_batch32_img_s": throughput32}  # fmt: skip
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                server.terminate()
                server.wait(30)
    table = Table(title=f"imgcls serve, {args.model} at 224 px, {torch.get_num_threads()} cores, loopback")
    for col in (
        "backend",
        "clients",
        "p50 ms",
        "p99 ms",
        "req/s",
        "bare batch-1 ms",
        "p50 overhead",
        "bare batch-32 img/s",
        "of batch-32",
    ):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        table.add_row(r["backend"], str(r["clients"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['req_s']:.1f}",
                      f"{r['bare_batch1_ms']:.1f}", f"{r['p50_ms'] / r['bare_batch1_ms'] - 1:+.0%}",
                      f"{r['bare_batch32_img_s']:.1f}", f"{r['req_s'] / r['bare_batch32_img_s']:.0%}")  # fmt: skip
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
