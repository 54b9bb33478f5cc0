"""Natural sort order: 'class2' before 'class10', used for model names and class names alike."""

from __future__ import annotations

import re
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that compares digit runs as numbers (``'img10'`` after ``'img9'``)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]
