"""Fixtures shared by every test package."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_configure(config) -> None:
    """Children get the default Ctrl-C even when the test run itself was started with SIGINT ignored.

    A shell starts background jobs (``make test &``, ``nohup``) with SIGINT ignored, and an ignored signal stays
    ignored across fork and exec: the camera adapters and the demo the tests interrupt would then never see their
    SIGINT. A handler (unlike an ignore) is reset to the default in every child.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
