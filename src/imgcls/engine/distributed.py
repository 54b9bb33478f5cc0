"""Distributed training on PyTorch's own engine: ``torchrun`` starts the processes and sets their
environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT); this module makes the
process group from it (gloo on CPUs, nccl on GPUs, one device per local rank) and gives the engine
the few collective operations it needs.

One process (no torchrun) is the same object with ``world == 1``, whose collectives return their
input at no cost: the engine never branches on whether it runs distributed. ``torchrun
--nproc-per-node 1`` makes a group of one: DDP and the collectives run, as they would with more.
"""

from __future__ import annotations

import datetime
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

TIMEOUT = datetime.timedelta(minutes=30)  # a rank that stops answering fails the others after this


def cpu_cores() -> int:
    """Cores this process may run on (its affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class Dist:
    """This process's place among the processes of a run (the only one, without torchrun)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # LOCAL_RANK's GPU, or the CPU
    rank: int = 0
    world: int = 1
    backend: str = ""  # "gloo" | "nccl"; "" for one process
    local_rank: int = 0  # among the processes of this machine
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether a process group exists (torchrun started this process, of one or more)."""
        return self.backend != ""

    def describe(self) -> str:
        """The device, and the group: 'cuda:0 (NVIDIA H100 80GB HBM3), rank 0 of 2 over nccl'."""
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        return where + (f", rank {self.rank} of {self.world} over {self.backend}" if self.enabled else "")

    @classmethod
    def from_env(cls, device: str = "auto") -> Dist:
        """The process group torchrun's environment describes (made once per process), or one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: this machine has no CUDA device; use --device cpu")
        if "RANK" not in os.environ:  # not started by torchrun
            return cls(
                device=torch.device(device if device.startswith("cuda") else "cuda" if cuda else "cpu")
            )
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        target = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(target)
        backend = "nccl" if cuda else "gloo"
        if not dist.is_initialized():
            # the store torchrun gives its workers may outlive a restart: keys of this attempt get their own
            # prefix, or a restarted rank could read the address its predecessor published and connect to
            # a dead port
            store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=TIMEOUT))
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(f"imgcls/attempt-{attempt}/", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=TIMEOUT,
                                    device_id=target if cuda else None)  # fmt: skip
        return cls(target, rank, world, backend, local_rank, local_world)

    # ---- collectives (identities in one process) --------------------------------------------------
    def _tensor(self, values: Sequence[float]) -> torch.Tensor:
        device = self.device if self.backend == "nccl" else torch.device("cpu")
        return torch.tensor(list(values), dtype=torch.float64, device=device)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the ranks (gloo has no average: divide afterwards)."""
        if not self.enabled:
            return list(values)
        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all(self, flag: bool) -> bool:
        """True on every rank when it is true on every rank."""
        if not self.enabled:
            return bool(flag)
        return self.sum([float(bool(flag))])[0] == self.world

    def any(self, flag: bool) -> bool:
        return bool(flag) if not self.enabled else self.sum([float(bool(flag))])[0] > 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects: a decision made once)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @torch.no_grad()
    def average_buffers(self, module: nn.Module) -> None:
        """Average the floating buffers (batch-norm running statistics) over the ranks: each rank's
        come from its own share of the data (timm's --dist-bn reduce)."""
        if not self.enabled:
            return
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b, op=dist.ReduceOp.SUM)
                b.div_(self.world)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (gradients all-reduced in backward), or as it is.
        Buffers are not broadcast from rank 0 at each forward: ranks keep their own batch-norm
        statistics and ``average_buffers`` reduces them before each evaluation."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # newer torch names it forward_sync_buffers (which also syncs at init: harmless, the ranks'
        # models are identical then)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in params
            else {"broadcast_buffers": False}
        )
        return DistributedDataParallel(module, device_ids=ids, **no_sync)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
