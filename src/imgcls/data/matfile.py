"""MATLAB ``.mat`` files (SVHN's digits, Flowers-102's labels and splits), read by SciPy, with errors
that name the file and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .splits import DataError


def read_mat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB v4–v7.2 file; each must be there."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing")
    try:
        mat = loadmat(path, variable_names=names)
    except NotImplementedError:  # SciPy's answer to a v7.3 file, which is HDF5 inside
        raise DataError(
            f"{str(path)!r} is a MATLAB v7.3 (HDF5) file, which SciPy cannot read: save it again in the v7 "
            "format (MATLAB: save(name, '-v7'); Octave: save -v7), or use the dataset's original download"
        ) from None
    except (ValueError, TypeError, OSError, EOFError) as e:
        raise DataError(f"{str(path)!r} is not a readable .mat file ({e}); download it again") from None
    missing = [n for n in names if n not in mat]
    if missing:
        raise DataError(
            f"{str(path)!r} has no variable {', '.join(map(repr, missing))}: it is not the expected file"
        )
    return {n: np.asarray(mat[n]) for n in names}
