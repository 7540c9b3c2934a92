"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(request, tmp_path_factory) -> Callable[[str], Path]:
    """``cache_dir(name)``: a directory for slow-to-build test data (the tiny exported bundle).

    With pytest's cache provider (the default) it lives in ``.pytest_cache`` and is reused between runs; with
    ``-p no:cacheprovider`` ``request.config.cache`` does not exist, and the directory is a fresh one for this
    session only (the data is rebuilt once per run). What goes inside must be keyed by what produced it (see
    ``tests/deg_live/live_support.py``): the cache is only ever a shortcut.
    """
    cache = getattr(request.config, "cache", None)
    made: dict[str, Path] = {}

    def mkdir(name: str) -> Path:
        if name not in made:
            made[name] = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
        return made[name]

    return mkdir
