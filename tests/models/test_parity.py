"""Every reference manifest (torchvision / timm) passes: keys and shapes in the reference's order,
strict load of the filled state dict, logits within tolerance, parameter count, FLOPs within 1 %."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgcls import create_model
from imgcls.analysis.complexity import count_flops
from imgcls.analysis.parity import (
    filled_state_dict,
    load_manifest,
    reference_input,
    state_dict_report,
)
from imgcls.models.base import skip_init

MANIFESTS = sorted((Path(__file__).parents[1] / "fixtures" / "reference").glob("*.json"))


def test_manifests_are_present() -> None:
    assert len(MANIFESTS) >= 21


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_reference_parity(path: Path) -> None:
    manifest = load_manifest(path)
    with skip_init():  # every weight is overwritten by the fill rule below
        model = create_model(manifest["name"], num_classes=manifest["num_classes"])

    report = state_dict_report(model, manifest)
    assert not report.missing, f"keys missing from ours: {report.missing[:5]}"
    assert not report.unexpected, f"keys the reference lacks: {report.unexpected[:5]}"
    assert not report.shape_mismatch, report.shape_mismatch[:5]
    assert report.order_matches, "state-dict keys are in another order than the reference's"
    assert report.params[0] == report.params[1]

    meta = create_model(manifest["name"], num_classes=manifest["num_classes"], device="meta")
    flops = count_flops(meta, tuple(manifest["input_size"]))
    assert abs(flops - manifest["forward_flops"]) <= 0.01 * manifest["forward_flops"], (
        flops,
        manifest["forward_flops"],
    )

    model.load_state_dict(filled_state_dict(model.state_dict()), strict=True)
    if manifest["logits_tolerance"] is None:
        return  # the reference itself is numerically unstable: keys, shapes and params only
    model.eval()
    with torch.no_grad():
        logits = model(reference_input(manifest["input_size"]))
    ref = torch.tensor(manifest["logits"])
    assert logits.shape == (1, manifest["num_classes"])
    diff = (logits[0] - ref).abs().max().item()
    assert diff <= manifest["logits_tolerance"] * manifest["logits_std"], diff


def test_parity_check_catches_a_wrong_model() -> None:
    """The comparison is sharp: one changed weight moves the logits past the tolerance."""
    manifest = load_manifest(next(p for p in MANIFESTS if p.stem == "resnet18"))
    model = create_model("resnet18")
    state = filled_state_dict(model.state_dict())
    state["layer4.1.conv2.weight"][0] *= -1
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(reference_input(manifest["input_size"]))
    diff = (logits[0] - torch.tensor(manifest["logits"])).abs().max().item()
    assert diff > manifest["logits_tolerance"] * manifest["logits_std"]
