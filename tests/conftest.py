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
