"""Pretrained weights in: every reference manifest's state dict (filled by the rule) loads into a
model with another number of classes and gives the reference model's pooled features; wrappers and
prefixes, channel adaptation, position-embedding resampling, clear errors, unsafe files refused;
freezing."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from imgcls import create_model
from imgcls.analysis.parity import fill_value, load_manifest
from imgcls.errors import ConfigError
from imgcls.models.base import min_input_size, skip_init
from imgcls.transfer import (
    WeightsMismatchError,
    adapt_channels,
    freeze,
    keep_frozen_norms_eval,
    load_pretrained,
)

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
MANIFESTS = sorted(REFERENCE.glob("*.json"))
WRAPS = ["bare", "state_dict", "module", "model+module"]


def manifest_state(manifest: dict, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's state dict rebuilt from its manifest: keys, shapes and dtypes as listed, floats
    set by the fill rule (sorted-key index), other tensors the model's own values (as the rule says)."""
    entries = manifest["state_dict"]
    order = {key: i for i, key in enumerate(sorted(k for k, _, _ in entries))}
    out = {}
    for key, shape, dtype in entries:
        dt = getattr(torch, dtype.replace("torch.", ""))
        if dt.is_floating_point:
            out[key] = fill_value(key, order[key], torch.empty(shape, dtype=dt))
        else:
            out[key] = own[key].clone() if key in own else torch.zeros(shape, dtype=dt)
    return out


