"""Generated from the registry: every model builds, trains one step, resets its head, takes one
channel, and rejects bad inputs with one clear line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgcls import create_model, list_models, model_info
from imgcls.errors import InputShapeError
from imgcls.models.base import min_input_size

ALL = list_models()


def small_size(model: nn.Module) -> int:
    return max(min_input_size(model, aux=True), 32)


@pytest.mark.parametrize("name", ALL)
def test_train_step_and_head_reset(name: str) -> None:
    # built with a channel count other than its default (1 for RGB models, 3 for LeNet-5's grey)
    in_chans = 1 if model_info(name).in_chans == 3 else 3
    model = create_model(name, num_classes=5, in_chans=in_chans)
    assert model.get_submodule(model_info(name).first_conv).weight.shape[1] == in_chans
    size = small_size(model)
    x = torch.randn(2, model.in_chans, size, size)

    model.train()
    out, aux = model.forward_with_aux(x)
    assert out.shape == (2, 5)
    assert all(a.shape == (2, 5) for a in aux)
    assert torch.isfinite(out).all()
    (out.square().mean() + sum(a.square().mean() for a in aux)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters that got no gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        assert feats.shape == (2, model.num_features)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7)
        assert model.num_classes == 7
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), feats)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_metadata_names_real_layers(name: str) -> None:
    info = model_info(name)
    model = create_model(name, device="meta")
    assert isinstance(model.get_submodule(info.first_conv), nn.Conv2d)
    for head in info.classifier:
        layer = model.get_submodule(head)
        assert isinstance(layer, (nn.Linear, nn.Conv2d))
        assert (
            layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        ) == info.num_classes
    assert info.paper and info.authors and 1989 <= info.year <= 2030
    assert len(info.mean) == len(info.std) == info.in_chans
    assert info.interpolation in ("bilinear", "bicubic") and 0 < info.crop_pct <= 1


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_give_one_clear_line(name: str) -> None:
    model = create_model(name, device="meta").eval()
    c = model.in_chans
    low = min_input_size(model)
    model(torch.empty(1, c, low, low, device="meta"))  # the reported minimum really works

    with pytest.raises(InputShapeError) as wrong_channels:
        model(torch.empty(1, c + 1, 64, 64, device="meta"))
    with pytest.raises(InputShapeError) as no_batch:
        model(torch.empty(c, 64, 64, device="meta"))
    errors = [wrong_channels.value, no_batch.value]
    if low > 1:
        with pytest.raises(InputShapeError) as too_small:
            model(torch.empty(1, c, low - 1, low - 1, device="meta"))
        errors.append(too_small.value)
        assert f"at least {low}x{low}" in str(too_small.value)
    for e in errors:
        assert "\n" not in str(e) and name in str(e)
    assert f"{c + 1} channels" in str(wrong_channels.value)
    assert "unsqueeze(0)" in str(no_batch.value)


def _params(item: nn.Module | nn.Parameter) -> list[nn.Parameter]:
    return [item] if isinstance(item, nn.Parameter) else list(item.parameters())


@pytest.mark.parametrize("name", ALL)
def test_layer_groups_are_the_model_in_forward_order(name: str) -> None:
    """What --freeze stages:N and --layer-decay count: no group empty, no parameter in two groups, the
    groups first run in the order declared, and nothing but classifiers, norms and pre-logits layers
    (and auxiliary heads) left for the head group."""
    model = create_model(name, device="meta")
    groups = model.layer_groups()
    owner: dict[int, int] = {}
    for i, group in enumerate(groups):
        params = [p for item in group for p in _params(item)]
        assert params, f"group {i} has no parameters"
        for p in params:
            assert id(p) not in owner, f"a parameter of group {i} is also in group {owner[id(p)]}"
            owner[id(p)] = i
    ids, head = model.group_ids()
    assert head == len(groups) >= 3 and set(ids.values()) == set(range(head + 1))
    modules = dict(model.named_modules())
    for param_name, g in ids.items():
        if g == head:
            module_name = param_name.rsplit(".", 1)[0]
            in_head = any(module_name == h or module_name.startswith(h + ".") for h in model.head_layers)
            aux = module_name.startswith(("aux", "AuxLogits"))
            assert in_head or aux or not isinstance(modules[module_name], nn.Conv2d), param_name
    order: list[int] = []
    hooks = [
        next(item for item in group if isinstance(item, nn.Module)).register_forward_pre_hook(
            lambda m, a, i=i: order.append(i)
        )
        for i, group in enumerate(groups)
        if any(isinstance(item, nn.Module) for item in group)
    ]
    info = model_info(name)
    model.eval()(torch.empty(1, *info.input_size, device="meta"))
    for h in hooks:
        h.remove()
    first_use = list(dict.fromkeys(order))
    assert first_use == sorted(first_use) and len(first_use) == len(hooks)
