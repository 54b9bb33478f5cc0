from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


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
