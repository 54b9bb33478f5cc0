"""Vision Transformer (Dosovitskiy et al. 2021) and DeiT (Touvron et al. 2021, the same network
trained data-efficiently), in timm's layout, plus an importer for torchvision's ViT checkpoints.

An image is cut into 16x16 patches, each linearly embedded; a class token and learned position
embeddings are added; pre-norm transformer blocks follow; the class token's final state is
classified. Inputs of another size get position embeddings resampled (bicubic) to their grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .base import Classifier, ModelConfig
from .layers import Attention, DropPath, Mlp, init_trunc_normal, linear_head, resample_pos_embed
from .registry import INCEPTION_MEAN, INCEPTION_STD, register_model


@dataclass(frozen=True)
class ViTConfig(ModelConfig):
    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    act: str = "gelu"
    drop_rate: float = 0.0  # dropout on the embeddings, in the MLPs and before the head
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"{model}: img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"
            )


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, dim, H / patch, W / patch)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, c: ViTConfig, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.attn = Attention(c.embed_dim, c.num_heads, c.qkv_bias, c.attn_drop_rate, c.drop_rate)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.mlp = Mlp(c.embed_dim, int(c.embed_dim * c.mlp_ratio), c.act, c.drop_rate)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def _vit(dim: int, depth: int, heads: int, img: int = 224) -> ViTConfig:
    return ViTConfig(img_size=img, embed_dim=dim, depth=depth, num_heads=heads)


VIT = {
    "vit_tiny_patch16_224": _vit(192, 12, 3),
    "vit_small_patch16_224": _vit(384, 12, 6),
    "vit_base_patch16_224": _vit(768, 12, 12),
    "vit_large_patch16_224": _vit(1024, 24, 16),
}
VIT_384 = {
    name.replace("_224", "_384"): _vit(c.embed_dim, c.depth, c.num_heads, 384) for name, c in VIT.items()
}
DEIT = {
    "deit_tiny_patch16_224": _vit(192, 12, 3),
    "deit_small_patch16_224": _vit(384, 12, 6),
    "deit_base_patch16_224": _vit(768, 12, 12),
}
VIT_PAPER = {"paper": "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
             "authors": "Dosovitskiy et al.", "year": 2021}  # fmt: skip


@register_model(VIT, family="vit", mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic", crop_pct=0.9,
                **VIT_PAPER)  # fmt: skip
@register_model(VIT_384, family="vit", input_size=(3, 384, 384), mean=INCEPTION_MEAN, std=INCEPTION_STD,
                interpolation="bicubic", crop_pct=1.0, **VIT_PAPER)  # fmt: skip
@register_model(DEIT, family="vit", interpolation="bicubic", year=2021, authors="Touvron et al.",
                paper="Training data-efficient image transformers & distillation through attention")  # fmt: skip
class VisionTransformer(Classifier):
    stem_conv = "patch_embed.proj"
    head_layers = ("head",)

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__(cfg)
        self.patch_size = cfg.patch_size
        self.grid = (cfg.img_size // cfg.patch_size,) * 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], cfg.embed_dim))
        self.patch_embed = PatchEmbed(cfg.in_chans, cfg.embed_dim, cfg.patch_size)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.Sequential(*(Block(cfg, r) for r in rates))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = cfg.embed_dim
        self.head = linear_head(cfg.embed_dim, cfg.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_trunc_normal(self)

    def layer_groups(self) -> list[list[nn.Module | nn.Parameter]]:
        return [[self.patch_embed, self.cls_token, self.pos_embed], *[[block] for block in self.blocks]]

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, patches, dim)
        pos = self.pos_embed if grid == self.grid else resample_pos_embed(self.pos_embed, grid)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + pos
        return self.norm(self.blocks(self.pos_drop(x)))  # (B, 1 + patches, dim)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x[:, 0])  # the class token
        return x if pre_logits else self.head(x)


# ---------------------------------------------------------------------------- torchvision importer
_TORCHVISION_VIT_KEYS = [
    (r"^class_token$", "cls_token"),
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (
        r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)$",
        r"blocks.\1.attn.qkv.\2",
    ),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
    (r"^encoder\.ln\.", "norm."),
    (r"^heads\.head\.", "head."),
]


def convert_torchvision_vit(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision ``vit_*`` state dict onto this layout (same function: q, k, v are stacked
    in the same order in ``in_proj_weight`` as in timm's ``qkv``). Unknown keys are an error."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for pattern, repl in _TORCHVISION_VIT_KEYS:
            if re.search(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            raise ConfigError(f"torchvision ViT key {key!r} has no counterpart in imgcls' ViT")
    return out
