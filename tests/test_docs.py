"""Every command and Python block shown in README.md and docs/*.md runs as shown.

Shell commands come from ```bash and ```console blocks: a line starting with ``imgcls `` (or
``torchrun ``) is run; a line starting with ``$ `` is run and the lines after it, up to the next
command, must appear in what it prints. They run in document order, from a scratch workspace that
links the repository's data, fixtures and search spaces, so a block may use what an earlier one made
(``runs/lenet5`` after ``imgcls train``). What the workspace holds beyond the repository and what is
changed in a command is said in ``PRELUDE`` and ``SUBSTITUTIONS``, each with its reason; a command
not run at all is in ``NOT_RUN``, with its reason. Printed figures in the documents come from a named
benchmark or say where they were measured (docs/testing.md has the table of claims).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from imgcls.pretrained import find

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNERS = ("imgcls ", "torchrun ")

# what the documents say -> what the test runs, and why
SUBSTITUTIONS = [
    (
        "mnist:data/mnist",
        "mnist:tests/fixtures/mnist",
        "the full-MNIST run is the suite's mnist_run fixture (the same command)",
    ),
    ("--epochs 10", "--epochs 1 --img-size 64", "ten 224-px epochs of ResNet-18 take minutes on 2 cores"),
    ("--epochs 15", "--epochs 2", "time; the figures for 15 epochs come from benchmarks/transfer.py"),
    ('"$(openssl rand -hex 16)"', "test-token", "the test runs no shell to expand it"),
    ("--budget 10m", "--budget 5s", "ten minutes per model; tests/test_bench.py checks a budget is kept"),
    (
        "--preset mnist-speedrun",
        "--preset mnist-speedrun --lr 0.05",
        "the fixture's 58 digits are one batch an epoch: the preset's rate is for 230 steps of 256",
    ),
    (
        "--trials 20",
        "--trials 2",
        "twenty trials take minutes; tests/test_tune.py runs studies of 4 and 2 x 3",
    ),
]
ENV: dict[str, str] = {}  # what the workspace sets for every command (see workspace())
SERVERS = ("imgcls serve",)  # run until stopped: started on a free port, asked /health, stopped
# commands of the documents that the suite does not run here, and why
NOT_RUN = {
    "make demo": "the install plus the full-MNIST command above, which the mnist_run fixture runs",
    "make test": "this test suite",
    ".venv/bin/python tests/mutation_check.py": "runs parts of this suite once per mutation (minutes); its results are in docs/testing.md",
    "torchrun --standalone --nproc-per-node 8 -m imgcls train --data DATA --model resnet50 --epochs 90 --device cuda": "needs a machine with 8 GPUs",
    "torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --rdzv-id job1 "
    "--max-restarts 3 -m imgcls train --data 'shards/train-{000000..000999}.tar' --model resnet50 --resume auto --name r50": "needs 4 machines with 8 GPUs each",
}


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", path.read_text(), re.DOTALL)]


def commands(path: Path) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of a document's shell blocks, in order."""
    out: list[tuple[str, list[str]]] = []
    for lang, text in blocks(path):
        if lang not in ("bash", "console"):
            continue
        prompted = False  # the last command had a "$ " prompt: the lines below it are its output
        for line in re.sub(r"\s*\\\n\s*", " ", text).splitlines():  # a trailing backslash continues the line
            command = line.removeprefix("$ ").split("  #")[0].strip()
            if line.startswith("$ ") or line.startswith(RUNNERS) or command in NOT_RUN:
                out.append((command, []))
                prompted = line.startswith("$ ")
            elif prompted and line.strip():
                out[-1][1].append(line.strip())
    return out


def python_blocks(path: Path) -> list[str]:
    return [text for lang, text in blocks(path) if lang == "python"]


SHELL = [(p.name, i, cmd, expect) for p in DOCUMENTS for i, (cmd, expect) in enumerate(commands(p))]
PYTHON = [(p.name, i, text) for p in DOCUMENTS for i, text in enumerate(python_blocks(p))]


