"""Learned position embeddings follow the input's grid (ViT and CCT share one resampler)."""

from __future__ import annotations

import torch

from imgcls import create_model
from imgcls.models.layers import resample_pos_embed


def test_resampling_keeps_prefix_tokens_and_is_identity_on_the_same_grid() -> None:
    pos = torch.randn(1, 1 + 4 * 4, 8)
    assert resample_pos_embed(pos, (4, 4)) is pos
    out = resample_pos_embed(pos, (2, 6))
    assert out.shape == (1, 1 + 12, 8) and torch.equal(out[:, 0], pos[:, 0])
    grid = resample_pos_embed(torch.randn(1, 2 * 3, 8), (4, 6), prefix_tokens=0, old_grid=(2, 3))
    assert grid.shape == (1, 24, 8)


def test_non_square_inputs_run_through_vit_and_cct() -> None:
    for name, size in (("vit_tiny_patch16_224", (96, 160)), ("cct_7_3x1", (32, 64))):
        model = create_model(name, num_classes=3).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, *size)).shape == (2, 3)
