"""Reading SMPL-format body model files (official ``.pkl`` or ``.npz``) with clear errors.

The official ``SMPL_NEUTRAL.pkl`` is a Python-2 pickle holding ``chumpy`` arrays and a
``scipy.sparse`` joint regressor. chumpy does not import under numpy 2, so
:class:`_SmplUnpickler` stands in a small class for every chumpy class, keeps the value a
chumpy array stores, and densifies sparse matrices. Nothing falls back silently: a missing
file, key or a wrong shape raises :class:`BodyModelFileError` naming the path and the key.

SMPL files come from downloads, and a pickle can call anything it names. The unpickler
therefore allows only what the official files contain (:func:`_allowed`): numpy arrays,
dtypes and scalars, scipy.sparse matrix classes, chumpy classes (replaced by the stand-in)
and a few inert builtins; any other name (``os.system``, ``builtins.eval``, a class of another
package) raises :class:`UnsafeBodyModelFileError` naming the file and the name before the
pickle can call it. An ``.npz`` is read without pickle (object arrays are refused).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

GET_SMPL = ("The real SMPL model is licensed: register at https://smpl.is.tue.mpg.de, download "
            "'SMPL for Python' and pass the path of SMPL_NEUTRAL.pkl (or an .npz with SMPL's "
            "keys) as body.model_path. Leave body.model_path empty to use hkmr's procedural "
            "body model.")

#: required keys and their shapes; V = vertices, K = shape coefficients, F = faces.
REQUIRED_KEYS: dict[str, tuple] = {
    "v_template": ("V", 3),
    "shapedirs": ("V", 3, "K"),
    "posedirs": ("V", 3, 207),
    "J_regressor": (24, "V"),
    "weights": ("V", 24),
    "kintree_table": (2, 24),
    "f": ("F", 3),
}


class BodyModelFileError(ValueError):
    """A body model file is missing or malformed; the message says what and how to fix it."""


class UnsafeBodyModelFileError(BodyModelFileError):
    """A body model pickle names a callable an SMPL file never holds; nothing of it ran."""


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling and keeps its array value."""

    def __init__(self, *args, **kwargs):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def value(self) -> np.ndarray:
        state = self.state
        if isinstance(state, tuple):  # (dict, slots) form
            state = next((s for s in state if isinstance(s, dict)), {})
        if isinstance(state, dict):
            for key in ("x", "_x", "a", "r"):
                if key in state and not isinstance(state[key], _ChumpyStandIn):
                    return np.asarray(state[key])
            arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
            if arrays:
                return arrays[0]
        raise BodyModelFileError("a chumpy object in the file holds no array value")


#: (module, name) pairs an official SMPL pickle refers to besides chumpy and scipy.sparse:
#: numpy's array/scalar reconstruction (numpy 1 and 2 module names), Python 2's bytes
#: encoding and object reconstruction, and inert builtin containers
_NUMPY_AND_BUILTINS = {
    *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
      for n in ("_reconstruct", "scalar")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    *((m, n) for m in ("builtins", "__builtin__")
      for n in ("object", "set", "frozenset", "bytes", "bytearray", "complex", "slice")),
}


def _allowed(module: str, name: str):
    """The class a pickle may refer to by ``module.name``, or None when it may not."""
    if module == "chumpy" or module.startswith("chumpy."):
        return _ChumpyStandIn
    if module == "scipy.sparse" or module.startswith("scipy.sparse."):
        import scipy.sparse

        cls = getattr(scipy.sparse, name, None)
        matrix_types = tuple(t for t in (getattr(scipy.sparse, "spmatrix", None),
                                         getattr(scipy.sparse, "sparray", None)) if t)
        if isinstance(cls, type) and issubclass(cls, matrix_types):
            return cls
        return None
    if (module, name) in _NUMPY_AND_BUILTINS:
        return pickle.Unpickler.find_class(_PLAIN, module, name)
    return None


class _SmplUnpickler(pickle.Unpickler):
    """Unpickles only the names :func:`_allowed` lets through (``path`` names the file)."""

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        cls = _allowed(module, name)
        if cls is None:
            raise UnsafeBodyModelFileError(
                f"{self.path}: refused to load this body model: its pickle asks for "
                f"{module}.{name}, which an SMPL file never holds (a file from an untrusted "
                f"source could run code this way); nothing of it was run")
        return cls


#: an unpickler whose base find_class resolves the allowed numpy/builtin names (with Python
#: 2 name mapping)
_PLAIN = pickle.Unpickler(io.BytesIO(b""), encoding="latin1")


def _to_dense(value) -> np.ndarray:
    if isinstance(value, _ChumpyStandIn):
        value = value.value()
    if hasattr(value, "toarray"):  # scipy sparse
        value = value.toarray()
    return np.asarray(value)


def _read(path: Path) -> dict:
    if not path.exists():
        raise BodyModelFileError(f"body model file not found: {path}. {GET_SMPL}")
    if path.is_dir():
        raise BodyModelFileError(f"body model path is a folder, not a file: {path}. {GET_SMPL}")
    try:
        if path.suffix == ".npz":  # only the keys read here; object arrays need pickle: refused
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files if k in REQUIRED_KEYS}
        with open(path, "rb") as fh:
            data = _SmplUnpickler(fh, path).load()
    except UnsafeBodyModelFileError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, ImportError, IndexError) as err:
        raise BodyModelFileError(
            f"cannot read body model file {path}: {type(err).__name__}: {err}. {GET_SMPL}"
        ) from err
    if not isinstance(data, dict):
        raise BodyModelFileError(f"{path} holds a {type(data).__name__}, not a dict of SMPL "
                                 f"arrays. {GET_SMPL}")
    return data


def load_smpl_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate an SMPL-format file; return plain numpy arrays for the SMPL keys."""
    path = Path(path).expanduser()
    raw = _read(path)
    arrays: dict[str, np.ndarray] = {}
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise BodyModelFileError(
                f"{path} lacks the key '{key}' (has: {', '.join(sorted(map(str, raw)))}). "
                f"{GET_SMPL}")
        try:
            arrays[key] = _to_dense(raw[key])
        except BodyModelFileError as err:
            raise BodyModelFileError(f"{path}: key '{key}': {err}. {GET_SMPL}") from err
    dims = {"V": arrays["v_template"].shape[0], "F": arrays["f"].shape[0],
            "K": arrays["shapedirs"].shape[-1]}
    for key, expected in REQUIRED_KEYS.items():
        shape = tuple(dims.get(d, d) if isinstance(d, str) else d for d in expected)
        if arrays[key].shape != shape:
            names = tuple(f"{d}={dims[d]}" if isinstance(d, str) else d for d in expected)
            raise BodyModelFileError(
                f"{path}: key '{key}' has shape {arrays[key].shape}, expected {names}. "
                f"{GET_SMPL}")
    if dims["K"] < 10:
        raise BodyModelFileError(f"{path}: key 'shapedirs' has {dims['K']} shape directions, "
                                 f"at least 10 are needed. {GET_SMPL}")
    if dims["V"] < 6890:
        raise BodyModelFileError(
            f"{path}: key 'v_template' has {dims['V']} vertices; SMPL-format models need 6890 "
            f"(smplx picks extra joints by SMPL vertex id). {GET_SMPL}")
    parents = arrays["kintree_table"][0].astype(np.int64)
    if any(not 0 <= parents[j] < j for j in range(1, 24)):
        raise BodyModelFileError(f"{path}: key 'kintree_table' must list each joint's parent "
                                 f"before it, got parents {parents.tolist()}. {GET_SMPL}")
    arrays["f"] = arrays["f"].astype(np.int64)
    return arrays
