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
    # torchvision's documented counts for the variants without a manifest here
    ("vgg13", 133_047_848, 0.0),
    ("vgg19_bn", 143_678_248, 0.0),
    ("densenet161", 28_681_000, 0.0),
    ("densenet201", 20_013_928, 0.0),
    ("resnext101_32x8d", 88_791_336, 0.0),
    ("wide_resnet101_2", 126_886_696, 0.0),
]


@pytest.mark.parametrize(("name", "params", "rel"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_parameter_count(name: str, params: float, rel: float) -> None:
    ours = count_params(create_model(name, device="meta"))
    assert abs(ours - params) <= rel * params, f"{name}: {ours:,} vs published {params:,.0f}"
