"""Sweep storage that is a local folder or a URI (``s3://bucket/prefix``, ``gs://...``), read
and written through ``pyarrow.fs`` as Ray Tune itself does.

A sweep's storage holds, under ``STORAGE/NAME``: Ray Tune's experiment state and trial folders
(written by Tune), ``hkmr_sweep.json`` (what the sweep was: :data:`SWEEP_FILE`)
and ``hkmr_results/`` (a copy of the aggregated results folder), so a sweep whose driver's disk
is gone (a KubeRay RayJob's pod) can be reported and resumed from the storage alone.

S3-compatible endpoints are configured the way AWS tools are: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` in the environment
(of the driver and, for trials, of every Ray worker: export them before the cluster starts) or
a query string on the URI (``s3://bucket/p?endpoint_override=host:port``, pyarrow's).

:func:`check_reachable` runs before a sweep starts: a local storage must be a folder that can
be written, a URI must answer a listing within :data:`REACH_TIMEOUT_S` seconds (an endpoint
that accepts connections and never answers kept a sweep silent for minutes, then failed).

Local files are written to a temporary name and renamed (:func:`hkmr.io.atomic_path`); an
object store's single PUT is atomic by itself, so objects are written in place.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from hkmr.io import atomic_path, check_writable

#: seconds an object store has to answer the check before a sweep
REACH_TIMEOUT_S = 15.0

#: the folder under STORAGE/NAME that holds a copy of the sweep's results folder
RESULTS_FOLDER = "hkmr_results"
#: the file under STORAGE/NAME that records what the sweep is (:func:`tuning.run.driver.sweep_info`)
SWEEP_FILE = "hkmr_sweep.json"


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an object store (``scheme://...``) rather than a local folder."""
    return "://" in str(path)


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` for a URI (query string kept at the end) or a local path."""
    base = str(base)
    if not is_uri(base):
        return str(Path(base, *parts))
    path, sep, query = base.partition("?")
    return posixpath.join(path, *parts) + sep + query


def _fs(path: str):
    """(pyarrow filesystem, path inside it) of a URI or local path."""
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(Path(path).resolve())


def exists(path: str | os.PathLike) -> bool:
    """Whether a file or folder is at ``path``."""
    import pyarrow.fs

    fs, inner = _fs(str(path))
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def read_text(path: str | os.PathLike) -> str:
    """The text of the file at ``path``; FileNotFoundError names it when it is missing."""
    if not exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    fs, inner = _fs(str(path))
    with fs.open_input_stream(inner) as fh:
        return fh.read().decode()


def check_reachable(storage: str | os.PathLike, timeout: float = REACH_TIMEOUT_S) -> None:
    """ValueError naming ``storage`` when a sweep could not write there: a local path that is
    not a writable folder, or a URI that does not answer a listing within ``timeout`` s."""
    if not is_uri(storage):
        check_writable(storage, "sweep storage (--storage)")
        return
    import threading

    outcome: list = []

    def probe():
        try:
            outcome.append(list_names(storage))
        except Exception as err:  # noqa: BLE001 - reported below, with the URI
            outcome.append(err)

    thread = threading.Thread(target=probe, daemon=True, name="hkmr-storage-probe")
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise ValueError(f"--storage {storage}: no answer within {timeout:g} s (is the "
                         "endpoint, AWS_ENDPOINT_URL, right and up?)")
    if isinstance(outcome[0], Exception):
        err = outcome[0]
        raise ValueError(f"--storage {storage}: cannot list it ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None


def read_json(path: str | os.PathLike, what: str = "file"):
    """The JSON value of the file at ``path``; ValueError naming the file (and saying what it
    is) when it is not whole JSON, e.g. cut short by a full disk."""
    import json

    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: damaged {what}: {err} ({len(text)} bytes)") from None


def list_names(folder: str | os.PathLike) -> list[str]:
    """The names of the files and folders directly in ``folder`` (none when it is missing)."""
    import pyarrow.fs

    fs, inner = _fs(str(folder))
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.Directory:
        return []
    return [posixpath.basename(info.path)
            for info in fs.get_file_info(pyarrow.fs.FileSelector(inner))]


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` (a local file through a temporary name and a rename)."""
    if not is_uri(path):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        return
    fs, inner = _fs(str(path))
    fs.create_dir(posixpath.dirname(inner), recursive=True)
    with fs.open_output_stream(inner) as fh:
        fh.write(text.encode())


def upload_folder(local: str | os.PathLike, dest: str | os.PathLike) -> str:
    """Copy the local folder ``local`` to ``dest`` (a URI or another folder), replacing what
    was there; returns ``dest``."""
    import pyarrow.fs

    if not is_uri(dest):
        target = Path(dest)
        if target.resolve() != Path(local).resolve():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=_parent(target)))
            shutil.copytree(local, staging, dirs_exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        return str(dest)
    fs, inner = _fs(str(dest))
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound:
        fs.delete_dir(inner)
    fs.create_dir(inner, recursive=True)
    pyarrow.fs.copy_files(str(Path(local).resolve()), inner,
                          source_filesystem=pyarrow.fs.LocalFileSystem(),
                          destination_filesystem=fs)
    return str(dest)


def download_folder(src: str | os.PathLike, local: str | os.PathLike) -> Path:
    """Copy the folder ``src`` (a URI or folder) into the local folder ``local``."""
    import pyarrow.fs

    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    fs, inner = _fs(str(src))
    if fs.get_file_info(inner).type != pyarrow.fs.FileType.Directory:
        raise FileNotFoundError(f"{src}: no such folder")
    pyarrow.fs.copy_files(inner, str(local.resolve()), source_filesystem=fs,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())
    return local


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent
