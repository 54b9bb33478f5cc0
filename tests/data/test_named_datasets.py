"""The datasets read in their own formats (issue 32): SVHN's .mat files, STL-10's binaries, Flowers-102's
JPEGs + .mat labels and splits, Sign Language MNIST's CSVs and MedMNIST's .npz. Each test writes a small
file set in the exact native layout with the libraries the datasets' own tools use (scipy.io.savemat,
numpy.tofile, Pillow), with asymmetric content, and checks: the images the right way round (not
transposed, not mirrored), labels aligned with images, class names and order, the official splits,
`data check --json`, and a short `imgcls train` + `imgcls predict` with no other data flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.cli import main
from imgcls.data.source import open_source
from imgcls.data.splits import ArraySplit, DataError

MARK = (2, 9)  # (row, column): a bright dot up and to the right, so a transpose or a mirror moves it


def marked(n: int, side: int, channels: int) -> np.ndarray:
    """n images (N, side, side, channels): image i is dark with value 10 + i everywhere and 255 at MARK in
    channel 0 — its index readable back, its orientation checkable."""
    x = np.empty((n, side, side, channels), np.uint8)
    for i in range(n):
        x[i] = 10 + i
        x[i, MARK[0], MARK[1], 0] = 255
    return x


def assert_upright(split: ArraySplit, n: int) -> None:
    """Image i is the i-th written, with its mark where it was put (not transposed, not mirrored)."""
    x = split.images
    assert x.shape[0] == n
    for i in range(n):
        img = x[i] if x.ndim == 4 else x[i][..., None]
        assert img[MARK[0], MARK[1], 0] == 255, "the mark moved: transposed or mirrored"
        assert img[MARK[1], MARK[0], 0] != 255 and img[MARK[0], -1 - MARK[1], 0] != 255
        assert img[0, 0, 0] == 10 + i, "images out of order"


def check_and_train(
    spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: dict[str, int]
) -> None:
    assert main(["data", "check", spec, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["errors"], report["errors"]
    for split, n in expect.items():
        assert report["splits"][split]["images"] == n, (split, report["splits"][split])
    out = tmp_path / "runs"
    assert main(["train", "--data", spec, "--model", "resnet20", "--epochs", "1", "--batch-size", "8",
                 "--out", str(out), "--name", "r", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    image = tmp_path / "one.png"
    Image.new("RGB", (32, 32), (40, 40, 40)).save(image)
    assert main(["predict", str(out / "r"), str(image), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)


# ---- SVHN


def write_svhn(root: Path, n: int = 12) -> np.ndarray:
    from scipy.io import savemat

    x = marked(n, 32, 3)
    digits = np.arange(n) % 10
    y = np.where(digits == 0, 10, digits).reshape(-1, 1)  # SVHN writes the digit 0 as 10
    for split in ("train", "test"):
        savemat(root / f"{split}_32x32.mat", {"X": x.transpose(1, 2, 3, 0), "y": y.astype(np.uint8)})
    return digits


def test_svhn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digits = write_svhn(tmp_path)
    src = open_source(f"svhn:{tmp_path}")
    assert (
        src.classes == [str(d) for d in range(10)]
        and src.channels == 3
        and list(src.splits) == ["train", "test"]
    )
    assert_upright(src.split("train"), 12)
    assert src.split("train").targets.tolist() == digits.tolist()  # 10 read as 0, aligned with the images
    assert open_source(str(tmp_path)).kind == "svhn"  # told by its files
    from scipy.io import savemat

    savemat(
        tmp_path / "extra_32x32.mat", {"X": marked(3, 32, 3).transpose(1, 2, 3, 0), "y": np.full((3, 1), 10)}
    )
    assert len(open_source(f"svhn:{tmp_path}?extra=1").split("train")) == 15
    check_and_train(f"svhn:{tmp_path}", tmp_path, capsys, {"train": 12, "test": 12})


def test_svhn_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "train_32x32.mat", {"y": np.ones((3, 1))})
    with pytest.raises(DataError, match="has no variable 'X'"):
        open_source(f"svhn:{tmp_path}")
    header = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"
    )
    (tmp_path / "train_32x32.mat").write_bytes(header + bytes(400))  # a v7.3 file: HDF5 after this header
    with pytest.raises(DataError, match=r"train_32x32.mat.*v7.3 \(HDF5\).*save it again in the v7"):
        open_source(f"svhn:{tmp_path}")
    with pytest.raises(DataError, match=r"unknown option 'folds'.*extra=1"):
        open_source(f"svhn:{tmp_path}?folds=2")


# ---- STL-10


def write_stl10(root: Path, n: int = 10) -> tuple[np.ndarray, list[str]]:
    folder = root / "stl10_binary"
    folder.mkdir()
    x = marked(n, 96, 3)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    labels = (np.arange(n) % 10 + 1).astype(np.uint8)  # 1 … 10
    for split in ("train", "test"):
        x.transpose(0, 3, 2, 1).tofile(
            folder / f"{split}_X.bin"
        )  # each channel column-major, as STL-10 stores it
        labels.tofile(folder / f"{split}_y.bin")
    marked(4, 96, 3).transpose(0, 3, 2, 1).tofile(folder / "unlabeled_X.bin")
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    (folder / "fold_indices.txt").write_text(
        "\n".join(" ".join(str((k + j) % n) for j in range(3)) for k in range(10))
    )
    return labels.astype(np.int64) - 1, names


def test_stl10(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, names = write_stl10(tmp_path)
    src = open_source(f"stl10:{tmp_path}")
    assert src.classes == names and list(src.splits) == ["train", "test"]
    assert_upright(src.split("train"), 10)
    assert src.split("test").targets.tolist() == labels.tolist()
    fold = open_source(f"stl10:{tmp_path}?fold=4").split("train")
    assert len(fold) == 3 and fold.targets.tolist() == labels[[4, 5, 6]].tolist()
    assert fold.images[0, 0, 0, 0] == 10 + 4  # fold 4's first index is image 4
    with_unlabeled = open_source(f"stl10:{tmp_path}?unlabeled=1")
    assert len(with_unlabeled.split("unlabeled")) == 4
    assert_upright(ArraySplit(with_unlabeled.split("unlabeled").images, np.zeros(4, np.int64), "u"), 4)
    assert open_source(str(tmp_path)).kind == "stl10"
    assert main(["data", "check", f"stl10:{tmp_path}?unlabeled=1", "--json"]) == 0
    unlabeled = json.loads(capsys.readouterr().out)["splits"]["unlabeled"]
    assert unlabeled["images"] == 4 and sum(unlabeled["counts"].values()) == 0
    check_and_train(f"stl10:{tmp_path}", tmp_path, capsys, {"train": 10})


def test_stl10_truncated_binary(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    path = tmp_path / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train_X.bin.*truncated"):
        open_source(f"stl10:{tmp_path}")
    (tmp_path / "b").mkdir()
    write_stl10(tmp_path / "b")
    with pytest.raises(DataError, match="fold must be 0 … 9"):
        open_source(f"stl10:{tmp_path / 'b'}?fold=10")


# ---- Flowers-102


def write_flowers(root: Path) -> np.ndarray:
    from scipy.io import savemat

    (root / "jpg").mkdir()
    labels = np.array([3, 1, 2, 3, 1, 2, 102, 1, 2])  # 1-based, as imagelabels.mat holds them
    for n, label in enumerate(labels, start=1):
        img = np.full((40, 50, 3), 20 * label % 256, np.uint8)
        img[:, :25] = 250  # left half bright: a mirror would show
        Image.fromarray(img).save(root / "jpg" / f"image_{n:05d}.jpg", quality=95)
    savemat(root / "imagelabels.mat", {"labels": labels.reshape(1, -1)})
    savemat(root / "setid.mat", {"trnid": np.array([[1, 2, 3, 7]]), "valid": np.array([[4, 5]]),
                                 "tstid": np.array([[6, 8, 9]])})  # fmt: skip
    return labels


def test_flowers102(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = write_flowers(tmp_path)
    src = open_source(f"flowers102:{tmp_path}")
    assert src.classes == [str(c) for c in range(1, 103)] and list(src.splits) == ["train", "val", "test"]
    train = src.split("train")
    assert [Path(p).name for p in train.paths] == [
        "image_00001.jpg",
        "image_00002.jpg",
        "image_00003.jpg",
        "image_00007.jpg",
    ]
    assert train.targets.tolist() == (labels[[0, 1, 2, 6]] - 1).tolist()
    img = np.asarray(train.image(0))
    assert img[20, 5].mean() > 200 and img[20, 45].mean() < 100  # left bright, right dark
    assert open_source(str(tmp_path)).kind == "flowers102"
    check_and_train(f"flowers102:{tmp_path}", tmp_path, capsys, {"train": 4, "val": 2, "test": 3})


def test_flowers102_missing_image(tmp_path: Path) -> None:
    write_flowers(tmp_path)
    (tmp_path / "jpg" / "image_00007.jpg").unlink()
    with pytest.raises(DataError, match=r"image_00007.jpg"):
        open_source(f"flowers102:{tmp_path}")


# ---- Sign Language MNIST


def write_sign_mnist(root: Path) -> list[int]:
    labels = [0, 10, 24, 8, 1, 2, 3, 4]  # 9 (J) and 25 (Z) never occur
    x = marked(len(labels), 28, 1)[..., 0]
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    for split in ("train", "test"):
        rows = [",".join(map(str, [lab, *x[i].reshape(-1)])) for i, lab in enumerate(labels)]
        (root / f"sign_mnist_{split}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return labels


def test_sign_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = write_sign_mnist(tmp_path)
    src = open_source(f"sign_mnist:{tmp_path}")
    assert src.classes == list("ABCDEFGHIKLMNOPQRSTUVWXY") and src.channels == 1
    train = src.split("train")
    assert_upright(train, len(labels))
    assert [src.classes[t] for t in train.targets] == ["A", "K", "Y", "I", "B", "C", "D", "E"]
    assert open_source(str(tmp_path / "sign_mnist_train.csv")).kind == "sign_mnist"
    check_and_train(f"sign_mnist:{tmp_path}", tmp_path, capsys, {"train": len(labels), "test": len(labels)})


def test_sign_mnist_bad_rows(tmp_path: Path) -> None:
    write_sign_mnist(tmp_path)
    path = tmp_path / "sign_mnist_train.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # a row with 783 pixels
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 4 has 783 pixels, not 784"):
        open_source(f"sign_mnist:{tmp_path}")
    write_sign_mnist(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = "9" + lines[2][lines[2].index(",") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="label 9"):
        open_source(f"sign_mnist:{tmp_path}")


# ---- MedMNIST


def test_medmnist_multiclass_and_multilabel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = marked(9, 28, 3)
    derma = tmp_path / "dermamnist.npz"
    np.savez(derma, train_images=x, train_labels=(np.arange(9) % 7).reshape(-1, 1), val_images=x[:3],
             val_labels=np.zeros((3, 1)), test_images=x[:4], test_labels=np.ones((4, 1)))  # fmt: skip
    src = open_source(f"medmnist:{derma}")
    assert src.classes[4] == "melanoma" and len(src.classes) == 7 and not src.multilabel
    assert list(src.splits) == ["train", "val", "test"] and src.channels == 3
    assert_upright(src.split("train"), 9)
    assert src.split("train").targets.tolist() == (np.arange(9) % 7).tolist()

    grey = marked(6, 28, 1)[..., 0]
    chest = tmp_path / "chest" / "chestmnist_28.npz"
    chest.parent.mkdir()
    multi = np.zeros((6, 14), np.uint8)
    multi[np.arange(6), np.arange(6)] = 1
    multi[0, 13] = 1
    np.savez(chest, train_images=grey, train_labels=multi, test_images=grey[:2], test_labels=multi[:2])
    src = open_source(f"medmnist:{chest.parent}")
    assert (
        src.multilabel
        and src.classes[0] == "atelectasis"
        and src.classes[13] == "hernia"
        and src.channels == 1
    )
    assert src.split("train").targets[0].tolist() == [1] + [0] * 12 + [1]
    assert_upright(src.split("train"), 6)
    assert open_source(str(derma)).kind == "medmnist"

    other = tmp_path / "mine.npz"
    np.savez(other, train_images=x, train_labels=np.arange(9).reshape(-1, 1) % 3)
    assert open_source(f"medmnist:{other}").classes == ["0", "1", "2"]
    check_and_train(f"medmnist:{derma}", tmp_path, capsys, {"train": 9, "val": 3, "test": 4})


def test_medmnist_refuses_pickled_objects(tmp_path: Path) -> None:
    bad = tmp_path / "pathmnist.npz"
    np.savez(bad, train_images=np.array([object()], dtype=object), train_labels=np.zeros((1, 1)))
    with pytest.raises(DataError, match=r"not a plain .npz"):
        open_source(f"medmnist:{bad}")


# ---- ImageNet (ILSVRC-2012)


def jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (shade, 255 - shade, 0)).save(path, quality=95)


def write_imagenet(root: Path, val: str) -> list[str]:
    """train/SYNSET/*.JPEG for two standard synsets and one of ImageNet-21k's (n02084071, "dog"); val
    as SYNSET folders, flat with Kaggle's files, or flat with the devkit's."""
    synsets = ["n01443537", "n01440764", "n02084071"]  # goldfish, tench, dog: not in sorted order here
    for k, s in enumerate(synsets):
        for j in range(2):
            jpeg(root / "train" / s / f"{s}_{j}.JPEG", 40 * k + j)
    truth = ["n01440764", "n02084071", "n01443537", "n01440764"]
    if val == "folders":
        for k, s in enumerate(truth):
            jpeg(root / "val" / s / f"ILSVRC2012_val_{k + 1:08d}.JPEG", k)
    else:
        for k in range(len(truth)):
            jpeg(root / "val" / f"ILSVRC2012_val_{k + 1:08d}.JPEG", k)
    if val == "kaggle":
        (root / "LOC_synset_mapping.txt").write_text(
            "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn02084071 dog, domestic dog\n"
        )
        rows = [f"ILSVRC2012_val_{k + 1:08d},{s} 1 2 3 4" for k, s in enumerate(truth)]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    if val == "devkit":
        from scipy.io import savemat

        data = root / "ILSVRC2012_devkit_t12" / "data"
        data.mkdir(parents=True)
        ids = {"n02084071": 1, "n01440764": 7, "n01443537": 3}  # the devkit's ids are not in synset order
        words = {"n02084071": "dog, domestic dog", "n01440764": "tench, Tinca tinca", "n01443537": "goldfish"}
        rows = [(np.array([[ids[s]]]), s, words[s]) for s in ids]
        savemat(
            data / "meta.mat",
            {
                "synsets": np.array(
                    rows, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")]
                ).reshape(-1, 1)
            },
        )
        (data / "ILSVRC2012_validation_ground_truth.txt").write_text(
            "\n".join(str(ids[s]) for s in truth) + "\n"
        )
    return truth


@pytest.mark.parametrize("val", ["folders", "kaggle", "devkit"])
def test_imagenet_layouts(tmp_path: Path, val: str, capsys: pytest.CaptureFixture[str]) -> None:
    truth = write_imagenet(tmp_path, val)
    src = open_source(f"imagenet:{tmp_path}")
    assert src.class_ids == ["n01440764", "n01443537", "n02084071"]  # sorted-synset order
    # the catalogue's names for standard synsets; another's from the download's files, else its id
    assert src.classes == ["tench", "goldfish", "n02084071" if val == "folders" else "dog"]
    assert list(src.splits) == ["train", "val"]
    train = src.split("train")
    assert [Path(p).parent.name for p in train.paths] == [src.class_ids[t] for t in train.targets]
    val_split = src.split("val")
    labelled = {Path(p).name: src.class_ids[t] for p, t in zip(val_split.paths, val_split.targets)}
    assert labelled == {f"ILSVRC2012_val_{k + 1:08d}.JPEG": s for k, s in enumerate(truth)}
    assert open_source(str(tmp_path)).kind == "imagenet"
    if val == "kaggle":
        out = tmp_path / "runs"
        assert main(["train", "--data", f"imagenet:{tmp_path}", "--model", "resnet20", "--epochs", "1", "--batch-size", "4",
                     "--out", str(out), "--name", "r", "--no-progress"]) == 0  # fmt: skip
        assert json.loads((out / "r" / "labels.json").read_text()) == {
            "classes": src.classes,
            "ids": src.class_ids,
        }
        capsys.readouterr()
        assert main(["predict", str(out / "r"), str(src.split("val").paths[0]), "--format", "json"]) == 0


def test_imagenet_val_image_without_label(tmp_path: Path) -> None:
    write_imagenet(tmp_path, "kaggle")
    jpeg(tmp_path / "val" / "ILSVRC2012_val_00000099.JPEG", 9)
    with pytest.raises(DataError, match=r"ILSVRC2012_val_00000099.JPEG.*has no label"):
        open_source(f"imagenet:{tmp_path}")
    (tmp_path / "LOC_val_solution.csv").unlink()
    with pytest.raises(DataError, match=r"no labels for them: add the devkit"):
        open_source(f"imagenet:{tmp_path}")


def test_imagenet_class_i_is_output_i_of_the_published_weights(tmp_path: Path) -> None:
    """All 1,000 synsets: the classes, in order, are the catalogue's ImageNet names — the labels the
    pretrained weights' outputs carry."""
    from imgcls.data.imagenet import STANDARD

    for s in reversed(STANDARD):
        (tmp_path / "train" / s).mkdir(parents=True)
        (tmp_path / "train" / s / f"{s}_1.JPEG").write_bytes(b"")  # listed, never decoded here
    src = open_source(f"imagenet:{tmp_path}")
    catalogue = (
        (Path(__file__).parents[2] / "src" / "imgcls" / "pretrained" / "imagenet_1k.txt")
        .read_text()
        .splitlines()
    )
    assert src.classes == catalogue and src.class_ids == sorted(STANDARD) == STANDARD
    assert src.classes[1] == "goldfish" and src.class_ids[1] == "n01443537"


# ---- CIFAR-100 (coarse labels) and EMNIST


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    import pickle

    x = marked(6, 32, 3)
    data = x.transpose(0, 3, 1, 2).reshape(6, -1)  # the batches store each image channel by channel
    batch = {b"data": data, b"fine_labels": [0, 1, 2, 3, 4, 99], b"coarse_labels": [0, 0, 1, 1, 2, 19]}
    for split in ("train", "test"):
        (tmp_path / split).write_bytes(pickle.dumps(batch, protocol=2))
    fine = [f"f{i}".encode() for i in range(100)]
    coarse = [f"c{i}".encode() for i in range(20)]
    (tmp_path / "meta").write_bytes(
        pickle.dumps({b"fine_label_names": fine, b"coarse_label_names": coarse}, protocol=2)
    )
    src = open_source(f"cifar100:{tmp_path}")
    assert len(src.classes) == 100 and src.split("train").targets.tolist() == [0, 1, 2, 3, 4, 99]
    assert_upright(src.split("train"), 6)
    coarse_src = open_source(f"cifar100:{tmp_path}?labels=coarse")
    assert coarse_src.classes == [f"c{i}" for i in range(20)]
    assert coarse_src.split("test").targets.tolist() == [0, 0, 1, 1, 2, 19]


def test_emnist_letters_the_right_way_round(tmp_path: Path) -> None:
    import gzip

    def idx(array: np.ndarray) -> bytes:
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        return gzip.compress(header + array.astype(np.uint8).tobytes())

    x = marked(5, 28, 1)[..., 0]
    labels = np.array([1, 2, 26, 3, 1])  # letters: 1 … 26
    for part in ("train", "test"):
        (tmp_path / f"emnist-letters-{part}-images-idx3-ubyte.gz").write_bytes(
            idx(x.transpose(0, 2, 1))
        )  # stored transposed
        (tmp_path / f"emnist-letters-{part}-labels-idx1-ubyte.gz").write_bytes(idx(labels))
    (tmp_path / "emnist-letters-mapping.txt").write_text(
        "\n".join(f"{i} {64 + i} {96 + i}" for i in range(1, 27)) + "\n"
    )
    src = open_source(f"emnist:{tmp_path}?split=letters")
    assert src.classes == [chr(65 + i) for i in range(26)] and src.channels == 1
    assert_upright(src.split("train"), 5)
    assert [src.classes[t] for t in src.split("test").targets] == ["A", "B", "Z", "C", "A"]
    with pytest.raises(DataError, match=r"no emnist-balanced-mapping.txt"):
        open_source(f"emnist:{tmp_path}")
