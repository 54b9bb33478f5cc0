"""`imgcls serve`: the HTTP API and page over one model."""

from __future__ import annotations

import argparse

from ..config import Range, above, at_least
from .options import number


def add(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve import serve

    serve(args.target, args.host, args.port, args.backend, args.token, args.max_batch, args.max_wait_ms,
          args.queue_size, args.timeout, args.max_body_mb * 2**20, args.threads)  # fmt: skip
    return 0
