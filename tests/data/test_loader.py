"""Loaders: the same bytes give the same tensor everywhere, randomness independent of workers and of
where a run resumes, rank sharding, the decoded cache, and the bad-image policy with workers 0 and 2."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import imgcls
from imgcls.data.decode import BadImageError
from imgcls.data.loader import (
    CachedLoader,
    FileLoader,
    ShardLoader,
    epoch_order,
    make_loader,
)
from imgcls.data.pipeline import augment_preset, preprocess_for
from imgcls.data.samples import TooManyBadImagesError
from imgcls.data.shards import write_shards
from imgcls.data.source import open_source

FIXTURES = Path(__file__).parents[1] / "fixtures"
FOLDER = FIXTURES / "cifar_jpg"
BAD = FIXTURES / "images" / "bad"
# the documented outcome of each bad-image fixture (docs/data.md): decoded, or left out with this reason
BAD_FILES = {
    "truncated.jpg": "is truncated",
    "empty.jpg": "is an empty file",
    "page.jpg": "is not an image (it is an HTML page",
    "notes.png": "is not an image (it is a text file",
    "bomb.png": "is too large",
}
GOOD_ODD_FILES = ["cmyk.jpg", "gray16.png", "palette_alpha.png", "exif_rotated.jpg", "animated.gif"]


def pre_for(model: str, source_channels: int = 3, **kw):
    return preprocess_for(imgcls.model_info(model), source_channels, **kw)


def epoch_tensors(
    loader, epoch: int = 0, start: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return [(b.images, b.targets, b.index) for b in loader.iter_from(start)]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert torch.equal(u, v)


@pytest.mark.parametrize("model", ["resnet20", "resnet18"])  # cached (32 px) and file (224 px) paths
def test_same_bytes_same_tensor_as_the_predict_path(model: str) -> None:
    src = open_source(FOLDER)
    pre = pre_for(model)
    loader = make_loader(src, "test", pre, None, 7)
    assert isinstance(loader, CachedLoader if model == "resnet20" else FileLoader)
    paths = src.split("test").paths
    for batch in loader:
        for x, i in zip(batch.images, batch.index):
            path = Path(paths[i])
            assert torch.equal(x, pre(path))  # a file
            assert torch.equal(x, pre(path.read_bytes()))  # its bytes (an upload to the server)


def test_array_sources_match_the_predict_path() -> None:
    src = open_source(FIXTURES / "mnist")
    pre = pre_for("lenet5", 1)
    batch = next(iter(make_loader(src, "test", pre, None, 64)))
    images = src.split("test").images
    for x, i in zip(batch.images, batch.index):
        assert torch.equal(x, pre(images[i]))


@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
def test_workers_do_not_change_the_batches(model: str) -> None:
    src = open_source(FOLDER)
    pre = pre_for(model, img_size=None if model == "resnet20" else 48)
    aug = augment_preset("strong", pre.size, 3)
    runs = [
        epoch_tensors(
            make_loader(src, "train", pre, aug, 16, seed=3, workers=w, cache=model == "resnet20"), epoch=2
        )
        for w in (0, 2)
    ]
    assert_same(runs[0], runs[1])
    other_epoch = epoch_tensors(make_loader(src, "train", pre, aug, 16, seed=3), epoch=3)
    assert not torch.equal(runs[0][0][0], other_epoch[0][0])


def test_loaders_of_one_split_share_its_decoded_pixels() -> None:
    """A run's augmented training loader and its plain one (batch-norm statistics, the whitening fit)
    hold the decoded images once, not twice."""
    src = open_source(FOLDER)
    pre = pre_for("resnet20")
    augmented = make_loader(src, "train", pre, augment_preset("basic", 32, 3), 8, cache=True)
    plain = make_loader(src, "train", pre, None, 8, cache=True)
    assert isinstance(augmented, CachedLoader) and isinstance(plain, CachedLoader)
    assert augmented.pixels is plain.pixels
    test = make_loader(src, "test", pre, None, 8, cache=True)
    assert not np.shares_memory(test.pixels, plain.pixels)


def test_worker_processes_serve_every_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One set of worker processes for the whole run: starting them again each epoch cost seconds per
    epoch on a photo folder (issue 17). Each batch is collated in a worker, which writes down its pid."""
    import os

    import imgcls.data.loader as loader_module

    log = tmp_path / "pids.txt"
    collate = loader_module.collate_samples

    def collate_and_log(samples):
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return collate(samples)

    monkeypatch.setattr(loader_module, "collate_samples", collate_and_log)
    src = open_source(FOLDER)
    loader = make_loader(src, "train", pre_for("resnet18", img_size=48), None, 16, workers=1, cache=False)
    assert isinstance(loader, FileLoader)
    epochs = [epoch_tensors(loader, epoch=e) for e in range(3)]
    assert all(len(e) == len(loader) for e in epochs)
    pids = log.read_text().split()
    assert len(pids) == 3 * len(loader)
    assert len(set(pids)) == 1 and pids[0] != str(os.getpid())  # one worker, the same one each epoch


