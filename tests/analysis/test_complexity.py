"""FLOP counting: what the counter sees is the model's own layers, nothing else."""

from __future__ import annotations

from imgcls import create_model
from imgcls.analysis.complexity import count_flops, count_params


def test_flops_below_the_reference_size_exclude_the_input_check_probes() -> None:
    """An input smaller than the reference size makes forward() probe the minimum size with
    forward passes of its own; they must not be counted (they once were: 14.3 GFLOPs at 224)."""
    fresh = create_model("inception_v3", device="meta")
    at_224 = count_flops(fresh, (1, 3, 224, 224))
    at_299 = count_flops(create_model("inception_v3", device="meta"), (1, 3, 299, 299))
    assert at_299 == 11_426_432_192
    assert at_224 == count_flops(
        create_model("inception_v3", device="meta"), (1, 3, 224, 224)
    )  # cache-independent
    assert 0.4 * at_299 < at_224 < 0.6 * at_299  # ~ (224 / 299)^2


def test_flops_scale_with_batch_and_params_ignore_buffers() -> None:
    model = create_model("resnet18", device="meta")
    assert count_flops(model, (2, 3, 224, 224)) == 2 * count_flops(model, (1, 3, 224, 224))
    assert count_params(model) == 11_689_512  # running stats are buffers, not parameters
