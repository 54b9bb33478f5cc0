"""Pretrained weights by name: every catalogue entry fits its zoo model; downloads land in torch hub's
cache (reused, hash-checked, atomic), Hub weights come from huggingface_hub's cache; a weight's
preprocessing and ImageNet labels make a model predict out of the box.

No test reaches beyond 127.0.0.1: the downloads are served by a local HTTP server (or file://), and
the shipped entries are redirected to it through ``$IMGCLS_CATALOGUE``."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

import imgcls
from imgcls.analysis.parity import filled_state_dict, load_manifest
from imgcls.cli import main
from imgcls.data.pipeline import Preprocess
from imgcls.pretrained import (
    WeightsDownloadError,
    WeightsHashError,
    catalogue,
    entries,
    fetch,
    find,
    labels,
    preprocess_of,
)
from imgcls.transfer import convert_state as convert
from imgcls.transfer import load_state
from support import FIXTURES, FOLDER, ROOT

REFERENCE = FIXTURES / "reference"
IMAGE = next((FOLDER / "test").rglob("*.jpg"))
# timm's results table has no row for these: their parameter count is not published beside them
UNPUBLISHED = {"mobilenet_v1.ra4_e3600_r224_in1k", "vit_base_patch16_224.augreg_in21k", "vit_base_patch16_224.orig_in21k",
               "vit_large_patch16_224.augreg_in21k", "vit_large_patch16_224.orig_in21k",
               "vit_small_patch16_224.augreg_in21k", "vit_tiny_patch16_224.augreg_in21k"}  # fmt: skip


# ---- the catalogue --------------------------------------------------------------------------------


def test_every_zoo_model_with_published_weights_is_in_the_catalogue() -> None:
    models = {e.model for e in catalogue()}
    assert {"resnet50", "vit_small_patch16_224", "convnext_tiny", "efficientnet_b0", "swin_t", "xception",
            "inception_v4", "mobilenet_v1", "densenet121", "regnet_y_400mf", "deit_tiny_patch16_224"} <= models  # fmt: skip
    assert len(catalogue()) >= 100
    for model in models:  # exactly one default per model, with a classifier head
        defaults = [e for e in catalogue() if e.model == model and e.default]
        assert len(defaults) == 1 and defaults[0].num_classes == 1000, model
    assert {e.tag for e in catalogue() if e.params is None} == UNPUBLISHED


@pytest.mark.parametrize("entry", [e for e in catalogue() if e.params is not None], ids=lambda e: e.tag)
def test_entry_has_its_published_parameter_count(entry) -> None:
    """The model the entry loads into, with the entry's head, has the parameters its source published
    (torchvision: exactly; timm: its table's count in millions to two decimals)."""
    # torchvision counts GoogLeNet without its auxiliary heads (in the file, but never trained)
    args = {"aux_logits": False} if entry.model == "googlenet" else {}
    model = imgcls.create_model(entry.model, num_classes=entry.num_classes or None, device="meta", **args)
    count = sum(p.numel() for p in model.parameters())
    if entry.source == "torchvision":
        assert count == entry.params
    else:
        assert abs(count - entry.params) <= 0.005e6, (count, entry.params)


def expected_layout(entry) -> list[tuple[str, list[int]]]:
    """The keys and shapes of the entry's file: its architecture's reference manifest when one of the
    same source and head exists, else the layout tools/make_weight_layouts.py read from the source's
    own model (tests/fixtures/weights)."""
    path = REFERENCE / f"{entry.model}.json"
    if path.is_file():
        manifest = load_manifest(path)
        if manifest["source"].split()[0] == entry.source and manifest["num_classes"] == entry.num_classes:
            return [(k, shape) for k, shape, *_ in manifest["state_dict"]]
    return [tuple(kv) for kv in LAYOUTS["layouts"][LAYOUTS["tags"][entry.tag]]]


LAYOUTS = json.loads(gzip.decompress((FIXTURES / "weights" / "layouts.json.gz").read_bytes()))


@pytest.mark.parametrize("entry", catalogue(), ids=lambda e: e.tag)
def test_the_entrys_file_would_load_strictly(entry) -> None:
    """A state dict with the keys and shapes of the entry's file loads into the entry's model through
    the one loading path (converters included): nothing missing, unexpected or reshaped (it raises),
    nothing adapted, and — but for the headless ``orig_in21k`` backbones — every tensor from the file."""
    state = {k: torch.empty(shape, device="meta") for k, shape in expected_layout(entry)}
    model = imgcls.create_model(entry.model, num_classes=entry.num_classes or None, device="meta")
    assert load_state(model, state, entry.tag) == []
    if entry.num_classes:
        own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
        assert own <= set(convert(model, state))


def test_names_resolve() -> None:
    assert find("resnet50").tag == "resnet50.tv2_in1k"  # torchvision's DEFAULT
    assert find("torchvision:resnet50.tv_in1k").tag == "resnet50.tv_in1k"
    assert find("tv_in1k", model="resnet50").tag == "resnet50.tv_in1k"
    assert find("timm:legacy_xception.tf_in1k").tag == "xception.tf_in1k"  # timm's name, our model
    assert find("timm:vit_small_patch16_224").default
    assert find("vit_small_patch16_224").source == "timm"
    with pytest.raises(imgcls.ImgclsError, match=r"did you mean 'resnet50'"):
        find("torchvision:resnet5")
    with pytest.raises(imgcls.ImgclsError, match="no weights 'timm:resnet50'"):
        find("timm:resnet50")  # torchvision's, not timm's
    with pytest.raises(imgcls.ImgclsError, match="are for resnet50, not resnet18"):
        find("resnet50.tv_in1k", model="resnet18")
    assert [e.tag for e in entries("resnet50.*")] == ["resnet50.tv2_in1k", "resnet50.tv_in1k"]


def test_labels_are_imagenets() -> None:
    names = labels(find("resnet50"))
    assert len(names) == 1000 and names[207] == "golden retriever" and names[0] == "tench"
    tags = labels(find("vit_small_patch16_224.augreg_in21k"))
    assert len(tags) == 21843 and len(set(tags)) > 20000


def test_the_weights_preprocessing_is_kept_exactly() -> None:
    """resnet50.tv2_in1k is evaluated at resize 232 -> crop 224 (not 256 -> 224): the explicit resize
    survives the crop fraction's floating point, and scales with another input size."""
    pre = preprocess_of(find("resnet50.tv2_in1k"))
    assert (pre.size, pre.side, pre.interpolation) == (224, 232, "bilinear")
    assert preprocess_of(find("resnet50.tv2_in1k"), size=112).side == 116
    vit = preprocess_of(find("vit_small_patch16_224.augreg_in21k_ft_in1k"))
    assert (vit.side, vit.interpolation, vit.mean) == (248, "bicubic", (0.5, 0.5, 0.5))
    assert Preprocess.from_dict(pre.to_dict()) == pre


# ---- downloads ------------------------------------------------------------------------------------


class Files(http.server.ThreadingHTTPServer):
    """A loopback file server: path -> bytes, counting requests; ``truncate`` sends that many bytes of a
    file (announcing all of it) and closes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.truncate: int | None = None
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.server.truncate] if self.server.truncate else body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Files]:
    files = Files()
    thread = threading.Thread(target=files.serve_forever, daemon=True)
    thread.start()
    yield files
    files.shutdown()
    files.server_close()


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def checkpoint(model: str, path_dir: Path, num_classes: int = 1000) -> tuple[bytes, str]:
    """A state dict of ``model`` filled by the reference manifests' rule, as torch.save writes it, and
    its torch-hub style name (the file's own SHA-256 prefix)."""
    path = path_dir / "ckpt.pth"
    torch.save(filled_state_dict(imgcls.create_model(model, num_classes=num_classes).state_dict()), path)
    body = path.read_bytes()
    return body, f"{model}-{hashlib.sha256(body).hexdigest()[:8]}.pth"


def served(entry, server: Files, name: str):
    return replace(entry, url=f"{server.url}/models/{name}", sha256_prefix=name.rsplit("-", 1)[1][:8])


def test_download_lands_in_torch_hub_cache_once(tmp_path: Path, server: Files, torch_home: Path) -> None:
    body, name = checkpoint("resnet18", tmp_path)
    server.files[f"/models/{name}"] = body
    entry = served(find("resnet18"), server, name)
    path = fetch(entry, progress=False)
    assert path == torch_home / name and path.read_bytes() == body
    assert fetch(entry, progress=False) == path
    assert server.requests == [f"/models/{name}"]  # the second time: from the cache
    assert sorted(p.name for p in torch_home.iterdir()) == [name]  # no temporary left


def test_a_file_torchvision_already_downloaded_is_used(tmp_path: Path, torch_home: Path) -> None:
    body, name = checkpoint("resnet18", tmp_path)
    torch_home.mkdir(parents=True)
    (torch_home / name).write_bytes(body)  # where torchvision / torch.hub put it
    entry = replace(find("resnet18"), url=f"http://127.0.0.1:9/models/{name}", sha256_prefix=name[-12:-4])
    assert fetch(entry, progress=False) == torch_home / name  # port 9 is never asked


def test_a_file_url_works_as_a_mirror(tmp_path: Path, torch_home: Path) -> None:
    body, name = checkpoint("resnet18", tmp_path)
    (tmp_path / name).write_bytes(body)
    entry = replace(find("resnet18"), url=(tmp_path / name).as_uri(), sha256_prefix=name[-12:-4])
    assert fetch(entry, progress=False).read_bytes() == body


def test_wrong_hash_deletes_and_says_so(tmp_path: Path, server: Files, torch_home: Path) -> None:
    body, name = checkpoint("resnet18", tmp_path)
    server.files[f"/models/{name}"] = body + b"tampered"
    entry = served(find("resnet18"), server, name)
    with pytest.raises(WeightsHashError, match=r"not the [0-9a-f]{8}\.\.\. its name promises: deleted it"):
        fetch(entry, progress=False)
    assert not any(torch_home.iterdir())
    torch_home.joinpath(name).write_bytes(b"corrupt")  # a damaged file in the cache is refused too
    with pytest.raises(WeightsHashError, match=str(torch_home / name)):
        fetch(entry, progress=False)
    assert not any(torch_home.iterdir())


def test_an_interrupted_download_leaves_nothing(tmp_path: Path, server: Files, torch_home: Path) -> None:
    body, name = checkpoint("resnet18", tmp_path)
    server.files[f"/models/{name}"] = body
    server.truncate = len(body) // 3
    with pytest.raises(WeightsDownloadError, match=r"curl -L -o .* http://127\.0\.0\.1"):
        fetch(served(find("resnet18"), server, name), progress=False)
    assert not any(torch_home.iterdir())


def test_no_network_names_the_url_and_the_way_around(torch_home: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    entry = find("resnet18")
    closed = {**asdict(entry), "url": "http://127.0.0.1:9/models/resnet18-f37072fd.pth"}
    (tmp_path / "catalogue.json").write_text(json.dumps([closed]))
    monkeypatch.setenv("IMGCLS_CATALOGUE", str(tmp_path / "catalogue.json"))
    assert main(["weights", "fetch", "resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot download resnet18.tv_in1k" in err
    assert (
        f"curl -L -o {torch_home / 'resnet18-f37072fd.pth'} http://127.0.0.1:9/models/resnet18-f37072fd.pth"
        in err
    )
    assert "imgcls train --init FILE" in err


def test_the_offline_advice_works_as_printed(tmp_path: Path, server: Files, torch_home: Path) -> None:
    """Run the fetch command the error prints (curl, or the same URL and path by hand where there is
    no curl), then the same call again: the weights load from where the advice put them. The advice's
    imgcls command names an option that command has."""
    import shlex
    import shutil
    import urllib.request

    from imgcls.cli import build_parser

    body, name = checkpoint("resnet18", tmp_path)
    server.files[f"/models/{name}"] = body
    server.truncate = len(body) // 3  # the download breaks off: the advice is printed
    entry = served(find("resnet18"), server, name)
    with pytest.raises(WeightsDownloadError) as e:
        fetch(entry, progress=False)
    server.truncate = None  # "on a machine with a network"
    command = str(e.value).split("On a machine with a network: ", 1)[1].split(";", 1)[0]
    argv = shlex.split(command)
    assert argv[:3] == ["curl", "-L", "-o"]
    if shutil.which("curl"):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    else:
        Path(argv[3]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[3]).write_bytes(urllib.request.urlopen(argv[4], timeout=60).read())
    requests = len(server.requests)
    assert fetch(entry, progress=False) == torch_home / name  # found where the advice put it, hash checked
    assert len(server.requests) == requests  # and not downloaded again
    train_help = build_parser().parse_args(["train", "--init", "x.pth"])
    assert train_help.init == "x.pth"


# ---- the Hugging Face Hub (timm's weights) ----------------------------------------------------------


def hub_cache(root: Path, repo: str, file: str, body: bytes) -> None:
    """The layout huggingface_hub (and timm through it) leaves: blobs, a snapshot linking to them, refs/main."""
    commit = "0" * 40
    folder = root / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / hashlib.sha256(body).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(body)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit / file
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgcls", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200", **env})  # fmt: skip


def test_timm_weights_come_from_the_hugging_face_cache(tmp_path: Path) -> None:
    """With HF_HUB_OFFLINE=1 and timm's file in the Hub cache, the model predicts with ImageNet-21k
    tags; without the file, a one-line error with the URL (exit 2)."""
    from safetensors.torch import save

    entry = find("vit_tiny_patch16_224.augreg_in21k")
    torch.manual_seed(0)
    model = imgcls.create_model(entry.model, num_classes=entry.num_classes)
    hub_cache(tmp_path / "hub", entry.hf_repo, entry.hf_file, save(model.state_dict()))
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    r = run_cli("predict", entry.tag, str(IMAGE), "--format", "json", "--topk", "3", env=env)
    assert r.returncode == 0, r.stderr
    top = json.loads(r.stdout)[0]["top"]
    model.eval()
    with torch.no_grad():
        expected = model(preprocess_of(entry)(IMAGE)[None]).softmax(1)[0].topk(3)
    names = labels(entry)
    assert [t["class"] for t in top] == [names[i] for i in expected.indices.tolist()]

    r = run_cli("predict", "vit_small_patch16_224.augreg_in21k", str(IMAGE), env=env)
    assert r.returncode == 2
    assert "HF_HUB_OFFLINE is set" in r.stderr
    assert (
        "https://huggingface.co/timm/vit_small_patch16_224.augreg_in21k/resolve/main/model.safetensors"
        in r.stderr
    )


# ---- by name, everywhere weights are taken --------------------------------------------------------


@pytest.fixture
def cached_resnet18(tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """resnet18's default weights already in the torch hub cache (the reference fill under its own hash,
    registered through $IMGCLS_CATALOGUE as a mirror would be); the env for a subprocess."""
    body, name = checkpoint("resnet18", tmp_path)
    torch_home.mkdir(parents=True)
    (torch_home / name).write_bytes(body)
    # a preprocessing of its own, unlike the model's defaults, so that a test sees whether it is used
    own = {"size": 224, "resize": 232, "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3}
    entry = {**asdict(find("resnet18")), "url": f"http://127.0.0.1:9/{name}", "sha256_prefix": name[-12:-4],
             "preprocess": own}  # fmt: skip
    (tmp_path / "catalogue.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("IMGCLS_CATALOGUE", str(tmp_path / "catalogue.json"))
    return {"TORCH_HOME": os.environ["TORCH_HOME"], "IMGCLS_CATALOGUE": str(tmp_path / "catalogue.json")}


def test_create_model_pretrained(cached_resnet18: dict[str, str]) -> None:
    model = imgcls.create_model("resnet18", pretrained=True)
    state = torch.load(next(Path(cached_resnet18["TORCH_HOME"]).rglob("*.pth")), weights_only=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    ten = imgcls.create_model("resnet18", num_classes=10, pretrained="tv_in1k")  # a new head, the rest kept
    assert ten.fc.out_features == 10 and torch.equal(ten.conv1.weight, state["conv1.weight"])


def test_predict_by_model_name_prints_imagenet_classes(cached_resnet18: dict[str, str]) -> None:
    predictor = imgcls.load("resnet18")
    assert predictor.classes == labels(find("resnet18")) and predictor.preprocess.side == 232
    expected = predictor.predict([IMAGE])[0]
    r = run_cli("predict", "resnet18", str(IMAGE), "--topk", "3", env=cached_resnet18)
    assert r.returncode == 0, r.stderr
    printed = " ".join(r.stdout.split())  # the table may fold long names
    for name, prob in expected.top(3):  # ImageNet's names with their probabilities
        assert name in labels(find("resnet18")) and f"{name} {prob:.2f}" in printed, (name, prob, r.stdout)


def test_weights_list_shows_what_is_cached(
    cached_resnet18: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "list", "resnet18", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["tag"] for r in rows] == ["resnet18.tv_in1k"] and rows[0]["cached"]
    assert main(["weights", "list", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18.tv_in1k *" in out and "resnet101.tv2_in1k" in out and "yes" in out


def test_finetune_from_a_name_records_the_weights_preprocessing(
    cached_resnet18: dict[str, str], tmp_path: Path
) -> None:
    """``imgcls train --pretrained`` starts from the named weights and keeps their preprocessing
    (mean/std, interpolation, resize) in the run, which then predicts with it."""
    r = run_cli("train", "--data", str(FOLDER), "--model", "resnet18", "--pretrained", "--freeze", "backbone",
                "--img-size", "64", "--epochs", "1", "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "runs"),
                env=cached_resnet18)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "init: resnet18.tv_in1k" in r.stderr + r.stdout
    run = tmp_path / "runs" / "resnet18"
    predictor = imgcls.load(run)
    pre = predictor.preprocess
    assert (pre.side, pre.interpolation, pre.mean, pre.std) == (
        round(232 * 64 / 224),
        "bicubic",
        (0.5,) * 3,
        (0.5,) * 3,
    )
    assert predictor.meta.init == "resnet18.tv_in1k"
    state = torch.load(next(Path(cached_resnet18["TORCH_HOME"]).rglob("*.pth")), weights_only=True)
    assert torch.equal(predictor.model.conv1.weight, state["conv1.weight"])  # frozen: the weights' own


def test_serve_takes_a_weight_name(cached_resnet18: dict[str, str]) -> None:
    from imgcls.serve.backends import open_backend

    backend = open_backend("resnet18")
    info = backend.describe()
    assert info["labels"] == labels(find("resnet18")) and info["model"] == "resnet18"
    pixels = backend.preprocess.pixels(IMAGE)[None]
    assert backend.infer(pixels).shape == (1, 1000)


def test_the_readme_counts_the_catalogue() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"{len(catalogue())} weights of {len({e.model for e in catalogue()})} models" in readme