@pytest.mark.parametrize("cache", [True, False])
def test_resuming_mid_epoch_gives_the_rest_of_the_epoch(cache: bool) -> None:
    src = open_source(FOLDER)
    pre = pre_for("resnet20")
    loader = make_loader(src, "train", pre, augment_preset("strong", 32, 3), 8, seed=1, cache=cache)
    full = epoch_tensors(loader, epoch=1)
    assert len(full) == len(loader) == 8
    for start in (0, 3, 7):
        assert_same(epoch_tensors(loader, epoch=1, start=start), full[start:])


def test_ranks_deal_each_global_batch_and_evaluation_sees_every_sample_once() -> None:
    from imgcls.data.loader import BatchPlan

    order = epoch_order(26, True, 0, 4)
    assert sorted(order) == list(range(26))
    plans = [BatchPlan(4, True, 0, rank=r, world=3) for r in range(3)]
    batches = [p.batches(26, 4) for p in plans]
    assert [len(b) for b in batches] == [p.count(26) for p in plans] == [2, 2, 2]  # 2 global batches of 12
    for g in range(2):  # global batch g is the epoch's samples 12g .. 12g+11, dealt over the ranks
        dealt = np.concatenate([batches[r][g] for r in range(3)])
        assert sorted(dealt) == sorted(order[12 * g : 12 * (g + 1)])
    # the last 2 samples cannot give 3 ranks one each: left out this epoch (and in another place the next)
    one = BatchPlan(12, True, 0)
    assert [list(b) for b in one.batches(26, 4)][:2] == [list(order[:12]), list(order[12:24])]
    evaluation = [BatchPlan(4, False, 0, rank=r, world=3, evaluation=True) for r in range(3)]
    seen = np.concatenate([b for p in evaluation for b in p.batches(26, 0)])
    assert sorted(seen) == list(range(26)) and [p.count(26) for p in evaluation] == [
        3,
        3,
        2,
    ]  # 9, 9, 8 samples
    src = open_source(FOLDER)
    pre = pre_for("resnet20")
    seen_t = [
        torch.cat([b.index for b in make_loader(src, "train", pre, None, 8, rank=r, world=2)]) for r in (0, 1)
    ]
    assert len(seen_t[0]) == len(seen_t[1]) == 30 and set(torch.cat(seen_t).tolist()) == set(range(60))


def test_decoded_cache_is_reused_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGCLS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    shutil.copytree(FOLDER, folder)
    src = open_source(folder)
    pre = pre_for("resnet20")
    first = make_loader(src, "train", pre, None, 60)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = make_loader(src, "train", pre, None, 60)
    assert np.array_equal(first.pixels, second.pixels)
    shutil.copy(FOLDER / "train" / "dog" / "0000.jpg", folder / "train" / "cat" / "0000.jpg")  # an edit
    third = make_loader(open_source(folder), "train", pre, None, 60)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 and not np.array_equal(
        first.pixels, third.pixels
    )


def test_shard_loader_streams_every_sample(tmp_path: Path) -> None:
    write_shards(open_source(FOLDER), tmp_path, "16", progress=False)
    src = open_source(tmp_path)
    pre = pre_for("resnet20")
    loader = make_loader(src, "train", pre, augment_preset("basic", 32, 3), 16, seed=0, workers=2)
    assert isinstance(loader, ShardLoader) and len(loader) == 4
    targets = torch.cat([b.targets for b in loader])
    assert sorted(targets.tolist()) == sorted(open_source(FOLDER).split("train").targets.tolist())
    a = epoch_tensors(make_loader(src, "train", pre, augment_preset("basic", 32, 3), 16, seed=0, workers=2))
    b = epoch_tensors(make_loader(src, "train", pre, augment_preset("basic", 32, 3), 16, seed=0, workers=2))
    assert_same(a, b)
    held = open_source(tmp_path).with_val(0.25, seed=0)
    n_train = sum(len(b) for b in make_loader(held, "train", pre, None, 16))
    n_val = sum(len(b) for b in make_loader(held, "val", pre, None, 16))
    assert n_train + n_val == 60 and 5 <= n_val <= 25


