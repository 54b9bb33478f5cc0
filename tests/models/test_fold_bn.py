"""Batch norms folded into their convs for inference: the same logits, only the pairs the data flow
allows, and never on a model that trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import imgcls
from imgcls.models.fold_bn import conv_norm_pairs, fold_batch_norms


def _filled(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = imgcls.create_model(name, num_classes=10)
    for m in model.modules():  # running statistics away from (0, 1), so a fold that ignores them shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    # airbench: only each group's second norm; a max-pool sits between the first conv and its norm
    [("resnet18", 64, 20), ("mobilenet_v2", 64, 52), ("resnet20", 32, 19), ("airbench94", 32, 3)],
)
def test_folded_model_gives_the_same_logits(name: str, size: int, expected: int) -> None:
    model = _filled(name)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(3, model.in_chans, size, size)
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norms(model) == expected
        after = model(x)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms - expected
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the bench's default path
        assert (
            model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            .isfinite()
            .all()
        )


class _Shared(nn.Module):
    """conv1's output feeds its norm and a residual sum; conv2 feeds only its norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return self.bn2(self.conv2(self.bn1(y) + y))


def test_only_a_conv_whose_output_goes_nowhere_else_is_folded() -> None:
    model = _Shared().eval()
    assert conv_norm_pairs(model) == [("conv2", "bn2")]
    x = torch.randn(2, 3, 8, 8)
    model.bn2.running_var.fill_(3.0)
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norms(model) == 1
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert isinstance(model.bn1, nn.BatchNorm2d) and isinstance(model.bn2, nn.Identity)


def test_training_models_are_refused() -> None:
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norms(imgcls.create_model("resnet20", num_classes=10))
