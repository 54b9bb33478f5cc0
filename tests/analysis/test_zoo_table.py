"""The cached parameter / FLOP counts of ``imgcls models`` equal a live count of every model."""

from __future__ import annotations

import pytest

from imgcls import list_models, model_info
from imgcls.analysis import zoo_table


def test_every_model_is_in_the_cache() -> None:
    cache = zoo_table._cached()
    missing = [
        n for n in list_models() if n not in cache or cache[n]["key"] != zoo_table.config_key(model_info(n))
    ]
    assert not missing, f"stale or missing rows {missing}: run `python -m imgcls.analysis.zoo_table`"


@pytest.mark.parametrize("name", list_models())
def test_cached_counts_are_live_counts(name: str) -> None:
    cached = zoo_table._cached()[name]
    live = zoo_table.measure(name)
    assert {k: cached[k] for k in live} == live
