"""`imgcls serve` over real HTTP: uvicorn on an ephemeral loopback port, started and stopped by the
tests, traffic to 127.0.0.1 only, bounded in count and time."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import imgcls
from imgcls.data import load_mnist
from imgcls.serve import create_app, open_backend
from imgcls.serve.backends import TorchBackend
from support import FIXTURES, ROOT, cli

BAD = FIXTURES / "images" / "bad"


@contextmanager
def serving(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``app`` under a real uvicorn on 127.0.0.1, an ephemeral port; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_ready(url: str, headers: dict | None = None, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if httpx.get(url + "/ready", headers=headers).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the server never became ready")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The format-1 LeNet-5 run folder, copied, with its ONNX export beside it."""
    folder = tmp_path_factory.mktemp("served") / "run"
    shutil.copytree(FIXTURES / "legacy" / "lenet5-format1", folder)
    r = cli("export", str(folder), "--dynamic-batch")
    assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("digits")
    images, _ = load_mnist(FIXTURES / "mnist", "test")
    paths = []
    for i in range(12):
        paths.append(folder / f"{i:02d}.png")
        Image.fromarray(images[i]).save(paths[-1])
    return [*paths, FIXTURES / "images" / "cifar" / "cat_0000.jpg"]


@pytest.fixture(scope="module")
def url(run: Path) -> Iterator[str]:
    with serving(create_app(lambda: open_backend(run))) as base:
        wait_ready(base)
        yield base


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predictions_equal_imgcls_predict(run: Path, digits: list[Path], backend: str) -> None:
    r = cli("predict", str(run), *map(str, digits), "--format", "json", "--topk", "10")
    assert r.returncode == 0, r.stderr
    expected = json.loads(r.stdout)
    with serving(create_app(lambda: open_backend(run, backend), max_batch=4)) as base:
        wait_ready(base)
        info = httpx.get(base + "/info").json()
        assert (
            info["backend"] == backend
            and info["labels"] == imgcls.load(run).classes
            and info["task"] == "multiclass"
        )
        for path, want in zip(digits, expected):
            got = httpx.post(base + "/predict?topk=10", content=path.read_bytes()).json()
            assert got["label"] == want["label"] and [t["class"] for t in got["top"]] == [
                t["class"] for t in want["top"]
            ]
            tol = 1e-6 if backend == "torch" else 1e-4
            assert np.allclose(
                [t["probability"] for t in got["top"]], [t["probability"] for t in want["top"]], atol=tol
            )


def test_multipart_takes_one_file(url: str, digits: list[Path]) -> None:
    data = digits[0].read_bytes()
    r = httpx.post(url + "/predict", files={"file": ("seven.png", data, "image/png")})
    assert r.status_code == 200 and r.json()["file"] == "seven.png"
    r = httpx.post(
        url + "/predict", files=[("a", ("a.png", data, "image/png")), ("b", ("b.png", data, "image/png"))]
    )
    assert r.status_code == 400 and "error" in r.json()


def test_the_batch_endpoint_answers_each_image(url: str, run: Path, digits: list[Path]) -> None:
    images = [base64.b64encode(p.read_bytes()).decode() for p in digits[:3]] + [
        "not base64!",
        base64.b64encode(b"text").decode(),
    ]
    r = httpx.post(url + "/predict/batch", json={"images": images})
    assert r.status_code == 200
    out = r.json()["predictions"]
    assert [o["label"] for o in out[:3]] == [p.label for p in imgcls.load(run).predict(digits[:3])]
    assert out[3]["error"]["status"] == 400 and out[4]["error"]["status"] == 415


def test_bad_bodies_get_the_right_4xx_naming_the_problem(url: str) -> None:
    r = httpx.post(url + "/predict", content=b"hello, not an image")
    assert r.status_code == 415 and "JPEG, PNG" in r.json()["error"]["message"]
    r = httpx.post(url + "/predict", content=(BAD / "truncated.jpg").read_bytes())
    assert r.status_code == 400 and "truncated" in r.json()["error"]["message"]
    bomb = next(p for p in BAD.iterdir() if "bomb" in p.name)
    r = httpx.post(url + "/predict", content=bomb.read_bytes())
    assert r.status_code == 413 and "pixels" in r.json()["error"]["message"]
    r = httpx.post(url + "/predict", content=b"")
    assert r.status_code == 400
    r = httpx.post(url + "/predict?topk=0", content=b"x")
    assert r.status_code == 422 and "topk" in r.json()["error"]["message"]


