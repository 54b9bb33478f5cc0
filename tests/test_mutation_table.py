"""tests/mutation_check.py's table stays true to the source: each mutation's original text occurs exactly
once in its file (a refactor or a reformat that moves it would otherwise leave the mutation checking
nothing until someone runs the script), and each names tests that exist."""

from __future__ import annotations

import pytest
from mutation_check import MUTATIONS, ROOT, SRC


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_mutation_still_finds_its_text_once(name: str) -> None:
    file, original, mutated, tests = MUTATIONS[name]
    assert (SRC / file).read_text().count(original) == 1, f"{name}: its text is not in {file} exactly once"
    assert original != mutated
    for test in tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{name}: no {test}"
