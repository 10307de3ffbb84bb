"""Shared fixtures: every test session builds its own procedural body model cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _hkmr_cache(tmp_path_factory):
    """Point HKMR_CACHE at a per-session folder so tests never touch ~/.cache/hkmr."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HKMR_CACHE", str(tmp_path_factory.mktemp("hkmr_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def body_model():
    from hkmr.body import BodyModel

    return BodyModel()
