"""Every data source on small real fixtures: image folders, CSV/JSON label files (single- and
multi-label), tar shards (ours and foreign), MNIST/CIFAR files, and the seeded stratified split."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imgcls.data.holdout import holdout_split
from imgcls.data.shards import expand_braces, iter_samples, write_shards
from imgcls.data.source import open_source
from imgcls.data.splits import DataError, FileSplit, ShardSplit

FIXTURES = Path(__file__).parents[1] / "fixtures"
FOLDER = FIXTURES / "cifar_jpg"
LABELS = FIXTURES / "labels"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_split_folder_layout() -> None:
    src = open_source(FOLDER)
    assert src.kind == "folder" and src.classes == CLASSES and not src.multilabel
    assert list(src.splits) == ["train", "test"]
    train = src.split("train")
    assert isinstance(train, FileSplit) and len(train) == 60 and len(src.split("test")) == 20
    assert np.bincount(train.targets).tolist() == [6] * 10
    for path, t in zip(train.paths, train.targets):
        assert Path(path).parent.name == CLASSES[t]


def test_flat_nested_folder_in_natural_order(tmp_path: Path) -> None:
    # ROOT/CLASS/... with images in sub-folders, classes named so that plain sorting would misorder them
    for i, cls in enumerate(["class10", "class2", "class1"]):
        nested = tmp_path / cls / "2024" / "march"
        nested.mkdir(parents=True)
        shutil.copy(FOLDER / "train" / CLASSES[i] / "0000.jpg", nested / "a.JPG")
        shutil.copy(FOLDER / "train" / CLASSES[i] / "0001.jpg", tmp_path / cls / "b.jpeg")
    (tmp_path / "class1" / "notes.txt").write_text("not an image")
    (tmp_path / "class1" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "README.md").write_text("a file next to the class folders")
    src = open_source(tmp_path)
    assert src.classes == ["class1", "class2", "class10"]
    assert list(src.splits) == ["train"] and len(src.split("train")) == 6
    assert any("2 non-image or unfiled" in n for n in src.notes)


def test_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images in class folders"):
        open_source(tmp_path)
    (tmp_path / "val" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no train folder"):
        open_source(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        open_source(tmp_path / "nope")
    with pytest.raises(DataError, match="unknown data prefix"):
        open_source("imagenet21k:" + str(tmp_path))


def test_single_label_csv_paths_relative_to_the_file() -> None:
    src = open_source(LABELS / "single.csv")
    assert src.kind == "labels" and src.classes == CLASSES and not src.multilabel
    train = src.split("train")
    assert len(train) == 60 and all(Path(p).is_file() for p in train.paths)
    assert [CLASSES[t] for t in train.targets] == [Path(p).parent.name for p in train.paths]


def test_multilabel_csv_with_split_column() -> None:
    src = open_source(LABELS / "multilabel.csv")
    assert src.multilabel and src.classes == ["animal", "flies", "vehicle", "wheels"]
    train, test = src.split("train"), src.split("test")
    assert train.targets.shape == (60, 4) and test.targets.shape == (20, 4)
    row = {Path(p).parent.name: t.tolist() for p, t in zip(train.paths, train.targets)}
    assert row["bird"] == [1, 1, 0, 0] and row["truck"] == [0, 0, 1, 1] and row["cat"] == [1, 0, 0, 0]
    assert test.targets.sum(1).min() == 0  # an image with none of the labels is kept, all-zero


def test_json_records_and_mapping() -> None:
    records = open_source(LABELS / "records.json")
    assert records.classes == CLASSES and list(records.splits) == ["train", "test"]
    assert len(records.split("train")) == 60
    mapping = open_source(LABELS / "mapping.json")
    assert list(mapping.splits) == ["train"] and len(mapping.split("train")) == 20


def test_label_file_errors(tmp_path: Path) -> None:
    bad_split = tmp_path / "a.csv"
    bad_split.write_text(f"{FOLDER}/train/cat/0000.jpg,cat,holdout\n")
    with pytest.raises(DataError, match="split 'holdout'"):
        open_source(bad_split)
    missing = tmp_path / "b.csv"
    missing.write_text("path,label\nimages/1.jpg,cat\nimages/2.jpg,dog\n")
    with pytest.raises(DataError, match="relative to the label file's folder"):
        open_source(missing)
    broken = tmp_path / "c.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        open_source(broken)


def test_mnist_and_cifar_by_prefix_and_by_content() -> None:
    for spec in (f"mnist:{FIXTURES / 'mnist'}", FIXTURES / "mnist"):
        src = open_source(spec)
        assert src.kind == "mnist" and src.channels == 1 and src.classes == [str(i) for i in range(10)]
        assert src.split("train").images.shape == (64, 28, 28)
    assert open_source(f"fashion_mnist:{FIXTURES / 'mnist'}").classes[0] == "T-shirt/top"
    for spec in (f"cifar10:{FIXTURES / 'cifar10'}", FIXTURES / "cifar10"):
        src = open_source(spec)
        assert (
            src.kind == "cifar10"
            and src.classes == CLASSES
            and src.split("test").images.shape == (10, 32, 32, 3)
        )


def test_brace_expansion() -> None:
    assert expand_braces("s/train-{000..002}.tar") == [
        "s/train-000.tar",
        "s/train-001.tar",
        "s/train-002.tar",
    ]
    assert expand_braces("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"]
    with pytest.raises(DataError):
        expand_braces("x-{a..c}.tar")


def _pairs(src, split: str) -> list[tuple[str, tuple]]:
    """(sha of the image bytes, labels) of every sample, sorted: equal for equal contents."""
    import hashlib

    from imgcls.data.shards import image_part, sample_labels

    s = src.split(split)
    if isinstance(s, ShardSplit):
        out = []
        for url in s.urls:
            for _, parts in iter_samples(url):
                out.append(
                    (
                        hashlib.sha256(image_part(parts)[1]).hexdigest(),
                        tuple(sample_labels(parts, src.classes)),
                    )
                )
        return sorted(out)
    labels = [
        tuple(src.classes[j] for j in np.flatnonzero(t)) if src.multilabel else (src.classes[t],)
        for t in s.targets
    ]
    return sorted((hashlib.sha256(Path(p).read_bytes()).hexdigest(), ls) for p, ls in zip(s.paths, labels))


@pytest.mark.parametrize("spec", [FOLDER, LABELS / "multilabel.csv"])
def test_shards_round_trip(tmp_path: Path, spec: Path) -> None:
    src = open_source(spec)
    index = write_shards(src, tmp_path, "16", progress=False)
    assert [len(v["shards"]) for v in index.values()] == [4, 2]  # 60 train, 20 test samples, 16 a shard
    assert not list(tmp_path.glob("*.tmp"))
    for spec2 in (tmp_path, tmp_path / "train-{000000..000003}.tar"):
        shards = open_source(spec2)
        assert (
            shards.kind == "shards" and shards.classes == src.classes and shards.multilabel == src.multilabel
        )
        assert len(shards.split("train")) == 60
        assert _pairs(shards, "train") == _pairs(src, "train")  # same bytes, same labels, nothing lost
    # the same input writes the same bytes (no times or owners in the members)
    again = tmp_path / "again"
    write_shards(src, again, "16", progress=False)
    assert (again / "train-000000.tar").read_bytes() == (tmp_path / "train-000000.tar").read_bytes()


def test_foreign_shards_without_an_index(tmp_path: Path) -> None:
    """Shards written by another tool (WebDataset layout, .cls only, a folder prefix in the key)."""
    with tarfile.open(tmp_path / "part-0.tar", "w") as tar:
        for n, cls in enumerate(["cat", "dog", "cat"]):
            for ext, data in (
                ("jpg", (FOLDER / "train" / cls / "0000.jpg").read_bytes()),
                ("cls", b"1" if cls == "dog" else b"0"),
            ):
                info = tarfile.TarInfo(f"images/{n:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    src = open_source(tmp_path / "part-0.tar")
    assert src.classes == ["0", "1"] and src.split("train").length is None
    assert [k for k, _ in iter_samples(str(tmp_path / "part-0.tar"))] == [
        "images/0000",
        "images/0001",
        "images/0002",
    ]


def test_holdout_split_is_stratified_seeded_and_exact() -> None:
    targets = np.repeat(np.arange(5), [100, 50, 20, 3, 1])
    train, val = holdout_split(targets, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(targets)
    assert np.bincount(targets[val], minlength=5).tolist() == [20, 10, 4, 1, 0]
    again, _ = holdout_split(targets, 0.2, seed=3)
    other, _ = holdout_split(targets, 0.2, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_multilabel_split_keeps_rare_labels_in_both_sides() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((400, 6)) < [0.5, 0.3, 0.1, 0.05, 0.02, 0.0]).astype(np.uint8)
    _, val = holdout_split(targets, 0.25, seed=0)
    for label in range(5):
        share = targets[val, label].sum() / targets[:, label].sum()
        assert 0.1 < share < 0.45, (label, share)


def test_with_val_on_each_kind_of_source(tmp_path: Path) -> None:
    src = open_source(FOLDER).with_val(0.2, seed=0)
    assert list(src.splits) == ["train", "val", "test"]
    assert len(src.split("val")) == 10 and np.bincount(src.split("val").targets).tolist() == [1] * 10
    assert open_source(FOLDER).with_val(0.2, seed=0).split("val").paths == src.split("val").paths
    write_shards(open_source(FOLDER), tmp_path, "100", progress=False)
    shards = open_source(tmp_path).with_val(0.25, seed=1)
    assert shards.split("val").holdout == (1, 0.25, "val") and shards.split("train").holdout == (
        1,
        0.25,
        "train",
    )
    assert json.loads((tmp_path / "labels.json").read_text())["splits"]["train"]["samples"] == 60
