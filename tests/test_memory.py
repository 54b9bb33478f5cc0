"""imgcls.memory: with freed memory kept, a tensor allocated again after it was freed costs no new page
faults; without it (glibc's default) every large tensor is faulted in from the kernel again."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from imgcls.memory import keep_freed_memory

PROBE = """
import json, resource, sys, torch
from imgcls.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.ones(16, 2**20).sum()  # 64 MB: far over glibc's largest mmap threshold (32 MB)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    torch.ones(16, 2**20).sum()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_freed_tensor_is_reused_not_faulted_in_again() -> None:
    pages = 30 * 64 * 2**20 // 4096  # what thirty 64 MB tensors cost in 4 KiB page faults when none is reused
    plain, kept = _faults("plain"), _faults("keep")
    assert plain["faults"] > pages * 0.9  # the default: every allocation faulted in again
    assert kept["kept"] is True and kept["faults"] <= pages * 0.25  # measured: 1-4 tensors worth in 30


def test_it_is_idempotent() -> None:
    assert keep_freed_memory() == keep_freed_memory()
