"""The packages' exports load on first use (hkmr.lazy): each named export resolves to the
object its module defines, an unknown name is an AttributeError, and ``import *`` works."""

import importlib

import pytest


@pytest.mark.parametrize("package", ["hkmr.body", "hkmr.data", "hkmr.features", "hkmr.model"])
def test_every_lazy_export_resolves_to_its_modules_object(package):
    pkg = importlib.import_module(package)
    listed = [name for names in pkg._EXPORTS.values() for name in names]
    assert sorted(listed) == pkg.__all__ and listed
    for module, names in pkg._EXPORTS.items():
        for name in names:
            assert getattr(pkg, name) is getattr(importlib.import_module(module, package), name)
            assert name in dir(pkg)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        getattr(pkg, "nothing_here")
    namespace: dict = {}
    exec(f"from {package} import *", namespace)
    assert set(pkg.__all__) <= set(namespace)
