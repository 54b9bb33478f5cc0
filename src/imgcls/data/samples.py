"""One sample at a time, the same way in any process: seeds from integers, the per-sample dataset
(decode + augmentation, seeded by (seed, epoch, index)), worker seeding, and what ``on_bad_image``
does with the files that do not decode. The loaders (loader.py) and the decoded cache (cache.py)
share these.
"""

from __future__ import annotations

import csv
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..errors import ConfigError, ImgclsError
from .batch_aug import alternating_flips
from .decode import BadImageError
from .pipeline import AugmentConfig, Preprocess, SampleTransform
from .splits import ArraySplit, FileSplit

POLICIES = ("error", "skip")


class TooManyBadImagesError(ImgclsError, RuntimeError):
    """More bad files than ``max_bad_fraction`` allows under ``on_bad_image=skip``."""


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixes them well)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1
    )


def batch_generator(seed: int, epoch: int, rank: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(seed, epoch, rank, batch, 0xB))


class BadImageLog:
    """What ``on_bad_image`` does with the bad files a loader meets."""

    def __init__(
        self,
        policy: str = "error",
        max_fraction: float = 0.01,
        total: int | None = None,
        report: str | Path | None = None,
        label: str = "the data",
    ) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"on_bad_image must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy, self.max_fraction, self.total = policy, max_fraction, total
        self.report = Path(report) if report else None
        self.label = label  # which images the counts are of ("the train split of DATA")
        self.bad: dict[str, str] = {}

    def add(self, bad: list[tuple[str, str]], seen: int | None = None) -> None:
        if not bad:
            return
        if self.policy == "error":
            raise BadImageError(*bad[0])
        new = [(n, r) for n, r in bad if n not in self.bad]
        self.bad.update(new)
        if new and self.report:
            self.write()
        total = self.total if self.total is not None else seen
        if total and len(self.bad) > self.max_fraction * total and (self.total is not None or total >= 100):
            enough = math.ceil(100 * len(self.bad) / total) / 100  # the smallest 2-decimal share that passes
            raise TooManyBadImagesError(
                f"{len(self.bad)} of the {total} images of {self.label} are bad (more than "
                f"--max-bad-fraction {self.max_fraction:g} allows), e.g. {next(iter(self.bad))!r}: "
                f"{next(iter(self.bad.values()))}" + (f"; the list is in {self.report}" if self.report else "")
                + f". Fix or remove them (imgcls data check lists them all), or add --max-bad-fraction {enough:g} "
                "to leave them out"
            )  # fmt: skip

    def write(self) -> None:
        assert self.report is not None
        self.report.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.report.with_name(self.report.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "reason"])
            w.writerows(sorted(self.bad.items()))
        os.replace(tmp, self.report)


def seed_worker(worker_id: int) -> None:
    info = get_worker_info()
    ds = info.dataset  # type: ignore[union-attr]
    s = mix_seed(ds.seed, ds.epoch, worker_id, 0x3)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    torch.set_num_threads(1)  # workers decode; the main process keeps the cores for the model


class SampleDataset(Dataset):
    """Map-style: key (epoch, index) -> (index, uint8 pixels or None, reason)."""

    def __init__(
        self, split: ArraySplit | FileSplit, pre: Preprocess, aug: AugmentConfig | None, seed: int
    ) -> None:
        self.split, self.pre, self.seed, self.epoch = split, pre, seed, 0
        self.transform = SampleTransform(pre, aug)
        self.draft = aug is not None and not aug.rrc  # training only: eval decodes in full; RRC zooms in
        self.alt_flip = aug is not None and aug.alt_flip

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, torch.Tensor | None, str]:
        epoch, i = key
        rng = np.random.default_rng(mix_seed(self.seed, epoch, i, 0x1))
        try:
            if isinstance(self.split, FileSplit):
                img = self.pre.load(self.split.paths[i], draft=self.draft)
            else:
                img = self.split.image(i, self.pre.mode)
        except BadImageError as e:
            return i, None, e.reason
        x = self.transform(img, rng)
        if self.alt_flip and alternating_flips(torch.tensor([i]), self.seed, epoch)[0]:
            x = x.flip(-1)
        return i, x, ""


def collate_samples(items: list[tuple]) -> tuple[torch.Tensor | None, list, list[tuple[str, str]]]:
    good = [(key, x) for key, x, _ in items if x is not None]
    bad = [(key, reason) for key, x, reason in items if x is None]
    pixels = torch.stack([x for _, x in good]) if good else None
    return pixels, [k for k, _ in good], bad
