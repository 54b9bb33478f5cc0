"""The errors imgcls raises on purpose: one line each, naming what was wrong and what to do.

The CLI prints the message of any ``ImgclsError`` as a single line (no traceback); the Python API
raises them like any other exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ImgclsError(Exception):
    """Base class of the errors that are the user's to fix."""


class UnknownModelError(ImgclsError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(ImgclsError, ValueError):
    """A wrong value or an unknown key in a configuration or override."""


class InputShapeError(ImgclsError, ValueError):
    """An input tensor a model cannot take (wrong rank, channel count or too small)."""


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices that look most like ``word`` (for 'did you mean' hints)."""
    choices = list(choices)
    hits = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not hits:  # prefix matches help with families: 'resnet' -> resnet18, resnet34, ...
        hits = [c for c in sorted(choices) if c.startswith(word)][:n]
    return hits


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    hits = closest(word, choices)
    return f"; did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
