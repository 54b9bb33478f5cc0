"""A training run under torchrun that records, per rank, what it saw: the training batches' samples
per epoch, the evaluation batches' samples, and a hash of the final weights; optionally one rank's
batch is poisoned with NaN. Run by tests/engine/test_distributed.py:

    torchrun --standalone --nproc-per-node 2 tests/engine/ddp_run.py OUT [--poison-rank R --poison-batch B] -- TRAIN ARGS
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from imgcls.cli import build_parser, train_config
from imgcls.engine import loop
from imgcls.engine.hooks import Hook
from imgcls.engine.trainer import Trainer


def digest(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (batch-norm statistics included)."""
    return hashlib.sha256(b"".join(v.detach().cpu().contiguous().numpy().tobytes()
                                   for v in model.state_dict().values())).hexdigest()  # fmt: skip


def samples(batch) -> list:  # type: ignore[no-untyped-def]
    return list(batch.keys) if batch.keys is not None else batch.index.tolist()


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    ours = argparse.ArgumentParser()
    ours.add_argument("out")
    ours.add_argument("--poison-rank", type=int, default=-1)
    ours.add_argument("--poison-batch", type=int, default=-1)
    args = ours.parse_args(argv[:split])
    train_args = build_parser().parse_args(["train", *argv[split + 1 :]])
    trainer = Trainer(train_config(train_args))  # exactly what imgcls train would run
    rank = trainer.dist.rank
    seen: dict[str, list] = {}

    batches = loop.batches

    def recording(t, loader, start):  # type: ignore[no-untyped-def]
        epoch = trainer.state.epoch
        for b, batch, last in batches(t, loader, start):
            if rank == args.poison_rank and b == args.poison_batch and epoch == 0:
                batch.images = torch.full_like(batch.images, float("nan"))
            seen.setdefault(f"train{epoch}", []).extend(samples(batch))
            yield b, batch, last

    loop.batches = recording  # the loop's batches, recorded (and one poisoned)

    class Trained(
        Hook
    ):  # the weights and buffers as training left them (before the test split reloads the best)
        def end(self, t: Trainer, status: str) -> None:
            seen["trained"] = digest(t.model)

    hooks = trainer.default_hooks
    trainer.default_hooks = lambda: [*hooks(), Trained()]  # type: ignore[method-assign]
    for split_name in ("val", "test"):
        if split_name in trainer.source.splits:
            loader = trainer.loader(split_name, trainer.size_at(trainer.cfg.epochs - 1))
            original = loader.iter_from

            def evaluated(start, original=original, name=split_name):  # type: ignore[no-untyped-def]
                this_pass: list = []
                seen.setdefault(name, []).append(this_pass)  # one list per evaluation pass
                for batch in original(start):
                    this_pass.extend(samples(batch))
                    yield batch

            loader.iter_from = evaluated
    result = trainer.fit()
    record = {"rank": rank, "world": trainer.dist.world, "seen": seen, "weights": seen.pop("trained"), "status": result.status,
              "step": result.step, "test": result.test}  # fmt: skip
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(record))
    trainer.close()


if __name__ == "__main__":
    main()
