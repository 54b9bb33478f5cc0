"""EfficientNet's compound scaling as code: efficientnet_scaled(phi) follows d = 1.2^phi,
w = 1.1^phi, r = 1.15^phi applied to B0 (docs/efficientnet_scaling.md compares the published rows)."""

from __future__ import annotations

import math

import pytest
from torch import nn

from imgcls.analysis.complexity import count_flops
from imgcls.models.efficientnet import B0, PUBLISHED, compound_scaling, efficientnet_scaled
from imgcls.models.layers import make_divisible


@pytest.mark.parametrize("phi", range(8))
def test_rule_gives_widths_depths_and_resolution(phi: int) -> None:
    width, depth, resolution = compound_scaling(phi)
    assert width == pytest.approx(1.1**phi) and depth == pytest.approx(1.2**phi)
    assert abs(resolution - 224 * 1.15**phi) <= 4 and resolution % 8 == 0

    model = efficientnet_scaled(phi, device="meta")
    assert model.info.input_size == (3, resolution, resolution)
    stages = list(model.features)[1:-1]
    assert [len(s) for s in stages] == [math.ceil(n * depth) for *_, n in B0]
    outs = [s[-1].block[-1][0].out_channels for s in stages]
    assert outs == [make_divisible(c * width, 8) for *_, c, _ in B0]
    assert model.features[0][0].out_channels == make_divisible(32 * width, 8)
    assert isinstance(model.classifier[1], nn.Linear)


def test_flops_grow_about_twofold_per_phi() -> None:
    """alpha * beta^2 * gamma^2 = 1.92: each step of phi should roughly double the FLOPs."""
    flops = [
        count_flops(
            efficientnet_scaled(phi, device="meta"),
            (1, 3, compound_scaling(phi)[2], compound_scaling(phi)[2]),
        )
        for phi in (0, 1, 2)
    ]
    assert 1.6 < flops[1] / flops[0] < 2.4 and 1.6 < flops[2] / flops[1] < 2.4


def test_published_rows_are_registered_as_named_variants() -> None:
    from imgcls import model_info

    for b, (w, d, res, drop) in PUBLISHED.items():
        info = model_info(f"efficientnet_b{b}")
        assert (
            info.config.width_mult,
            info.config.depth_mult,
            info.input_size[1],
            info.config.drop_rate,
        ) == (w, d, res, drop)