def test_multilabel_batches(tmp_path: Path) -> None:
    src = open_source(FIXTURES / "labels" / "multilabel.csv")
    pre = pre_for("resnet20")
    batch = next(iter(make_loader(src, "train", pre, augment_preset("strong", 32, 3), 16, seed=0)))
    assert batch.targets.shape == (16, 4) and batch.targets.dtype == torch.float32  # mixed: soft rows
    plain = next(iter(make_loader(src, "test", pre, None, 20)))
    assert plain.targets.shape == (20, 4) and plain.targets.sum(1).min() == 0
    write_shards(src, tmp_path, "100", progress=False)
    streamed = next(iter(make_loader(open_source(tmp_path), "test", pre, None, 20)))
    assert sorted(map(tuple, streamed.targets.tolist())) == sorted(map(tuple, plain.targets.tolist()))


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class folder of the bad-image fixture set next to real CIFAR images."""
    root = tmp_path_factory.mktemp("mixed")
    for cls in ("cat", "dog"):
        shutil.copytree(FOLDER / "train" / cls, root / cls)
    for name in [*BAD_FILES, *GOOD_ODD_FILES]:
        shutil.copy(BAD / name, root / "cat" / name)
    return root


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
def test_bad_images_under_error(mixed_folder: Path, workers: int, model: str) -> None:
    src = open_source(mixed_folder)
    with pytest.raises(BadImageError) as e:
        for _ in make_loader(
            src,
            "train",
            pre_for(model, img_size=48 if model == "resnet18" else None),
            None,
            4,
            workers=workers,
        ):
            pass
    assert Path(e.value.path).name in BAD_FILES and BAD_FILES[Path(e.value.path).name] in str(e.value)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("model", ["resnet20", "resnet18"])
def test_bad_images_under_skip(mixed_folder: Path, tmp_path: Path, workers: int, model: str) -> None:
    src = open_source(mixed_folder)
    report = tmp_path / "bad_images.csv"
    pre = pre_for(model, img_size=48 if model == "resnet18" else None)
    loader = make_loader(src, "train", pre, augment_preset("basic", pre.size, 3), 4, workers=workers,
                         on_bad_image="skip", max_bad_fraction=0.5, bad_report=report, seed=0)  # fmt: skip
    names = [Path(src.split("train").paths[i]).name for b in loader for i in b.index]
    assert len(names) == 12 + len(GOOD_ODD_FILES)  # every real and every odd-but-valid image
    assert set(GOOD_ODD_FILES) <= set(names) and not set(BAD_FILES) & set(names)
    with open(report) as f:
        rows = list(csv.DictReader(f))
    assert {Path(r["file"]).name: r["reason"] for r in rows}.keys() == BAD_FILES.keys()
    for r in rows:
        assert BAD_FILES[Path(r["file"]).name] in r["reason"]


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_aborts_above_the_bad_fraction(mixed_folder: Path, tmp_path: Path, workers: int) -> None:
    src = open_source(mixed_folder)
    with pytest.raises(
        TooManyBadImagesError,
        match=r"5 of the 22 images of the train split of .* are bad \(more than --max-bad-fraction 0.2 allows\).*bad_images.csv.*add --max-bad-fraction 0.23 to leave them out",
    ):
        for _ in make_loader(src, "train", pre_for("resnet18", img_size=48), None, 2, workers=workers,
                             on_bad_image="skip", max_bad_fraction=0.2, bad_report=tmp_path / "bad_images.csv"):  # fmt: skip
            pass


def test_balanced_draws_reach_every_loader() -> None:
    from imgcls.data.loader import BatchPlan

    targets = np.r_[np.zeros(900, int), np.ones(100, int)]
    weights = 1.0 / np.bincount(targets)[targets]
    drawn = np.concatenate(BatchPlan(50, True, seed=0, weights=weights).batches(1000, epoch=0))
    assert len(drawn) == 1000 and 400 < (targets[drawn] == 1).sum() < 600  # 10 % of the data, ~half the draws
    src = open_source(FOLDER)
    only = np.zeros(60)
    only[17] = 1.0  # all the weight on one image: every draw must be it
    for model, cache in (("resnet20", True), ("resnet20", False)):
        loader = make_loader(
            src, "train", pre_for(model), None, 16, shuffle=True, cache=cache, sample_weights=only
        )
        assert set(torch.cat([b.index for b in loader]).tolist()) == {17}, cache


@pytest.mark.parametrize(
    "shape, model, channels",
    [
        ((28, 28), "lenet5", 1),
        ((27, 30, 3), "resnet20", 3),
        ((32, 25, 3), "resnet20", 3),
        ((20, 20, 3), "resnet20", 3),
    ],
)
def test_array_images_are_cached_as_the_predict_path_sees_them(
    shape: tuple, model: str, channels: int
) -> None:
    """In-memory images (MNIST, CIFAR batches) smaller than the input are padded in one array
    operation: the pixels equal Pillow's geometry image by image (the path predict takes); a
    size that is resized (20 px for 32: too small to pad) still takes Pillow's path."""
    from imgcls.data.cache import _from_arrays
    from imgcls.data.splits import ArraySplit

    images = np.random.default_rng(0).integers(1, 256, (5, *shape), dtype=np.uint8)
    split = ArraySplit(images, np.zeros(5, np.int64), "arrays")
    pre = pre_for(model, channels)
    cached = _from_arrays(split, pre)
    one_by_one = np.stack([pre.pixels(split.image(i, pre.mode)).numpy() for i in range(5)])
    assert cached.shape == (5, channels, pre.size, pre.size)
    np.testing.assert_array_equal(cached, one_by_one)
