"""The speed-run network of airbench (Keller Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single
GPU"), after David Page's ResNet-9 and hlb-CIFAR10: a frozen patch-whitening first layer computed from
the training images, then three blocks of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU
(widths 64 / 256 / 256), a global max-pool and a bias-free linear layer whose logits are scaled down
(by 1/9).

What makes it train fast is in its parts: the whitening layer starts the net with decorrelated inputs
(its weights are not trained; its bias trains for the first ``whiten_bias_epochs`` epochs only), the
batch norms have frozen scales (weight 1) and a high momentum, every conv starts as the identity on
its first input channels (``dirac_``), and the small logits behave like a temperature. The recipe
around it (label smoothing, Nesterov SGD with a large batch, biases on a faster rate, alternating
flips) is the preset's: ``imgcls train --preset cifar10-speedrun``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .base import Classifier, ModelConfig
from .registry import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD, register_model


@dataclass(frozen=True)
class AirbenchConfig(ModelConfig):
    num_classes: int = 10
    widths: tuple[int, ...] = (64, 256, 256)  # of the three blocks
    patch: int = 2  # side of the whitened patches
    whiten_eps: float = 5e-4  # added to each eigenvalue before dividing by its square root
    whiten_bias_epochs: int = 3  # the whitening bias trains in the first epochs only
    # airbench starts the whitening bias at 0. On MNIST's black background that leaves whole channels on
    # GELU's flat side for every pixel, and the next batch norm (eps 1e-12) divides by ~0: a short run's
    # running variance went non-finite. airbench_mnist keeps nn.Conv2d's small random bias, which it was
    # tuned with (4/4 seeds >= 99.5 %).
    zero_whiten_bias: bool = True
    bn_momentum: float = 0.4  # PyTorch's convention: the share of each batch's statistics
    logit_scale: float = 1 / 9  # airbench94_muon: 1 / the last width (1 / 256)
    head_std: float = (
        0.0  # 0: nn.Linear's initial head; else its weights scaled to this std (airbench94_muon: 1)
    )

    def validate(self, model: str) -> None:
        super().validate(model)
        if len(self.widths) != 3 or any(w < 1 for w in self.widths):
            raise ConfigError(f"{model}: widths must be three positive channel counts, got {self.widths}")
        if self.patch < 1:
            raise ConfigError(f"{model}: patch must be >= 1, got {self.patch}")


class PatchWhitening(nn.Conv2d):
    """A ``patch x patch`` conv (no padding) whose filters whiten the training images' patches: the
    eigenvectors of their second-moment matrix divided by the square roots of the eigenvalues (+ eps),
    each filter also negated (so a ReLU-like unit downstream keeps both signs). The weight is a buffer:
    it is computed (``fit``), saved and loaded, never trained; the bias starts at 0 (``zero_bias``) or
    at nn.Conv2d's small random values."""

    def __init__(self, in_chans: int, patch: int, eps: float, zero_bias: bool = True) -> None:
        d = in_chans * patch * patch
        super().__init__(in_chans, 2 * d, patch, padding=0, bias=True)
        if zero_bias:
            nn.init.zeros_(self.bias)
        weight = self.weight.detach().clone()
        del self.weight
        self.register_buffer("weight", weight)
        self.eps = eps

    @staticmethod
    def patches(images: torch.Tensor, patch: int) -> torch.Tensor:
        """Every ``patch x patch`` window of ``images`` (N, C, H, W), flattened in the conv weight's
        (C, kh, kw) order: (windows, C * patch * patch)."""
        c = images.shape[1]
        windows = images.unfold(2, patch, 1).unfold(3, patch, 1)  # N, C, H', W', kh, kw
        return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch * patch)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> torch.Tensor:
        """Set the filters from normalised training images (N, C, H, W); returns the eigenvalues."""
        k, d = self.kernel_size[0], self.weight.shape[1] * self.kernel_size[0] ** 2
        moment, count = torch.zeros(d, d, dtype=torch.float64), 0
        for chunk in images.split(256):  # (windows, d) of 5,000 CIFAR images in float64 would be 0.5 GB
            p = self.patches(chunk.detach().cpu().double(), k)
            moment += p.T @ p
            count += len(p)
        moment /= max(count, 1)
        eigenvalues, vectors = torch.linalg.eigh(moment)  # ascending; columns are the eigenvectors
        eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)
        filters = vectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None]
        shape = (-1, *self.weight.shape[1:])
        self.weight.copy_(torch.cat([filters, -filters]).view(shape).to(self.weight))
        return eigenvalues


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight.data[:cin])  # the first cin filters pass their input through
    return conv


def _bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=momentum, eps=1e-12)


class ConvGroup(nn.Module):
    def __init__(self, cin: int, cout: int, momentum: float) -> None:
        super().__init__()
        self.conv1, self.pool = _conv(cin, cout), nn.MaxPool2d(2)
        self.norm1, self.act1 = _bn(cout, momentum), nn.GELU()
        self.conv2, self.norm2, self.act2 = _conv(cout, cout), _bn(cout, momentum), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


@register_model(
    {"airbench94": AirbenchConfig()},
    family="airbench",
    paper="94% on CIFAR-10 in 3.29 seconds on a single GPU",
    authors="Jordan",
    year=2024,
    input_size=(3, 32, 32),
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    crop_pct=1.0,
)
@register_model(
    {"airbench_mnist": AirbenchConfig(in_chans=1, widths=(24, 48, 64), zero_whiten_bias=False)},
    family="airbench",
    paper="94% on CIFAR-10 in 3.29 seconds on a single GPU",
    authors="Jordan",
    year=2024,
    input_size=(1, 28, 28),
    mean=MNIST_MEAN,
    std=MNIST_STD,
    crop_pct=1.0,
)
class Airbench(Classifier):
    stem_conv = "whiten"
    head_layers = ("head",)

    def __init__(self, cfg: AirbenchConfig) -> None:
        super().__init__(cfg)
        self.whiten = PatchWhitening(cfg.in_chans, cfg.patch, cfg.whiten_eps, cfg.zero_whiten_bias)
        self.act = nn.GELU()
        w0 = self.whiten.out_channels
        w1, w2, w3 = cfg.widths
        self.blocks = nn.Sequential(
            ConvGroup(w0, w1, cfg.bn_momentum), ConvGroup(w1, w2, cfg.bn_momentum), ConvGroup(w2, w3, cfg.bn_momentum)
        )  # fmt: skip
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.num_features = w3
        self.head = nn.Linear(w3, cfg.num_classes, bias=False) if cfg.num_classes else nn.Identity()
        if cfg.head_std and cfg.num_classes:
            self.head.weight.data *= cfg.head_std / self.head.weight.data.std()
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1.0)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.whiten], *([b] for b in self.blocks)]

    def held_parameters(self, epoch: int) -> list[str]:
        """Parameters that do not train in this epoch: the batch norms' scales (always 1), and the
        whitening bias after its first epochs."""
        held = [f"{n}.weight" for n, m in self.named_modules() if isinstance(m, nn.BatchNorm2d)]
        if epoch >= self.cfg.whiten_bias_epochs:
            held.append("whiten.bias")
        return held

    fits_data = True

    @torch.no_grad()
    def fit_data(self, images: torch.Tensor) -> None:
        """The whitening filters from normalised training images (N, C, H, W)."""
        self.whiten.fit(images)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.whiten(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        if pre_logits or self.num_classes == 0:
            return x
        return self.head(x) * self.cfg.logit_scale
