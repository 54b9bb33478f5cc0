"""Batches for training and evaluation, reproducible to the bit and resumable mid-epoch.

Three loaders, one interface (``len``, ``set_epoch``, ``iter_from(batch)``, batches of ``Batch``):

- ``CachedLoader``: small images (<= 64 px: MNIST, CIFAR) decoded once into a uint8 array (in
  memory, or memory-mapped from the cache folder) and augmented a whole batch at a time. No
  worker processes: indexing a batch out of the array costs microseconds.
- ``FileLoader``: any image files, decoded and augmented per image in worker processes
  (torch ``DataLoader``), normalised and mixed per batch in the main process.
- ``ShardLoader``: tar shards streamed through a seeded shuffle buffer, split across ranks and
  workers by shard, and by sample where there are fewer shards than streams.

Randomness never depends on the number of workers or on where a run resumed: the order of an
epoch is a permutation seeded by (seed, epoch), each image's augmentation by (seed, epoch, index),
and each batch's (mixup, erasing, cached augmentation) by (seed, epoch, rank, batch). Worker
processes also seed Python's, numpy's and torch's global generators from (seed, epoch, worker).

Bad images (see ``decode_image``) travel as markers, never as exceptions across processes: the
main process raises ``BadImageError`` (``on_bad_image="error"``) or leaves them out of the batch,
lists them in a report and stops once more than ``max_bad_fraction`` of the data is bad ("skip").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import ConfigError
from .decode import BadImageError
from .pipeline import SMALL, AugmentConfig, BatchTransform, CachedBatchAugment, Preprocess, SampleTransform
from .samples import (
    BadImageLog,
    SampleDataset,
    batch_generator,
    collate_samples,
    mix_seed,
    seed_worker,
)
from .splits import ArraySplit, DataSource, FileSplit, ShardSplit, Split


@dataclass
class Batch:
    images: torch.Tensor  # (B, C, H, W) float, normalised; on the loader's device
    targets: torch.Tensor  # (B,) class indices, (B, C) multi-hot, or (B, C) soft rows after mixing
    index: torch.Tensor  # (B,) sample indices in the split (-1 where unknown: streamed shards)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) left out of this batch
    keys: list[str] | None = None  # streamed shards: each sample's "shard:key" (index is -1 there)

    def __len__(self) -> int:
        return len(self.targets)


def to_device(x: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    """``x`` on ``device`` (None or the CPU: as it is); to a GPU through pinned memory, not waiting for it."""
    if device is None or device.type == "cpu" or x.device == device:
        return x
    return x.pin_memory().to(device, non_blocking=True)


def epoch_order(
    n: int, shuffle: bool, seed: int, epoch: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """The sample order of an epoch, the same on every rank: a permutation seeded by (seed, epoch), or
    with ``weights`` n draws with replacement (a balanced sampler)."""
    rng = np.random.default_rng(mix_seed(seed, epoch, 0x5))
    if weights is not None:
        return rng.choice(n, n, replace=True, p=weights / weights.sum())
    return rng.permutation(n) if shuffle else np.arange(n)


def _batches(order: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    n = len(order) // batch_size * batch_size if drop_last else len(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@dataclass
class BatchPlan:
    """How an epoch becomes batches, the same for every loader: order (seeded by seed and epoch;
    weighted draws for a balanced sampler), batch size per process, this rank's share.

    Training (``evaluation=False``) deals each *global* batch (``batch_size`` x ``world`` samples in
    epoch order) across the ranks, so every rank has the same number of batches and W processes see
    exactly the samples, batch by batch, that one process with the global batch would; ``drop_last``
    leaves out a short last global batch (as one process would), and one too short to give every rank
    a sample is always left out. Evaluation gives each rank every ``world``-th sample: every sample
    exactly once, never padded, the ranks' batch counts differing by at most one."""

    batch_size: int
    shuffle: bool
    seed: int = 0
    drop_last: bool = False
    rank: int = 0
    world: int = 1
    weights: np.ndarray | None = None  # per sample: draw n with replacement in proportion
    evaluation: bool = False

    def batches(self, n: int, epoch: int, start: int = 0) -> list[np.ndarray]:
        """Sample indices in [0, n) of this rank's batches of ``epoch``, from batch ``start`` on."""
        order = epoch_order(n, self.shuffle, self.seed, epoch, self.weights)
        if self.world == 1:
            return _batches(order, self.batch_size, self.drop_last)[start:]
        if self.evaluation:
            return _batches(order[self.rank :: self.world], self.batch_size, False)[start:]
        step = self.batch_size * self.world
        full = len(order) // step
        out = [order[g * step : (g + 1) * step][self.rank :: self.world] for g in range(full)]
        rest = order[full * step :]
        if len(rest) >= self.world and not (self.drop_last and full):
            out.append(rest[self.rank :: self.world])
        return out[start:]

    def count(self, n: int) -> int:
        if self.world == 1:
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        if self.evaluation:
            return math.ceil(len(range(self.rank, n, self.world)) / self.batch_size)
        step = self.batch_size * self.world
        full, rest = divmod(n, step)
        return full + int(rest >= self.world and not (self.drop_last and full))