def wrap(state: dict[str, torch.Tensor], how: str) -> object:
    if how == "bare":
        return state
    if how == "state_dict":
        return {"state_dict": state, "epoch": 90}
    prefixed = {f"module.{k}": v for k, v in state.items()}
    return prefixed if how == "module" else {"model": prefixed, "optimizer": {}}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_weights_load_with_a_new_head_and_keep_the_features(path: Path, tmp_path: Path) -> None:
    manifest = load_manifest(path)
    name = "vit_base_patch16_224" if manifest["name"] == "vit_b_16" else manifest["name"]
    with skip_init():
        reference = create_model(name, num_classes=manifest["num_classes"]).eval()
    state = manifest_state(manifest, reference.state_dict())
    if manifest["name"] == "vit_b_16":
        from imgcls.models.vit import convert_torchvision_vit

        reference.load_state_dict(convert_torchvision_vit(state), strict=True)
    else:
        reference.load_state_dict(state, strict=True)
    how = WRAPS[MANIFESTS.index(path) % len(WRAPS)]
    suffix = ".bin" if how == "bare" else ".pth"
    torch.save(wrap(state, how), tmp_path / f"weights{suffix}")

    with skip_init():  # the loaded weights overwrite the backbone's initialisation anyway
        model = create_model(name, num_classes=7, weights=tmp_path / f"weights{suffix}").eval()
    assert model.forward_head(model.forward_features(torch.zeros(1, *_input(reference, manifest)))).shape == (
        1,
        7,
    )
    x = torch.randn(2, *_input(reference, manifest), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.forward_head(model.forward_features(x), pre_logits=True)
        theirs = reference.forward_head(reference.forward_features(x), pre_logits=True)
    assert torch.equal(ours, theirs)


def _input(model: torch.nn.Module, manifest: dict) -> tuple[int, int, int]:
    """The reference size for the transformers (fixed grids / windows); otherwise a small input the
    model accepts: the same function at 64 px checks the weights as well as at 224 px, 10x faster."""
    if getattr(model, "has_attention", False):
        return tuple(manifest["input_size"][1:])
    side = max(64, min_input_size(model))
    return (3, side, side)


def test_gray_input_from_rgb_weights_and_vit_at_another_resolution(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rgb = create_model("resnet18").eval()
    torch.save(rgb.state_dict(), tmp_path / "r18.pth")
    gray = create_model("resnet18", in_chans=1, weights=tmp_path / "r18.pth").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():  # a gray image through the summed filters = the RGB model on (x, x, x)
        assert torch.allclose(gray(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4)
    six = adapt_channels(
        rgb.conv1.weight.detach(), 6
    )  # repeated, scaled by 3/6: a constant image responds the same
    assert six.shape[1] == 6 and torch.allclose(six.sum(1), rgb.conv1.weight.detach().sum(1), atol=1e-6)
    vit = create_model("vit_tiny_patch16_224", num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    notes = load_pretrained(
        create_model("vit_tiny_patch16_224", img_size=384, num_classes=10),
        tmp_path / "vit.pth",
        verbose=False,
    )
    assert any("pos_embed: 197 positions resampled to 577" in n for n in notes)


def test_mismatches_are_errors_that_list_the_keys(tmp_path: Path) -> None:
    torch.save(create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(
        WeightsMismatchError,
        match=r"does not fit ResNet \(resnet50\): missing: layer1\.0\.conv3\.weight.*shapes differ: layer1\.0\.conv1\.weight",
    ):
        create_model("resnet50", weights=tmp_path / "r18.pth")
    torch.save({"epoch": 3, "notes": "no tensors"}, tmp_path / "junk.pt")
    with pytest.raises(WeightsMismatchError, match="holds no state dict"):
        create_model("resnet18", weights=tmp_path / "junk.pt")


def test_weights_that_run_code_are_refused_unrun(tmp_path: Path, code_pickle) -> None:  # type: ignore[no-untyped-def]
    from imgcls.fileio import UnsafeWeightsError

    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": {"conv1.weight": code_pickle(marker)}}, f)
    with pytest.raises(UnsafeWeightsError):
        create_model("resnet18", weights=tmp_path / "evil.pth")
    assert not marker.exists()


def test_freeze_backbone_and_stages() -> None:
    model = create_model("resnet18", num_classes=5)
    frozen = freeze(model, "backbone")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"] and len(frozen) == len(list(model.parameters())) - 2
    model.train()
    keep_frozen_norms_eval(model)
    assert not model.bn1.training and model.fc.training
    freeze(model, "stages:3")  # the model's first 3 layer groups: the stem (conv1, bn1), layer1.0, layer1.1
    assert not model.conv1.weight.requires_grad and not model.bn1.weight.requires_grad
    assert not model.layer1[0].conv1.weight.requires_grad and not model.layer1[1].conv2.weight.requires_grad
    assert model.layer2[0].conv1.weight.requires_grad and model.fc.weight.requires_grad
    with pytest.raises(ConfigError, match="has 9 layer groups"):
        freeze(model, "stages:10")
    assert freeze(model, "none") == [] and all(p.requires_grad for p in model.parameters())


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcls import TrainConfig, train
    from imgcls.config import apply_overrides

    out = tmp_path_factory.mktemp("base")
    cfg = apply_overrides(TrainConfig, {}, {"data": str(FIXTURES / "cifar_jpg"), "model": "resnet20", "epochs": 1,
                                            "out": str(out), "progress": False, "precision": "fp32"})  # fmt: skip
    return train(cfg).run


def _cli(*args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "imgcls", *args], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])  # fmt: skip


def test_finetune_freezes_the_backbone_first(base_run: Path, tmp_path: Path) -> None:
    from imgcls.fileio import load_safetensors

    r = _cli("finetune", "--data", str(FIXTURES / "labels" / "multilabel.csv"), "--model", "resnet20")
    assert r.returncode == 2 and "needs --pretrained [TAG] or --init" in r.stderr
    r = _cli("finetune", "--data", str(FIXTURES / "labels" / "multilabel.csv"), "--model", "resnet20", "--init", str(base_run),
             "--epochs", "1", "--out", str(tmp_path), "--precision", "fp32", "--save-every", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "fc: 10 outputs in the weights, 4 here: re-initialised" in r.stdout
    base, _ = load_safetensors(base_run / "model.safetensors")
    tuned, meta = load_safetensors(tmp_path / "resnet20" / "model.safetensors")
    assert meta["task"] == "multilabel"
    for key in ("conv1.weight", "layer2.1.conv2.weight", "bn1.running_mean", "layer3.2.bn2.running_var"):
        assert torch.equal(base[key], tuned[key]), key  # frozen for the first epoch, norms in eval mode
    assert not torch.equal(base["fc.bias"][:4], tuned["fc.bias"])
    config = (tmp_path / "resnet20" / "config.yaml").read_text()
    assert "freeze: backbone" in config and "layer_decay: 0.85" in config and "freeze_epochs: 1" in config


def test_linear_probe_and_features(base_run: Path, tmp_path: Path) -> None:
    import numpy as np

    from imgcls import TrainConfig, train
    from imgcls.config import apply_overrides
    from imgcls.fileio import load_safetensors

    cfg = apply_overrides(TrainConfig, {}, {"data": str(FIXTURES / "cifar_jpg"), "model": "resnet20", "epochs": 5, "init": str(base_run),
                                            "linear_probe": True, "out": str(tmp_path), "progress": False, "lr": 0.05})  # fmt: skip
    result = train(cfg)
    assert result.status == "finished" and 0 <= result.test["acc"] <= 1 and result.step == 5
    base, _ = load_safetensors(base_run / "model.safetensors")
    probed, _ = load_safetensors(result.run / "model.safetensors")
    assert all(torch.equal(base[k], probed[k]) for k in base if not k.startswith("fc."))
    assert not torch.equal(base["fc.weight"], probed["fc.weight"])
    clf = imgcls_load(result.run)  # the probe's run predicts like any run
    assert clf.predict(FIXTURES / "images" / "cifar" / "cat_0000.jpg").label in clf.classes
    r = _cli(
        "features",
        str(base_run),
        "--data",
        str(FIXTURES / "cifar_jpg"),
        "--out",
        str(tmp_path / "f.npz"),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "f.npz") as f:
        assert (
            f["train_features"].shape == (50, 64)
            and f["test_features"].shape == (20, 64)
            and f["test_targets"].shape == (20,)
        )


def imgcls_load(run: Path):  # type: ignore[no-untyped-def]
    import imgcls

    return imgcls.load(run)


def test_finetune_thaws_after_the_frozen_epochs_with_layer_decayed_rates(
    base_run: Path, tmp_path: Path
) -> None:
    """Epoch 1 trains the head alone; from epoch 2 everything trains, each block at its decayed rate."""
    from imgcls.config import apply_overrides
    from imgcls.engine.config import TrainConfig
    from imgcls.engine.optim import layer_ids
    from imgcls.engine.trainer import Trainer
    from imgcls.recipes import load_preset

    cfg = apply_overrides(TrainConfig, load_preset("finetune"), {
        "data": str(FIXTURES / "cifar_jpg"), "model": "resnet20", "init": str(base_run), "epochs": 2, "out": str(tmp_path),
        "progress": False, "precision": "fp32", "channels_last": "off", "eval_test": False, "tensorboard": False})  # fmt: skip
    trainer = Trainer(cfg)
    at_epoch_start: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(module: torch.nn.Module, args: tuple) -> None:
        if module.training and trainer.state.epoch not in at_epoch_start:
            at_epoch_start[trainer.state.epoch] = {k: v.clone() for k, v in module.state_dict().items()}

    trainer.model.register_forward_pre_hook(snapshot)
    trainer.fit()
    end = trainer.model.state_dict()
    start, thawed = at_epoch_start[0], at_epoch_start[1]
    backbone = [k for k in end if not k.startswith("fc.") and k.endswith("weight")]
    assert all(torch.equal(start[k], thawed[k]) for k in backbone)  # frozen through epoch 1
    assert not torch.equal(start["fc.weight"], thawed["fc.weight"])
    assert all(not torch.equal(thawed[k], end[k]) for k in backbone)  # every layer moved in epoch 2
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    scale = {names[id(p)]: g["lr_scale"] for g in trainer.optimizer.param_groups for p in g["params"]}
    ids, last = layer_ids(trainer.model)
    assert all(scale[n] == pytest.approx(0.85 ** (last - ids[n])) for n in scale)
    assert scale["conv1.weight"] < scale["layer2.0.conv1.weight"] < scale["fc.weight"] == 1.0


def test_freeze_stages_through_a_run(base_run: Path, tmp_path: Path) -> None:
    from imgcls import TrainConfig, train
    from imgcls.config import apply_overrides

    spec = "stages:3"
    expected = set(freeze(create_model("resnet20"), spec))
    cfg = apply_overrides(TrainConfig, {}, {"data": str(FIXTURES / "cifar_jpg"), "model": "resnet20", "init": str(base_run),
                                            "freeze": spec, "epochs": 1, "out": str(tmp_path), "progress": False,
                                            "precision": "fp32", "eval_test": False})  # fmt: skip
    from imgcls.fileio import load_safetensors

    run = train(cfg).run
    base, _ = load_safetensors(base_run / "model.safetensors")
    tuned, _ = load_safetensors(run / "model.safetensors")
    params = {n for n, _ in create_model("resnet20").named_parameters()}
    unchanged = {k for k in params if torch.equal(base[k], tuned[k])}
    assert expected and unchanged == expected
