"""Architectures without a reference manifest match their published parameter counts."""

from __future__ import annotations

import pytest

from imgcls import create_model
from imgcls.analysis.complexity import count_params

# (name, published params, relative tolerance): the papers round to 2-3 significant digits
PUBLISHED = [
    ("lenet5", 61_706, 0.0),  # shared/reference/README.md, exact
    ("resnet20", 0.27e6, 0.02),  # He et al. 2016, Table 6
    ("resnet32", 0.46e6, 0.02),
    ("resnet44", 0.66e6, 0.02),
    ("resnet56", 0.85e6, 0.02),
    ("resnet110", 1.7e6, 0.03),
    ("preact_resnet164", 1.7e6, 0.03),  # He et al. 2016b
    ("wrn28_10", 36.5e6, 0.01),  # Zagoruyko & Komodakis 2016
    ("zfnet", 62e6, 0.02),  # "about 62M"
    (
        "airbench94",
        1.97e6,
        0.005,
    ),  # Jordan 2024: "1.97M parameters" (the whitening filters are not among them)
    # torchvision's documented counts for the variants without a manifest here
    ("vgg13", 133_047_848, 0.0),
    ("vgg19_bn", 143_678_248, 0.0),
    ("densenet161", 28_681_000, 0.0),
    ("densenet201", 20_013_928, 0.0),
    ("resnext101_32x8d", 88_791_336, 0.0),
    ("wide_resnet101_2", 126_886_696, 0.0),
    ("efficientnet_b5", 30_389_784, 0.0),
    ("efficientnet_b6", 43_040_704, 0.0),
    ("efficientnet_v2_m", 54_139_356, 0.0),
    ("efficientnet_v2_l", 118_515_272, 0.0),
    ("regnet_y_800mf", 6_432_512, 0.0),
    ("regnet_y_1_6gf", 11_202_430, 0.0),
    ("regnet_y_8gf", 39_381_472, 0.0),
    ("regnet_y_16gf", 83_590_140, 0.0),
    ("regnet_y_32gf", 145_046_770, 0.0),
    ("convnext_small", 50_223_688, 0.0),
    ("convnext_base", 88_591_464, 0.0),
    ("convnext_large", 197_767_336, 0.0),
    ("swin_b", 87_768_224, 0.0),
    # timm's counts
    ("vit_large_patch16_224", 304_326_632, 0.0),
    ("vit_base_patch16_384", 86_859_496, 0.0),
    # the papers
    ("cct_7_3x1", 3.76e6, 0.002),  # Hassani et al. 2021, Table 1
    ("cct_14_7x2", 22.36e6, 0.001),  # (the paper truncates: ours is 22,367,273)
    ("coatnet_0", 25e6, 0.05),  # Dai et al. 2021, Table 3: "25M"
]


@pytest.mark.parametrize(("name", "params", "rel"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_parameter_count(name: str, params: float, rel: float) -> None:
    ours = count_params(create_model(name, device="meta"))
    assert abs(ours - params) <= rel * params, f"{name}: {ours:,} vs published {params:,.0f}"
