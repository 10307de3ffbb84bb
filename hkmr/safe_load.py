"""Reading files that others give you as data, never as code.

A torch file is a pickle, and a pickle can call anything it names. :func:`safe_torch_load`
reads one with ``torch.load(weights_only=True)``: tensors, plain Python values and, through
:data:`SAFE_GLOBALS`, numpy arrays (the only foreign type hkmr's files hold: the global numpy
RNG state of a training checkpoint). A file that asks for any other callable (``os.system``,
a class of someone's package) is refused with :class:`UnsafeFileError` naming the file and
the callable, before any of it runs; a file that cannot be read at all (truncated, not a torch
file) raises ValueError naming the file. :func:`read_npz` does the same for numpy archives
(no pickle: object arrays are refused).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class UnsafeFileError(ValueError):
    """A file asks to run code that its format never needs; nothing of it was run."""


#: what ``np.random.get_state()`` pickles to, under numpy 2 and numpy 1 names (older files)
SAFE_GLOBALS = [np.ndarray, np.dtype, np._core.multiarray._reconstruct,
                (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                *(t for t in vars(np.dtypes).values()
                  if isinstance(t, type) and issubclass(t, np.dtype))]


def safe_torch_load(path: Path, device: "torch.device | str" = "cpu", what: str = "checkpoint"):
    """``torch.load`` of ``path`` as data only (tensors, plain values, numpy arrays).

    Raises :class:`UnsafeFileError` naming the file and the refused callable when the pickle
    asks for anything else, ValueError naming the file when it cannot be read at all.
    """
    import torch  # here: read_npz's users (the keypoint pool) do not need torch

    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", str(err))
        if found:
            name = found.group(1) or found.group(2)
            raise UnsafeFileError(
                f"{path}: refused to load this {what}: its pickle asks for {name}, which an "
                f"hkmr {what} never holds (a file from an untrusted source could run code "
                f"this way); nothing of it was run") from None
        reason = str(err).split("WeightsUnpickler error:")[-1].split("Check the doc")[0].strip()
        raise ValueError(f"{path}: cannot read {what} ({reason})") from None
    except Exception as err:  # truncated zip, not a torch file at all
        raise ValueError(f"{path}: cannot read {what} ({type(err).__name__}: {err})") from None


def read_npz(path: str | Path, what: str = "archive") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read without pickle; ValueError naming the
    file (and saying what it is) when it is truncated or not an archive."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read this {what} ({type(err).__name__}: {err}); "
                         "if it is a cached file, delete it and it is made again") from None