class IndexedLoader:
    """What the loaders over indexed samples share: batches drawn by a ``BatchPlan`` over ``size``
    samples, an epoch to set, iteration from any batch."""

    plan: BatchPlan
    epoch: int = 0

    @property
    def size(self) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.plan.count(self.size)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[Batch]:
        raise NotImplementedError


class _Batches:
    """A batch sampler whose batches are set before each pass: one DataLoader, and so one set of
    persistent worker processes, serves every epoch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileLoader(IndexedLoader):
    """Images decoded per sample in ``workers`` processes (0: in this process), started once and kept
    for every epoch (the keys carry the epoch, so a worker needs no state from the main process)."""

    def __init__(
        self,
        split: ArraySplit | FileSplit,
        pre: Preprocess,
        aug: AugmentConfig | None,
        batch: BatchTransform,
        plan: BatchPlan,
        workers: int = 0,
        bad_log: BadImageLog | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.split, self.batch, self.plan, self.workers, self.epoch = split, batch, plan, workers, 0
        self.device = device  # a GPU: decoded batches pinned, copied without waiting, finished there
        self.dataset = SampleDataset(split, pre, aug, plan.seed)
        self._batches, self._loader = _Batches(), None
        self.train = aug is not None
        self.bad_log = bad_log or BadImageLog(total=len(split))
        if self.bad_log.total is None:
            self.bad_log.total = len(split)

    @property
    def size(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.dataset.epoch = epoch

    def iter_from(self, start: int) -> Iterator[Batch]:
        plan = self.plan
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,
                batch_sampler=self._batches,
                num_workers=self.workers,
                collate_fn=collate_samples,
                generator=torch.Generator().manual_seed(plan.seed),  # never touch the global RNG
                worker_init_fn=seed_worker if self.workers else None,
                prefetch_factor=4 if self.workers else None,
                persistent_workers=self.workers > 0,
                pin_memory=self.device is not None and self.device.type == "cuda",
            )
        self._batches.batches = [
            [(self.epoch, int(i)) for i in b] for b in plan.batches(len(self.split), self.epoch, start)
        ]
        for b, (pixels, index, bad) in enumerate(self._loader, start=start):
            self.bad_log.add([(self.split.name(i), reason) for i, reason in bad])
            if pixels is None:
                continue
            idx = torch.tensor(index, dtype=torch.int64)
            targets = torch.from_numpy(self.split.targets[idx.numpy()])
            g = batch_generator(plan.seed, self.epoch, plan.rank, b) if self.train else None
            images, targets = self.batch(to_device(pixels, self.device), targets, g)
            yield Batch(images, targets, idx, [(self.split.name(i), r) for i, r in bad])


DEVICE_CACHE_SHARE = (
    0.25  # a decoded cache moves onto a GPU when it takes at most this share of its free memory
)


class CachedLoader(IndexedLoader):
    """Batches out of a decoded uint8 array (N, C, H, W) with per-batch tensor augmentation. With a
    GPU ``device`` the array is copied there once (when it fits in DEVICE_CACHE_SHARE of the free
    memory; else each batch is copied through pinned memory) and batches are cut, augmented and
    normalised there: the host only draws the random numbers."""

    def __init__(
        self,
        pixels: np.ndarray,
        targets: np.ndarray,
        keep: np.ndarray | None,
        pre: Preprocess,
        aug: AugmentConfig | None,
        batch: BatchTransform,
        plan: BatchPlan,
        device: torch.device | None = None,
    ) -> None:
        self.pixels, self.targets, self.batch, self.epoch = pixels, targets, batch, 0
        self.device = device if device is not None and device.type != "cpu" else None
        self.on_device: torch.Tensor | None = None
        if self.device is not None and self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if pixels.nbytes <= DEVICE_CACHE_SHARE * free:
                self.on_device = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        self.keep = keep if keep is not None else np.arange(len(targets))  # the samples that decoded
        if plan.weights is not None:
            plan = replace(plan, weights=plan.weights[self.keep])
        self.plan = plan
        self.augment = CachedBatchAugment(pre, aug, plan.seed) if aug is not None else None

    @property
    def size(self) -> int:
        return len(self.keep)

    def iter_from(self, start: int) -> Iterator[Batch]:
        batches = self.plan.batches(len(self.keep), self.epoch, start)
        for b, idx in enumerate((self.keep[i] for i in batches), start=start):
            if self.on_device is not None:
                x = self.on_device[torch.from_numpy(idx).to(self.device, non_blocking=True)]
            else:  # a copy, from RAM or the memmap
                x = to_device(torch.from_numpy(np.ascontiguousarray(self.pixels[idx])), self.device)
            targets = torch.from_numpy(self.targets[idx])
            g = None
            if self.augment is not None:
                g = batch_generator(self.plan.seed, self.epoch, self.plan.rank, b)
                x = self.augment(x, g, torch.from_numpy(idx), self.epoch)
            images, targets = self.batch(x, targets, g)
            yield Batch(images, targets, torch.from_numpy(idx.astype(np.int64)))


class _ShardStream(IterableDataset):
    """Streams (name, pixels or None, reason, labels) from the shards this worker and rank own."""

    def __init__(
        self, split: ShardSplit, classes: list[str], pre: Preprocess, aug: AugmentConfig | None,
        seed: int, shuffle: bool, buffer: int, rank: int, world: int,
    ) -> None:  # fmt: skip
        self.split, self.classes, self.pre, self.seed, self.epoch = split, classes, pre, seed, 0
        self.shuffle, self.buffer, self.rank, self.world = shuffle, buffer, rank, world
        self.transform = SampleTransform(pre, aug)
        self.draft = aug is not None and not aug.rrc  # training only, as in samples.py

    def __iter__(self) -> Iterator[tuple]:
        from .shards import iter_samples, sample_labels

        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        streams, stream = self.world * workers, self.rank * workers + worker
        urls = list(self.split.urls)
        if self.shuffle:
            urls = [
                urls[i]
                for i in np.random.default_rng(mix_seed(self.seed, self.epoch, 0x7)).permutation(len(urls))
            ]
        # split by shard while there are shards enough, then by sample: every stream that shares a
        # list of shards reads it in the same order and keeps every k-th sample
        if len(urls) >= streams:
            mine, (keep, every) = urls[stream::streams], (0, 1)
        elif len(urls) >= self.world:
            mine, (keep, every) = urls[self.rank :: self.world], (worker, workers)
        else:
            mine, (keep, every) = urls, (stream, streams)
        rng = np.random.default_rng(mix_seed(self.seed, self.epoch, stream, 0x9))
        pool: list[tuple] = []
        count = 0
        for url in mine:
            for key, parts in iter_samples(url):
                name = f"{url}:{key}"
                if self.split.holdout is not None and not _in_holdout(key, self.split.holdout):
                    continue
                count += 1
                if (count - 1) % every != keep:
                    continue
                labels = sample_labels(parts, self.classes)
                if labels is None:
                    raise ConfigError(f"sample {name!r} has no .cls or .json label")
                pool.append((name, parts, labels))
                if len(pool) >= (self.buffer if self.shuffle else 1):
                    yield self._make(pool.pop(int(rng.integers(len(pool)))), rng)
        while pool:
            yield self._make(pool.pop(int(rng.integers(len(pool))) if self.shuffle else 0), rng)

    def _make(self, item: tuple, rng: np.random.Generator) -> tuple:
        from .shards import image_part

        name, parts, labels = item
        found = image_part(parts)
        if found is None:
            return name, None, "has no image part (.jpg/.png/...)", labels
        try:
            img = self.pre.load(found[1], draft=self.draft, name=name)
        except BadImageError as e:
            return name, None, e.reason, labels
        return name, self.transform(img, rng), "", labels


def _in_holdout(key: str, holdout: tuple[int, float, str]) -> bool:
    """Whether a streamed sample belongs to the side ``keep`` of a seeded hash split."""
    import hashlib

    seed, fraction, keep = holdout
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big") / 2**64
    return (h < fraction) == (keep == "val")


def _collate_stream(items: list[tuple]) -> tuple:
    good = [(n, x, ls) for n, x, _, ls in items if x is not None]
    bad = [(n, r) for n, x, r, _ in items if x is None]
    pixels = torch.stack([x for _, x, _ in good]) if good else None
    return pixels, [ls for _, _, ls in good], bad, [n for n, _, _ in good]


class ShardLoader:
    """Tar shards streamed through a seeded shuffle buffer; ``plan`` gives batch size, seed, rank.

    A stream's length is known only roughly (a held-out split is a hash of each key), so ``len`` is
    an estimate and ranks may run out one or two batches apart: ``uneven`` tells the trainer to end
    the epoch on every rank when the first one runs out."""

    uneven = True

    def __init__(
        self,
        split: ShardSplit,
        classes: list[str],
        multilabel: bool,
        pre: Preprocess,
        aug: AugmentConfig | None,
        batch: BatchTransform,
        plan: BatchPlan,
        workers: int = 0,
        buffer: int = 2000,
        bad_log: BadImageLog | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.split, self.classes, self.multilabel, self.device = split, classes, multilabel, device
        self.batch, self.plan, self.workers, self.epoch, self.train = batch, plan, workers, 0, aug is not None
        self.stream = _ShardStream(
            split, classes, pre, aug, plan.seed, plan.shuffle, buffer, plan.rank, plan.world
        )
        self.bad_log = bad_log or BadImageLog(total=split.length)
        self.index = {c: i for i, c in enumerate(classes)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.stream.epoch = epoch

    def __len__(self) -> int:
        per_rank = len(self.split) / self.plan.world
        return (
            int(per_rank // self.plan.batch_size)
            if self.plan.drop_last
            else math.ceil(per_rank / self.plan.batch_size)
        )

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[Batch]:
        plan = self.plan
        loader = DataLoader(
            self.stream,
            batch_size=plan.batch_size,
            num_workers=self.workers,
            collate_fn=_collate_stream,
            worker_init_fn=seed_worker if self.workers else None,
            generator=torch.Generator().manual_seed(plan.seed),
            drop_last=plan.drop_last,
            pin_memory=self.device is not None and self.device.type == "cuda",
        )
        seen = 0
        for b, (pixels, labels, bad, names) in enumerate(loader):
            seen += (0 if pixels is None else len(pixels)) + len(bad)
            self.bad_log.add(bad, seen)
            if b < start or pixels is None:
                continue  # resuming: a stream can only be skipped through
            targets = self._targets(labels)
            g = batch_generator(plan.seed, self.epoch, plan.rank, b) if self.train else None
            images, targets = self.batch(to_device(pixels, self.device), targets, g)
            yield Batch(images, targets, torch.full((len(targets),), -1), bad, names)

    def _targets(self, labels: list[list[str]]) -> torch.Tensor:
        unknown = {c for ls in labels for c in ls if c not in self.index}
        if unknown:
            raise ConfigError(
                f"shards of {self.split.label} have labels not in the class list: {sorted(unknown)[:5]}"
            )
        if not self.multilabel:
            return torch.tensor([self.index[ls[0]] for ls in labels], dtype=torch.int64)
        out = torch.zeros(len(labels), len(self.classes), dtype=torch.uint8)
        for row, ls in enumerate(labels):
            out[row, [self.index[c] for c in ls]] = 1
        return out


Loader = CachedLoader | FileLoader | ShardLoader


def use_cache(split: Split, pre: Preprocess) -> bool:
    """Small-image data (model input <= 64 px) that can be indexed: decode once, augment per batch."""
    return pre.size <= SMALL and isinstance(split, ArraySplit | FileSplit)


def make_loader(
    source: DataSource,
    split: str,
    pre: Preprocess,
    aug: AugmentConfig | None = None,
    batch_size: int = 128,
    *,
    shuffle: bool | None = None,
    seed: int = 0,
    workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world: int = 1,
    on_bad_image: str = "error",
    max_bad_fraction: float = 0.01,
    bad_report: str | Path | None = None,
    cache: bool | None = None,
    smoothing: float = 0.0,
    sample_weights: np.ndarray | None = None,
    progress: bool = False,
    device: torch.device | None = None,
) -> Loader:
    """The right loader for one split of ``source``: ``aug`` None gives evaluation batches (eval
    geometry, in order); ``cache`` None caches small images (input <= 64 px) decoded in memory;
    ``device`` a GPU: batches are finished there (a small cache lives there)."""
    data = source.split(split)
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    shuffle = aug is not None if shuffle is None else shuffle
    total = len(data) if not isinstance(data, ShardSplit) or data.length is not None else None
    bad_log = BadImageLog(
        on_bad_image, max_bad_fraction, total, bad_report, f"the {split} split of {source.spec}"
    )
    batch = BatchTransform(pre, aug, source.num_classes, smoothing)
    plan = BatchPlan(
        batch_size, shuffle, seed, drop_last, rank, world, sample_weights, evaluation=aug is None
    )
    if isinstance(data, ShardSplit):
        if aug is not None and aug.alt_flip:
            raise ConfigError(
                f"alt_flip mirrors each image by its index, and {data.label} is tar shards, streamed without "
                "one: use --hflip 0.5"
            )
        if sample_weights is not None:
            raise ConfigError(
                f"--balanced-sampler draws images by weight from an indexed set, and {data.label} is tar "
                "shards, streamed in order: train from an image folder or label file, or write the shards "
                "with balanced classes"
            )
        return ShardLoader(
            data,
            source.classes,
            source.multilabel,
            pre,
            aug,
            batch,
            plan,
            workers,
            bad_log=bad_log,
            device=device,
        )
    if use_cache(data, pre) if cache is None else cache:
        from .cache import decoded_pixels

        pixels, keep = decoded_pixels(data, pre, bad_log, workers=workers, progress=progress)
        return CachedLoader(pixels, data.targets, keep, pre, aug, batch, plan, device)
    return FileLoader(data, pre, aug, batch, plan, workers, bad_log, device)
