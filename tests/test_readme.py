"""Every Python block of the README runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


COMMANDS = [
    line.split("  #")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    for line in block.splitlines()
    if line.startswith("imgcls ")
]


def test_readme_has_commands() -> None:
    assert any(c.startswith("imgcls data") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str) -> None:
    """Each `imgcls ...` line of the README's shell blocks exits 0 from the repository root (in order)."""
    import shlex
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    args = shlex.split(command)[1:]
    r = subprocess.run(
        [sys.executable, "-m", "imgcls", *args], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"{command}: {r.stderr[-2000:]}"