def test_the_documents_show_commands_and_code() -> None:
    readme = [c for name, _, c, _ in SHELL if name == "README.md"]
    assert any(c.startswith("imgcls data") for c in readme) and any(
        c.startswith("imgcls eval") for c in readme
    )
    assert any(name == "README.md" for name, _, _ in PYTHON)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder that looks like the repository root (data, tests, spaces linked) plus what the
    documents assume a user has: a downloaded checkpoint, a photo folder, runs A and data B."""
    import torch

    import imgcls

    ws = tmp_path_factory.mktemp("docs-workspace")
    for name in ("data", "tests", "spaces", "docs", "benchmarks"):
        (ws / name).symlink_to(ROOT / name)
    fixtures = ROOT / "tests" / "fixtures" / "cifar_jpg"
    (ws / "my_photos").symlink_to(fixtures)  # a user's photo folder
    (ws / "B").symlink_to(fixtures)  # the transfer example's target data
    # a torchvision checkpoint as downloaded (its published file name); the fill is random init
    torch.save(imgcls.create_model("resnet18").state_dict(), ws / "resnet18-f37072fd.pth")
    # resnet18's default catalogue weights already in torch hub's cache, as torchvision would leave them
    # (no network here): a random init, under its own hash, which $IMGCLS_CATALOGUE names (a mirror's entry)
    body = (ws / "resnet18-f37072fd.pth").read_bytes()
    name = f"resnet18-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    (ws / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (ws / "torch" / "hub" / "checkpoints" / name).write_bytes(body)
    entry = {**asdict(find("resnet18")), "url": f"http://127.0.0.1:9/{name}", "sha256_prefix": name[9:17]}
    (ws / "catalogue.json").write_text(json.dumps([entry]))
    ENV.update(TORCH_HOME=str(ws / "torch"), IMGCLS_CATALOGUE=str(ws / "catalogue.json"), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "imgcls", "train", "--data", str(fixtures), "--model", "resnet20",
                        "--epochs", "1", "--name", "A", "--no-progress"], cwd=ws, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return ws


def substituted(command: str) -> str:
    for theirs, ours, _ in SUBSTITUTIONS:
        command = command.replace(theirs, ours)
    return command


@pytest.mark.parametrize(
    ("doc", "index", "command", "expect"), SHELL, ids=[f"{d}:{i}" for d, i, _, _ in SHELL]
)
def test_documented_command_runs(
    workspace: Path, doc: str, index: int, command: str, expect: list[str]
) -> None:
    if command in NOT_RUN:
        pytest.skip(NOT_RUN[command])
    args = shlex.split(substituted(command))
    runner = [sys.executable, "-m", "imgcls" if args[0] == "imgcls" else "torch.distributed.run"]
    env = {**os.environ, "COLUMNS": "200", **ENV}
    if command.startswith(SERVERS):
        return serve_briefly([*runner, *args[1:]], workspace, env)
    r = subprocess.run(
        [*runner, *args[1:]], cwd=workspace, capture_output=True, text=True, timeout=600, env=env
    )
    printed = r.stdout + r.stderr
    if expect:  # an example of what it prints, errors included
        for line in expect:
            assert line in printed, f"{command}: expected {line!r} in:\n{printed[-3000:]}"
    else:
        assert r.returncode == 0, f"{command}: {r.stderr[-3000:]}"


@pytest.mark.parametrize(("doc", "index", "code"), PYTHON, ids=[f"{d}:{i}" for d, i, _ in PYTHON])
def test_documented_python_runs(
    workspace: Path, doc: str, index: int, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    exec(compile(code, f"{doc} block {index}", "exec"), {})


def serve_briefly(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Start a documented server on a free port, wait for its /health (asked on 127.0.0.1), stop it."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"{' '.join(cmd)} did not start: {proc.communicate(timeout=10)[1][-2000:]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
