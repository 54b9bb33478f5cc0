"""``imgcls serve``: an HTTP API and a web page over one model, safe by default.

    GET  /               the page: choose or drop an image, see the probability bars
    POST /predict        one image: the raw bytes as the body, or one multipart file -> top-k JSON
    POST /predict/batch  {"images": [base64, ...]} -> a prediction (or an error) per image
    GET  /health         alive;  GET /ready: 503 until the model is loaded and warmed up
    GET  /info           model, labels, input size, task, backend
    GET  /metrics        Prometheus: requests, latencies, batch sizes, queue depth, errors by code
    GET  /docs           OpenAPI (assets served by the app; /openapi.json)

Safe by default: no endpoint loads, replaces or manages a model; a token (``--token`` /
``IMGCLS_TOKEN``, compared in constant time) guards everything but the page, its assets, /health and
/ready, and is required to listen beyond loopback; request bodies are limited while they stream
(413, before the body is read when Content-Length says so); only image formats are accepted, by
their magic bytes (415); images go through the one decode path (bomb limit, truncation: 4xx naming
the problem); a bounded queue answers 503 with Retry-After when full; a request waits at most
``timeout_s``; errors are JSON; responses carry Content-Security-Policy and X-Content-Type-Options;
uploaded file names are never put into HTML.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..data.decode import BadImageError
from ..data.splits import DataError
from .backends import Backend
from .batcher import Batcher, QueueFull

STATIC = resources.files("imgcls.serve") / "static"
MAGIC = (  # what the one decode path reads, told by the first bytes
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)  # fmt: skip
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")  # fmt: skip
OPEN = ("/", "/health", "/ready", "/docs", "/openapi.json")  # and /static/...: no token needed


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def image_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in MAGIC if data.startswith(magic)), None)


class BodyLimit:
    """Pure ASGI: refuse a body larger than ``limit`` bytes — at once when Content-Length says so,
    else as soon as the streamed chunks pass it (neither uvicorn nor Starlette limits bodies)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _json_error(
                send, 413, f"the request body is larger than the limit of {self.limit:,} bytes"
            )
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, f"the request body is larger than the limit of {self.limit:,} bytes")
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _json_error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    import json

    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BatchRequest(BaseModel):
    images: list[str] = Field(..., description="images as base64 (standard alphabet), at most --max-batch")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("imgcls_requests", "HTTP requests", ["endpoint", "code"], registry=r)
        self.latency = Histogram("imgcls_request_seconds", "Request latency", ["endpoint"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10))  # fmt: skip
        self.batch = Histogram("imgcls_batch_size", "Images per forward pass", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))  # fmt: skip
        self.forward = Histogram("imgcls_forward_seconds", "Forward pass time", registry=r)
        self.queue = Gauge("imgcls_queue_depth", "Images waiting for the model", registry=r)
        self.errors = Counter("imgcls_errors", "Error responses by status code", ["code"], registry=r)


