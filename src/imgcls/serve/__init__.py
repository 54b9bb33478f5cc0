"""``imgcls serve``: the HTTP API and the page over one model (app.py), dynamic batching
(batcher.py), the model behind it in PyTorch or onnxruntime (backends.py), the page's files (static/)."""

from __future__ import annotations

import ipaddress
import os
import socket

from ..errors import ConfigError
from .app import create_app
from .backends import Backend, open_backend, resolve_target

__all__ = ["Backend", "create_app", "loopback", "open_backend", "serve"]


def loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def serve(
    target: str, host: str = "127.0.0.1", port: int = 8000, backend: str = "auto", token: str | None = None,
    max_batch: int = 32, max_wait_ms: float = 5.0, queue_size: int = 256, timeout_s: float = 30.0,
    max_body: int = 16 * 2**20, threads: int | None = None,
) -> None:  # fmt: skip
    """Serve ``target`` (a run folder or an exported .onnx file) with uvicorn until interrupted."""
    import uvicorn

    token = token or os.environ.get("IMGCLS_TOKEN") or None
    if not loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host} without a token: anyone who can reach it could use the model. "
            "Give --token T (or IMGCLS_TOKEN), or listen on 127.0.0.1"
        )
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"--backend must be torch or onnx, got {backend!r}")
    kind, path = resolve_target(target, backend)  # a wrong path fails here, before the server starts
    app = create_app(lambda: open_backend(path, kind, threads), token=token, max_batch=max_batch,
                     max_wait_ms=max_wait_ms, queue_size=queue_size, timeout_s=timeout_s, max_body=max_body)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