def test_an_oversize_body_is_refused_before_it_is_read(run: Path) -> None:
    with serving(create_app(lambda: open_backend(run), max_body=1_000_000)) as base:
        wait_ready(base)
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # says 100 MB, sends 1 kB
            s.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"\xff" * 1000
            )
            start = time.perf_counter()
            head = s.recv(65536).decode(errors="replace")
        assert head.startswith("HTTP/1.1 413") and time.perf_counter() - start < 5

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused as the chunks pass the limit
            for _ in range(40):
                yield b"\xff\xd8\xff" + b"\0" * 100_000

        r = httpx.post(base + "/predict", content=chunks())
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_a_token_guards_everything_but_the_page_and_the_probes(run: Path, digits: list[Path]) -> None:
    with serving(create_app(lambda: open_backend(run), token="s3cret")) as base:
        ok = {"Authorization": "Bearer s3cret"}
        wait_ready(base)
        data = digits[0].read_bytes()
        assert httpx.post(base + "/predict", content=data).status_code == 401
        r = httpx.post(base + "/predict", content=data, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.post(base + "/predict", content=data, headers=ok).status_code == 200
        assert httpx.post(base + "/predict", content=data, headers={"X-Token": "s3cret"}).status_code == 200
        assert (
            httpx.get(base + "/metrics").status_code == 401 and httpx.get(base + "/info").status_code == 401
        )
        for open_path in ("/", "/health", "/ready", "/static/app.js"):
            assert httpx.get(base + open_path).status_code == 200, open_path


def test_a_public_address_needs_a_token(run: Path) -> None:
    r = cli("serve", str(run), "--host", "0.0.0.0", timeout=60)
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 without a token" in r.stderr
    r = cli("serve", str(run.with_suffix(".pt2")), timeout=60)
    assert r.returncode == 2
    (run.parent / "x.pt2").write_bytes(b"")
    r = cli("serve", str(run.parent / "x.pt2"), timeout=60)
    assert r.returncode == 2 and "unpickling" in r.stderr


class Slow(TorchBackend):
    def __init__(self, run: Path, delay: float) -> None:
        super().__init__(run)
        self.delay = delay

    def infer(self, pixels):  # type: ignore[no-untyped-def]
        time.sleep(self.delay)
        return super().infer(pixels)


def test_a_full_queue_answers_503_with_retry_after(run: Path, digits: list[Path]) -> None:
    with serving(create_app(lambda: Slow(run, 0.3), max_batch=1, queue_size=1)) as base:
        wait_ready(base, timeout=60)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    *(client.post(base + "/predict", content=digits[0].read_bytes()) for _ in range(6))
                )

        codes = [r.status_code for r in asyncio.run(burst())]
        busy = [r for r in asyncio.run(burst()) if r.status_code == 503]
        assert 200 in codes and 503 in codes and set(codes) <= {200, 503}
        assert busy and busy[0].headers["retry-after"] == "1" and "busy" in busy[0].json()["error"]["message"]


def test_ready_says_503_until_the_model_is_loaded(run: Path) -> None:
    def slow_open():  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return open_backend(run)

    with serving(create_app(slow_open)) as base:
        first = httpx.get(base + "/ready")
        assert httpx.get(base + "/health").status_code == 200
        assert first.status_code == 503 and "loading" in first.json()["error"]["message"]
        wait_ready(base)


def test_200_concurrent_requests_all_answered_and_batched(run: Path, digits: list[Path]) -> None:
    expected = {p.name: imgcls.load(run).predict(p).label for p in digits}

    async def load() -> list[tuple[str, httpx.Response]]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            chosen = [digits[i % len(digits)] for i in range(200)]
            responses = await asyncio.gather(
                *(client.post(base + "/predict", content=p.read_bytes()) for p in chosen)
            )
            return list(zip([p.name for p in chosen], responses))

    with serving(create_app(lambda: open_backend(run), max_batch=16, max_wait_ms=5)) as base:
        wait_ready(base)
        results = asyncio.run(load())
        assert all(r.status_code == 200 for _, r in results)
        assert all(r.json()["label"] == expected[name] for name, r in results)
        from prometheus_client.parser import text_string_to_metric_families

        families = {f.name: f for f in text_string_to_metric_families(httpx.get(base + "/metrics").text)}
        batches = {s.name: s.value for s in families["imgcls_batch_size"].samples}
        assert batches["imgcls_batch_size_count"] < 200  # grouped into fewer forward passes
        assert batches["imgcls_batch_size_sum"] == 200
        requests = {tuple(sorted(s.labels.items())): s.value for s in families["imgcls_requests"].samples
                    if s.name == "imgcls_requests_total"}  # fmt: skip
        assert requests[(("code", "200"), ("endpoint", "/predict"))] == 200
        assert {"imgcls_request_seconds", "imgcls_queue_depth", "imgcls_errors"} <= set(families)


def test_responses_carry_the_security_headers_and_json_errors(url: str) -> None:
    r = httpx.get(url + "/")
    assert (
        "default-src 'self'" in r.headers["content-security-policy"]
        and r.headers["x-content-type-options"] == "nosniff"
    )
    assert '<script src="/static/app.js"' in r.text and "http" not in r.text.split("<body>")[0]  # no CDN
    r = httpx.get(url + "/no-such-page")
    assert r.status_code == 404 and r.json()["error"]["status"] == 404
    docs = httpx.get(url + "/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert httpx.get(url + "/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(url + "/openapi.json").json()["paths"]["/predict"]["post"]


def test_schemathesis_finds_no_server_error(url: str) -> None:
    r = subprocess.run([str(Path(sys.executable).parent / "schemathesis"), "run", url + "/openapi.json", "--checks", "not_a_server_error",
                        "--max-examples", "15", "--request-timeout", "20", "--generation-deterministic",
                        "--exclude-path", "/metrics"], capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