def create_app(
    open_model: Callable[[], Backend], *, token: str | None = None, max_batch: int = 32, max_wait_ms: float = 5.0,
    queue_size: int = 256, timeout_s: float = 30.0, max_body: int = 16 * 2**20, decode_threads: int = 4,
) -> FastAPI:  # fmt: skip
    """The app over the model ``open_model`` builds (in the background: /ready says when)."""
    metrics = Metrics()
    state: dict[str, Any] = {"backend": None, "batcher": None, "error": None}
    decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="imgcls-decode")

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()

        def load_and_warm() -> Backend:
            backend = open_model()
            pre = backend.preprocess
            backend.infer(
                torch.zeros(1, pre.channels, pre.size, pre.size, dtype=torch.uint8)
            )  # kernels chosen
            return backend

        async def start() -> None:
            try:
                backend = await loop.run_in_executor(None, load_and_warm)
            except Exception as e:  # reported by /ready and /predict, the process stays up to say so
                state["error"] = f"{type(e).__name__}: {e}"
                return
            batcher = Batcher(backend.infer, max_batch, max_wait_ms, queue_size,
                              on_batch=lambda n, s: (metrics.batch.observe(n), metrics.forward.observe(s)))  # fmt: skip
            batcher.start()
            state["backend"], state["batcher"] = backend, batcher

        loading = loop.create_task(start())
        yield
        loading.cancel()
        if state["batcher"] is not None:
            await state["batcher"].stop()
        decode_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="imgcls", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Image classification over one trained model (imgcls serve).")  # fmt: skip

    # ---- errors: always JSON ----------------------------------------------------------------------
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(str(status)).inc()
        return JSONResponse({"error": {"status": status, "message": message}}, status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error(e.status, e.message, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail), dict(e.headers or {}))

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    # ---- the model ------------------------------------------------------------------------------
    def ready() -> tuple[Backend, Batcher]:
        if state["error"]:
            raise ApiError(503, f"the model could not be loaded: {state['error']}")
        if state["backend"] is None:
            raise ApiError(503, "the model is still loading", {"Retry-After": "1"})
        return state["backend"], state["batcher"]

    async def classify(data: bytes, topk: int) -> dict[str, Any]:
        backend, batcher = ready()
        if not data:
            raise ApiError(400, "the request has no image in it (an empty body)")
        kind = image_format(data)
        if kind is None:
            raise ApiError(
                415, "the body is not an image imgcls reads: send JPEG, PNG, GIF, BMP, WebP or TIFF bytes"
            )
        loop = asyncio.get_running_loop()
        try:
            with batcher.coming():  # the batch being gathered waits for this image
                pixels = await loop.run_in_executor(decode_pool, backend.prepare, data)
                future = batcher.submit(pixels)
        except BadImageError as e:
            status = 413 if e.reason.startswith("is too large") else 400
            raise ApiError(status, f"the {kind} image {e.reason}") from None
        except DataError as e:
            raise ApiError(400, str(e)) from None
        except QueueFull:
            raise ApiError(
                503, "the server is busy (its queue is full): try again", {"Retry-After": "1"}
            ) from None
        metrics.queue.set(batcher.depth)
        try:
            probs = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ApiError(504, f"the model did not answer within {timeout_s:g} s") from None
        finally:
            metrics.queue.set(batcher.depth)
        return _prediction(backend, np.asarray(probs, dtype=np.float64), topk)

    image_body = {"requestBody": {"required": True, "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                                           "required": ["file"]}}}}}  # fmt: skip

    @app.post("/predict", openapi_extra=image_body, summary="Classify one image")
    async def predict(request: Request, topk: int = Query(5, ge=1, le=1000)) -> dict[str, Any]:
        """The image is the raw request body, or the one file of a multipart form."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            data, name = await _one_file(request, max_body)
        else:
            data, name = await request.body(), None
        result = await classify(data, topk)
        return {"file": name, **result} if name is not None else result

    @app.post("/predict/batch", summary="Classify several images (base64 in JSON)")
    async def predict_batch(body: BatchRequest, topk: int = Query(5, ge=1, le=1000)) -> dict[str, Any]:
        if len(body.images) > max_batch:
            raise ApiError(413, f"{len(body.images)} images: at most {max_batch} a request (--max-batch)")

        async def one(text: str) -> dict[str, Any]:
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return {"error": {"status": 400, "message": "not base64"}}
            try:
                return await classify(data, topk)
            except ApiError as e:
                if e.status in (503, 504):
                    raise
                return {"error": {"status": e.status, "message": e.message}}

        return {"predictions": await asyncio.gather(*(one(t) for t in body.images))}

    # ---- the rest ---------------------------------------------------------------------------------
    @app.get("/health", summary="Alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Loaded and warmed up (503 until then)")
    async def is_ready() -> dict[str, str]:
        ready()
        return {"status": "ready"}

    @app.get("/info", summary="The model being served")
    async def info() -> dict[str, Any]:
        backend, _ = ready()
        return {**backend.describe(), "max_batch": max_batch, "max_wait_ms": max_wait_ms}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        if state["batcher"] is not None:
            metrics.queue.set(state["batcher"].depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse((STATIC / "docs.html").read_text())

    app.mount("/static/swagger", StaticFiles(directory=_swagger_files()), name="swagger")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return SecurityHeaders(BodyLimit(Guard(app, token, metrics), max_body))  # type: ignore[return-value]


def _swagger_files() -> str:
    """Swagger UI's files, from the swagger-ui-bundle package: /docs needs no CDN."""
    import swagger_ui_bundle

    return str(swagger_ui_bundle.swagger_ui_path)


class Guard:
    """Pure ASGI: the token check (constant time) on everything but the page, its assets and the
    probes; and the request count and latency of every response, by endpoint and status."""

    ENDPOINTS = ("/predict", "/predict/batch", "/info", "/metrics", "/ready", "/health", "/")

    def __init__(self, app: ASGIApp, token: str | None, metrics: Metrics) -> None:
        self.app, self.token, self.metrics = app, token, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path = time.perf_counter(), scope["path"]
        endpoint = path if path in self.ENDPOINTS else "other"
        status = 500

        async def measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if path not in ("/", "/docs") and not path.startswith("/static/"):
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"cache-control", b"no-store")],
                    }
            await send(message)

        try:
            if (
                self.token
                and not (path in OPEN or path.startswith("/static/"))
                and not _authorised(scope, self.token)
            ):
                status = 401
                self.metrics.errors.labels("401").inc()
                await _json_error(send, 401, "missing or wrong token: send Authorization: Bearer TOKEN",
                                  [(b"www-authenticate", b"Bearer")])  # fmt: skip
            else:
                await self.app(scope, receive, measured)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def _authorised(scope: Scope, token: str) -> bool:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    given = headers.get("authorization", "")
    given = given[7:] if given.lower().startswith("bearer ") else headers.get("x-token", "")
    return hmac.compare_digest(given.encode(), token.encode())


async def _one_file(request: Request, max_body: int) -> tuple[bytes, str]:
    """The one file of a multipart form (at most one file and a few small fields are parsed)."""
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=max_body)
    except ApiError:
        raise
    except Exception as e:  # malformed multipart, too many parts
        raise ApiError(400, f"the multipart form cannot be read ({str(e)[:200]}); send one file") from None
    files = [v for v in form.values() if hasattr(v, "read")]
    if len(files) != 1:
        raise ApiError(400, "a multipart request carries exactly one file")
    data = await files[0].read()
    return data, str(files[0].filename or "")


def _prediction(backend: Backend, probs: np.ndarray, topk: int) -> dict[str, Any]:
    classes = backend.classes
    order = np.argsort(-probs, kind="stable")[: min(topk, len(classes))]
    top = [{"class": classes[i], "probability": float(probs[i])} for i in order]
    if backend.task == "binary":
        label = classes[int(probs[1] >= backend.threshold)]
    else:
        label = classes[int(order[0])]
    out: dict[str, Any] = {"model": backend.model, "task": backend.task, "label": label,
                           "probability": float(probs[classes.index(label)]), "top": top}  # fmt: skip
    if backend.task == "multilabel":
        out["labels"] = [
            {"class": c, "probability": float(p)} for c, p in zip(classes, probs) if p >= backend.threshold
        ]
        out["threshold"] = backend.threshold
    return out
