"""The registry: names, lookups, overrides, and the errors a user sees."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from imgcls import create_model, list_models, model_info
from imgcls.errors import ConfigError, UnknownModelError
from imgcls.models import Classifier, ModelConfig, register_model
from imgcls.models import registry as registry_module
from imgcls.models.layers import DropPath, SqueezeExcite

CLASSIC = [
    "lenet5",
    "alexnet",
    "zfnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "googlenet",
    "inception_v3",
    "inception_v4",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "resnetv2_50",
    "seresnet50",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "preact_resnet164",
    "wrn28_10",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "xception",
]


def test_every_classic_architecture_is_registered() -> None:
    assert not set(CLASSIC) - set(list_models())


def test_list_models_pattern_and_natural_order() -> None:
    names = list_models("resnet*")
    assert "resnet50" in names and "vgg16" not in names
    assert names.index("resnet18") < names.index("resnet50") < names.index("resnet101")
    assert list_models("nothing-like-this*") == []


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError) as e:
        create_model("resnet5O")
    assert "'resnet50'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UnknownModelError, match="did you mean 'densenet121'"):
        model_info("densenet12")


def test_duplicate_registration_is_refused() -> None:
    @dataclass(frozen=True)
    class Cfg(ModelConfig):
        pass

    class Tiny(Classifier):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        register_model({"resnet50": Cfg()}, family="x", paper="p", authors="a", year=2000)(Tiny)
    register_model({"tiny_test_model": Cfg()}, family="x", paper="p", authors="a", year=2000)(Tiny)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_model({"tiny_test_model": Cfg()}, family="x", paper="p", authors="a", year=2000)(Tiny)
    finally:
        del registry_module._REGISTRY["tiny_test_model"]


@pytest.mark.parametrize("bad", ["10", 2.5, True, -1, [10]])
def test_wrong_num_classes_is_one_clear_line(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        create_model("resnet18", num_classes=bad)  # type: ignore[arg-type]
    assert "num_classes" in str(e.value) and "\n" not in str(e.value)


def test_unknown_override_names_the_nearest_option() -> None:
    with pytest.raises(ConfigError, match="did you mean 'drop_rate'"):
        create_model("resnet18", drop_rat=0.1)


def test_overrides_are_typed_and_accept_command_line_strings() -> None:
    m = create_model("resnet18", act="gelu", drop_rate="0.25", zero_init_last="true")
    assert isinstance(m.relu, nn.GELU) and m.cfg.drop_rate == 0.25 and m.cfg.zero_init_last is True
    assert float(m.layer1[0].bn2.weight.detach().abs().sum()) == 0.0  # zero-init of the last norm happened
    assert create_model("vgg11", layers="64,0,128,0").cfg.layers == (64, 0, 128, 0)
    with pytest.raises(ConfigError, match="resnet18: option drop_rate: expected a number"):
        create_model("resnet18", drop_rate="lots")
    with pytest.raises(ConfigError, match=r"unknown activation 'gleu'.*did you mean 'gelu'"):
        create_model("resnet18", act="gleu")
    with pytest.raises(ConfigError, match=r"drop_rate must be in \[0, 1\)"):
        create_model("resnet18", drop_rate=1.5)


def test_drop_path_grows_linearly_over_depth() -> None:
    m = create_model("resnet50", drop_path_rate=0.2)
    rates = [mod.p for mod in m.modules() if isinstance(mod, DropPath)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    m.eval()  # no dropping at evaluation
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(m(x), m(x))


def test_senet_is_resnet_plus_se() -> None:
    se, plain = create_model("seresnet50", device="meta"), create_model("resnet50", device="meta")
    assert isinstance(se.layer1[0].se, SqueezeExcite) and not hasattr(plain.layer1[0], "se")
    se_params = sum(p.numel() for n, p in se.named_parameters() if ".se." in n)
    assert sum(p.numel() for p in se.parameters()) == sum(p.numel() for p in plain.parameters()) + se_params


def test_googlenet_paper_5x5_branch_is_an_option() -> None:
    ref = create_model("googlenet", device="meta")
    paper = create_model("googlenet", branch3_kernel=5, device="meta")
    assert ref.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)


def test_aux_heads_are_optional_and_train_only() -> None:
    m = create_model("googlenet", aux_logits=False)
    assert not hasattr(m, "aux1") and m.info.classifier == ("fc", "aux1.fc2", "aux2.fc2")
    m.reset_classifier(3)  # resets just the heads this instance has
    x = torch.randn(2, 3, 64, 64)
    out, aux = m.forward_with_aux(x)
    assert out.shape == (2, 3) and aux == []


def test_inits_follow_the_papers() -> None:
    resnet = create_model("resnet50")
    w = resnet.layer3[0].conv2.weight  # He init, fan_out mode: std = sqrt(2 / (out * k * k))
    assert float(w.detach().std()) == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)
    alex = create_model("alexnet")  # N(0, 0.01), biases 1 in conv 2, 4, 5 and the hidden fcs
    with torch.no_grad():
        assert float(alex.features[0].weight.std()) == pytest.approx(0.01, rel=0.05)
        assert float(alex.features[3].bias.mean()) == 1.0 and float(alex.features[0].bias.abs().sum()) == 0.0


def test_model_metadata() -> None:
    info = model_info("inception_v3")
    assert info.input_size == (3, 299, 299) and info.first_conv == "Conv2d_1a_3x3.conv"
    assert model_info("lenet5").input_size == (1, 32, 32) and model_info("lenet5").num_classes == 10
    assert (
        model_info("resnet20").num_classes == 10
        and model_info("resnet20").mean != model_info("resnet50").mean
    )
    m = create_model("resnet18", num_classes=7, in_chans=1)
    assert m.info.num_classes == 7 and m.info.input_size == (1, 224, 224)
    d = model_info("vit" if "vit" in list_models() else "vgg16").as_dict()
    assert {
        "name",
        "paper",
        "year",
        "input_size",
        "mean",
        "std",
        "first_conv",
        "classifier",
        "config",
    } <= set(d)
