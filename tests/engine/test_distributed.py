"""`imgcls train` under real torchrun with 2 CPU processes (gloo), and with 1: the same losses as one process with
the same global batch, one run folder, identical weights on both ranks, every sample once per epoch
(image folders and tar shards), evaluation counting each image once, a SIGTERM to one rank restarted
by torchrun and resumed exactly, a NaN on one rank skipped by both."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import FOLDER, MNIST, ROOT, cli, losses

DIGITS = ["--data", f"mnist:{MNIST}", "--model", "lenet5", "--augment", "none", "--optimizer", "sgd", "--lr", "0.05",
          "--precision", "fp32", "--channels-last", "off", "--no-progress", "--no-tensorboard"]  # fmt: skip


def torchrun(
    *args: str, restarts: int = 0, timeout: float = 300, procs: int = 2
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
           "--max-restarts", str(restarts), *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("batch", "accum"), [(8, 1), (4, 2)])
def test_two_processes_train_like_one_with_the_global_batch(tmp_path: Path, batch: int, accum: int) -> None:
    """2 processes x batch B (x accumulation) = 1 process x batch 2B: per-step losses within 1e-5
    (float sums in another order), one run folder."""
    args = [*DIGITS, "--epochs", "2", "--accum-steps", str(accum)]
    one = cli("train", *args, "--batch-size", str(2 * batch), "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = torchrun("-m", "imgcls", "train", *args, "--batch-size", str(batch), "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["lenet5"]
    a, b = losses(tmp_path / "one" / "lenet5"), losses(tmp_path / "two" / "lenet5")
    assert len(a) == len(b) > 0 and b == pytest.approx(a, rel=1e-5)
    for x, y in zip(metrics(tmp_path / "one" / "lenet5"), metrics(tmp_path / "two" / "lenet5")):
        assert y["val"] == pytest.approx(x["val"], rel=1e-5)  # every val image counted once
    assert f"= {2 * batch * accum} images per step" in two.stdout
    cores = len(os.sched_getaffinity(0))
    assert f"threads: {max(1, cores // 2)} per process ({cores} cores / 2 processes" in two.stdout
    assert two.stdout.count("run: ") == 1  # rank 0 alone prints the summary


def test_torchrun_with_one_process_makes_a_group_of_one_that_trains_like_no_torchrun(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 1`` (how a one-GPU machine checks a multi-GPU job) makes a real process
    group of one: DDP and the collectives run, the log says so, and the losses are a plain run's."""
    args = [*DIGITS, "--epochs", "2", "--batch-size", "8"]
    plain = cli("train", *args, "--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    group = torchrun("-m", "imgcls", "train", *args, "--out", str(tmp_path / "group"), procs=1)
    assert group.returncode == 0, group.stderr
    assert "device: cpu, rank 0 of 1 over gloo" in group.stdout and "over gloo" not in plain.stdout
    assert "8 per process x 1 process = 8 images per step" in group.stdout
    a, b = losses(tmp_path / "plain" / "lenet5"), losses(tmp_path / "group" / "lenet5")
    assert len(a) == len(b) > 0 and b == pytest.approx(a, rel=1e-6)


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture JPEGs as ROOT/{train,val,test}/CLASS: 40 training images (4 a class), 21 val (an odd
    count: dealt like training batches, the last one would be left out), 19 test."""
    root = tmp_path_factory.mktemp("split")
    for i, cls in enumerate(sorted(p.name for p in (FOLDER / "train").iterdir())):
        files = sorted((FOLDER / "train" / cls).iterdir())
        tests = sorted((FOLDER / "test" / cls).iterdir())
        moved = tests[:1] if i == 0 else []
        for split, chosen in (
            ("train", files[:4]),
            ("val", files[4:] + moved),
            ("test", tests[len(moved) :]),
        ):
            (root / split / cls).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / split / cls / f"{split}-{f.name}")
    return root


def expected_keys(data: Path, split: str, shards: bool) -> list:
    if not shards:
        return list(range(len(list((data / split).rglob("*.jpg")))))
    from imgcls.data.shards import expand_urls, iter_samples

    return [
        f"{url}:{key}" for url in expand_urls(str(data / f"{split}-*.tar")) for key, _ in iter_samples(url)
    ]


@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_every_sample_once_per_epoch_and_the_same_weights_on_every_rank(
    tmp_path: Path, split_folder: Path, kind: str
) -> None:
    data = split_folder
    if kind == "shards":  # 4 training shards of 10: split by shard; the 20 val images in 2 shards
        r = cli("data", "shard", str(split_folder), str(tmp_path / "shards"), "--shard-size", "10")
        assert r.returncode == 0, r.stderr
        data = tmp_path / "shards"
    out = tmp_path / "record"
    out.mkdir()
    r = torchrun("tests/engine/ddp_run.py", str(out), "--", "--data", str(data), "--model", "resnet20", "--epochs", "2",
                 "--batch-size", "10", "--precision", "fp32", "--channels-last", "off", "--no-progress",
                 "--no-tensorboard", "--out", str(tmp_path / "runs"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # the same weights, bit for bit
    for epoch in (0, 1):
        seen = ranks[0]["seen"][f"train{epoch}"] + ranks[1]["seen"][f"train{epoch}"]
        assert sorted(map(str, seen)) == sorted(map(str, expected_keys(data, "train", kind == "shards")))
        assert ranks[0]["seen"][f"train{epoch}"] and ranks[1]["seen"][f"train{epoch}"]
    for split in ("val", "test"):
        passes = zip(ranks[0]["seen"][split], ranks[1]["seen"][split])
        for mine, theirs in passes:  # each evaluation: every image exactly once, over the two ranks
            assert sorted(map(str, mine + theirs)) == sorted(
                map(str, expected_keys(data, split, kind == "shards"))
            )
    assert ranks[0]["test"]["images"] == 19


def test_a_nan_on_one_rank_is_skipped_by_both(tmp_path: Path) -> None:
    out = tmp_path / "record"
    out.mkdir()
    r = torchrun("tests/engine/ddp_run.py", str(out), "--poison-rank", "1", "--poison-batch", "1", "--",
                 *DIGITS, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "runs"), timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 2  # 3 global batches, one skipped on both ranks
    assert metrics(tmp_path / "runs" / "lenet5")[0]["skipped_steps"] == 1
    assert ranks[0]["weights"] == ranks[1]["weights"]


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        out.append(pid)
    return out


def _worker(agent: int, local_rank: int, timeout: float = 60) -> int:
    """The pid of torchrun's worker with this LOCAL_RANK (a descendant of the agent process)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"LOCAL_RANK={local_rank}".encode() in environ and agent in _ancestors(int(proc.name)):
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError("torchrun's worker did not start")


def test_sigterm_to_one_rank_restarts_and_resumes_exactly(tmp_path: Path) -> None:
    args = ["-m", "imgcls", "train", *DIGITS, "--epochs", "20", "--batch-size", "8", "--save-every", "3",
            "--resume", "auto", "--out", str(tmp_path)]  # fmt: skip
    straight = torchrun(*args, "--name", "straight")
    assert straight.returncode == 0, straight.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
           *args, "--name", "restarted"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rank1 = _worker(proc.pid, 1)
        last = tmp_path / "restarted" / "checkpoints" / "last.pt"
        deadline = time.time() + 120
        while not last.is_file() and time.time() < deadline:
            time.sleep(0.02)
        os.kill(rank1, signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing this step and saving" in err
    assert "resuming" in out  # the restarted group found the checkpoint (--resume auto)
    a, b = tmp_path / "straight", tmp_path / "restarted"
    assert losses(b) == losses(a)
    assert [m["val"] for m in metrics(b)] == [m["val"] for m in metrics(a)]
    assert json.loads((b / "test_metrics.json").read_text()) == json.loads(
        (a / "test_metrics.json").read_text()
    )


def test_sync_bn_on_a_cpu_is_refused_with_the_alternative(tmp_path: Path) -> None:
    r = cli("train", *DIGITS, "--epochs", "1", "--sync-bn", "--out", str(tmp_path))
    assert r.returncode == 2 and "--sync-bn needs CUDA" in r.stderr and "averages" in r.stderr
