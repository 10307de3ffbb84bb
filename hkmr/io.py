"""Small I/O helpers shared by every layer: the cache folder, atomic writes and file locks.

Nothing the project writes (body models, shards, checkpoints, result tables) may be seen
half-written: :func:`atomic_path` yields a temporary name beside the target and renames it
into place only when the block finishes without an exception. :func:`folder_lock` makes
processes on one machine (sweep trials, two sweeps) wait for a single builder of a cache
folder. :func:`check_writable` finds an output folder that cannot be written (a file, a
read-only mount) before the work that would write there starts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


class NotWritableError(ValueError):
    """An output folder cannot be made or written; the message names it and why."""


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Make ``folder`` (and its parents) and write and remove a probe file in it; raise
    :class:`NotWritableError` naming the folder when that fails (a file in the way, a
    read-only or full disk, no permission)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hkmr-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise NotWritableError(f"cannot write the {what} {folder}: "
                               f"{err.strerror or err}") from None
    return folder


def cache_dir() -> Path:
    """Folder for generated artefacts: ``$HKMR_CACHE`` or ``~/.cache/hkmr``, checked to be a
    folder that can be written (:class:`NotWritableError` names it otherwise)."""
    path = Path(os.environ.get("HKMR_CACHE", Path.home() / ".cache" / "hkmr")).expanduser()
    if not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
        check_writable(path, "cache folder ($HKMR_CACHE)")
    return path


def _umask() -> int:
    try:  # read it without changing it (Linux)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it to ``target`` on success.

    The temporary name keeps the target's suffix, so writers that append or check suffixes
    (``np.savez``, ``torch.save``, pyarrow) behave as they would on the target itself. The
    file gets the usual permissions (mkstemp creates it private).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def folder_lock(folder: str | os.PathLike) -> FileLock:
    """An exclusive, process-wide lock on ``folder`` (its ``.lock`` file; the folder is made
    if missing): ``with folder_lock(path): ...`` builds a cache there once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / ".lock")
