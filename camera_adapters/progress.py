"""Progress that is never silent: a tqdm bar on a terminal, a log line every ``every_s`` seconds elsewhere.

Long work (caching frames, extracting features, exporting) draws a tqdm bar when stderr is a terminal. In a cluster
job or with stderr redirected to a file, a bar is a stream of carriage returns nobody reads, so :class:`progress_bar`
draws nothing there and instead logs ``"<desc>: 40% 400/1000 [01:10<01:45, 5.7frame/s]"`` through :mod:`logging`
at most every ``every_s`` seconds (default 30), plus one line when it finishes. The log lines reach whatever
handlers the command set up (``deg-train`` writes them to the run's ``log/train.log``).

Example:
    >>> for frame in progress_bar(frames, desc="caching rat1.mp4", unit="frame", logger=log):
    ...     work(frame)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from tqdm import tqdm

_log = logging.getLogger(__name__)

#: Default seconds between two log lines when stderr is not a terminal.
EVERY_S = 30.0


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (where a tqdm bar is worth drawing)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class progress_bar(tqdm):
    """A tqdm bar on a terminal; elsewhere no bar, but a log line every ``every_s`` seconds and one at the end.

    Takes tqdm's arguments, plus ``every_s`` (seconds between log lines), ``logger`` (where they go) and
    ``terminal`` (force either behaviour; default: whether stderr is a terminal). ``disable=True`` silences both.
    """

    def __init__(
        self,
        *args: Any,
        every_s: float = EVERY_S,
        logger: logging.Logger | None = None,
        terminal: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self._terminal = stderr_is_terminal() if terminal is None else bool(terminal)
        self._logger = logger or _log
        self._every_s = float(every_s)
        self._started = self._last_log = time.monotonic()
        self._logged_any = False
        self._devnull = None
        if not self._terminal and not kwargs.get("disable", False):
            self._devnull = open(os.devnull, "w")
            kwargs["file"] = self._devnull
            kwargs.setdefault("mininterval", 1.0)
        super().__init__(*args, **kwargs)

    def _stats(self) -> str:
        meter = dict(self.format_dict)
        meter["ncols"] = 0  # the numbers, no bar
        return self.format_meter(**meter)

    def update(self, n: float | None = 1) -> bool | None:
        """Advance by ``n``; off a terminal, log the state if ``every_s`` has passed since the last line."""
        shown = super().update(n)
        if self._devnull is not None and not self.disable:
            now = time.monotonic()
            if now - self._last_log >= self._every_s:
                self._last_log = now
                self._logged_any = True
                self._logger.info("%s", self._stats())
        return shown

    def close(self) -> None:
        """Finish the bar; off a terminal, log the final state if any line was logged or it took over ``every_s``."""
        if self._devnull is not None and not self.disable:
            if self._logged_any or time.monotonic() - self._started >= self._every_s:
                self._logger.info("%s (done)", self._stats())
        super().close()
        if self._devnull is not None:
            self._devnull.close()
            self._devnull = None
