"""Package exports imported on first use (PEP 562), so that importing one light submodule of
a package (a command module, for a fast ``hkmr --help``) does not import torch::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {".model": ("BodyModel",)})
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, namespace: dict[str, Any], modules: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (whose globals are
    ``namespace``) that import each name ``modules`` lists (relative module -> names) when it
    is first asked for, and the package's ``__all__``."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__, sorted(exports)
