"""Content digests, the code revision and provenance: the identities that caches, checkpoints and results
carry.

Every digest is the first ``length`` hex digits of a SHA-256. Callers keep the lengths they
have always used (16 for weights and dataset settings, 12 for cache folder keys, 10 for a
source file), so the names of existing caches and the ``encoder_hash`` recorded in results do
not change.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import __version__


def digest(*chunks: bytes, length: int = 16) -> str:
    """SHA-256 over ``chunks`` in order, as ``length`` hex digits."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:length]


def json_digest(value, length: int = 16) -> str:
    """Digest of a JSON-serialisable value with sorted keys (settings, configs)."""
    return digest(json.dumps(value, sort_keys=True).encode(), length=length)


def file_digest(*paths: str | Path, length: int = 16) -> str:
    """Digest of the bytes of one or more files (source code that determines a cache)."""
    return digest(*(Path(p).read_bytes() for p in paths), length=length)


def array_digest(arrays: Mapping[str, np.ndarray], length: int = 16) -> str:
    """Digest of named arrays: each name, then its C-ordered bytes, in sorted name order."""
    chunks = []
    for key in sorted(arrays):
        chunks += [key.encode(), np.ascontiguousarray(arrays[key]).tobytes()]
    return digest(*chunks, length=length)


def state_digest(state: Mapping, length: int = 16) -> str:
    """Digest of a torch state dict: names, dtypes, shapes and bytes (it names the weights,
    not the file they are in)."""
    import torch

    chunks = []
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        chunks += [f"{name}|{t.dtype}|{tuple(t.shape)}|".encode(),
                   t.reshape(-1).view(torch.uint8).numpy().tobytes()]
    return digest(*chunks, length=length)


def git_revision() -> str | None:
    """The short git revision of the checkout hkmr runs from, or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(**extra) -> dict:
    """What made a result: date, hkmr version and git revision, then ``extra``."""
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "hkmr": __version__, "git_revision": git_revision()}
    meta.update(extra)
    return meta
