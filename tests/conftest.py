"""Shared fixtures, and the two tiers of the suite.

``make test`` runs everything. ``make test-fast`` runs the tier a contributor runs while working
(``pytest -m fast``): the quickest tests whose recorded times add up to at most FAST_BUDGET_S, by
``tests/durations.json`` (each test's set-up, call and tear-down seconds from a whole run: ``make
test-durations`` records them again). A test that needs a costly shared fixture (one whose set-up
was recorded above FIXTURE_S) is not fast, whatever its own time; a test the file does not know yet
is fast until the file is recorded again.

``make test`` runs the suite in one pytest-xdist worker per core, each test file whole in one worker
(``--dist loadfile``: a file's shared fixtures are built once, its tests keep their order), the
longest files (by the same record) handed out first, each worker pinned to its own share of the cores
so that it, its torch threads and the processes its tests start never contend with the other workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
DURATIONS = Path(__file__).parent / "durations.json"
FAST_BUDGET_S = 60.0  # recorded seconds in the fast tier, at most
FIXTURE_S = 2.0  # a shared fixture whose set-up takes longer keeps its tests out of the fast tier


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast: the quick tier (make test-fast); set from tests/durations.json")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (tests/gpu; skipped where there is none)")
    _pin_worker()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: nothing where xdist is not installed
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use (xdist's own count is of physical cores
    where psutil is installed: one on a 2-vCPU machine with two threads per core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _pin_worker() -> None:
    """Under pytest-xdist, worker i of n keeps the i-th of n slices of the cores this process may use
    (and as many torch threads); imgcls's own thread choice reads the same affinity."""
    worker, count = (
        os.environ.get("PYTEST_XDIST_WORKER", ""),
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < count:
        return
    mine = cores[int(worker[2:]) % count :: count]
    os.sched_setaffinity(0, mine)
    torch.set_num_threads(len(mine))


@pytest.hookimpl(tryfirst=True)  # before -m fast deselects by the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    recorded = json.loads(DURATIONS.read_text())["tests"] if DURATIONS.is_file() else {}
    everyone = set.intersection(*(set(getattr(it, "fixturenames", ())) for it in items)) if items else set()
    costly = set()  # shared fixtures whose set-up is slow: what a test that pays for it set up
    for item in items:
        times = recorded.get(item.nodeid)
        if times and times["setup"] > FIXTURE_S:
            costly |= {name for name in getattr(item, "fixturenames", ()) if _shared(item, name)} - everyone
    spent = 0.0
    candidates = [it for it in items if not costly & set(getattr(it, "fixturenames", ()))]
    for item in sorted(candidates, key=lambda it: sum(recorded.get(it.nodeid, {}).values())):
        spent += sum(recorded.get(item.nodeid, {}).values())
        if spent > FAST_BUDGET_S:
            break
        item.add_marker(pytest.mark.fast)
    _longest_files_first(items, recorded)


def _longest_files_first(items: list[pytest.Item], recorded: dict[str, dict[str, float]]) -> None:
    """Test files in order of their recorded seconds, longest first, each file's tests in their own
    order: xdist (``--dist loadfile``) hands the files out in this order, so the long ones start at
    once and the short ones fill the gaps at the end, instead of a long file starting last."""
    seconds: dict[str, float] = {}
    for item in items:
        file = item.nodeid.split("::")[0]
        seconds[file] = seconds.get(file, 0.0) + sum(recorded.get(item.nodeid, {}).values())
    items.sort(key=lambda it: -seconds[it.nodeid.split("::")[0]])  # stable: a file's order is kept


def _shared(item: pytest.Item, name: str) -> bool:
    """Whether fixture ``name`` of ``item`` outlives one test (module, package or session scope)."""
    defs = item._fixtureinfo.name2fixturedefs.get(name) if hasattr(item, "_fixtureinfo") else None
    return bool(defs) and defs[-1].scope != "function"


_RECORD: dict[str, dict[str, float]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("IMGCLS_RECORD_DURATIONS"):
        _RECORD.setdefault(report.nodeid, {"setup": 0.0, "call": 0.0, "teardown": 0.0})[report.when] = round(
            report.duration, 3
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("IMGCLS_RECORD_DURATIONS")
    if path and _RECORD and not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller writes the file
        from imgcls.bench.roofline import processor_name

        body = {"processor": processor_name(torch.device("cpu")), "cores": os.cpu_count(), "tests": _RECORD}
        Path(path).write_text(json.dumps(body, indent=0, sort_keys=True) + "\n")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decoded-image caches go to a temporary folder, never the user's ~/.cache."""
    import os

    os.environ["IMGCLS_CACHE"] = str(tmp_path_factory.mktemp("imgcls-cache"))


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's acceptance run, trained once per session with the defaults:
    imgcls train --data mnist:data/mnist --model lenet5 --epochs 1"""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("mnist-run")
    root = Path(__file__).parents[1]
    r = subprocess.run(
        [sys.executable, "-m", "imgcls", "train", "--data", "mnist:data/mnist", "--model", "lenet5", "--epochs", "1",
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out / "lenet5"


class _CodeRunningPickle:
    """Unpickling this runs ``touch MARKER``: what a malicious weight file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def code_pickle():  # type: ignore[no-untyped-def]
    """A factory of objects whose unpickling would create the given marker file."""
    return _CodeRunningPickle
