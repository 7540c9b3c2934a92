"""``deg-train`` stages run from the studio as child processes (QProcess): progress shown, cancellable.

The studio never imports torch: training and inference run in their own ``python -m deg_train.cli ...`` process.
Qt delivers their output to the GUI thread through the event loop, so the window never waits for them. Progress
is read from the child's tqdm bars (``NN%|``); the last line of output is shown beside it. A job is a list of
steps run one after the other; a failing step stops the rest. Cancelling sends SIGTERM (the CLIs stop cleanly and
a training run resumes from its last checkpoint), then SIGKILL after a grace period.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from pyqtgraph.Qt import QtCore

_PERCENT = re.compile(r"(\d{1,3})%(?:\||\s)")  # a tqdm bar "40%|", or its log line off a terminal "40% 4/10"
_EPOCH_STEP = re.compile(r"epoch (\d+)/(\d+): step (\d+)/(\d+)")  # the trainer's progress line


class StageJob(QtCore.QObject):
    """Run ``deg-train`` steps one after the other in child processes.

    Args:
        steps: each a ``deg-train`` argument list, e.g. ``["infer", "-p", "proj", "mouse1"]``.
        name: what the job is called in the window ("train", "infer").
        program: the command each step's arguments are appended to (default: this Python running
            ``-m deg_train.cli``, i.e. ``deg-train``).

    Signals:
        progress(int, str): percent of the current step (-1 when unknown) and its newest output line.
        finished(int, str): the exit status (0: every step succeeded; -1: cancelled) and a summary line.
    """

    progress = QtCore.pyqtSignal(int, str)
    finished = QtCore.pyqtSignal(int, str)

    def __init__(
        self,
        steps: Sequence[Sequence[str]],
        name: str,
        parent: QtCore.QObject | None = None,
        *,
        program: Sequence[str] | None = None,
    ):
        super().__init__(parent)
        self.steps = [list(s) for s in steps]
        self.program = list(program) if program else [sys.executable, "-m", "deg_train.cli"]
        self.name = name
        self.output: list[str] = []
        self.process: QtCore.QProcess | None = None
        self.cancelled = False
        self.done = False
        self._step = -1
        self._partial = ""

    @property
    def running(self) -> bool:
        """Whether a step is running."""
        return self.process is not None and self.process.state() != QtCore.QProcess.ProcessState.NotRunning

    def start(self) -> None:
        """Start the first step."""
        self._next()

    def _next(self) -> None:
        self._step += 1
        if self._step >= len(self.steps):
            self._finish(0, f"{self.name}: done")
            return
        args = self.steps[self._step]
        self.output.append(f"$ deg-train {' '.join(args)}")
        process = QtCore.QProcess(self)
        process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._step_finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        process.start(self.program[0], [*self.program[1:], *args])
        self.progress.emit(-1, f"{self.name}: step {self._step + 1}/{len(self.steps)}: deg-train {args[0]}")

    def _read(self) -> None:
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        text = self._partial + data
        pieces = re.split(r"[\r\n]", text)
        self._partial = pieces.pop()
        lines = [p.strip() for p in pieces if p.strip()]
        if not lines:
            return
        self.output.extend(lines[-50:])
        del self.output[:-500]
        last = lines[-1]
        self.progress.emit(_percent(lines), last[:200])

    def _step_finished(self, code: int, _status) -> None:
        self._read()
        if self.cancelled:
            self._finish(-1, f"{self.name}: cancelled")
        elif code != 0:
            tail = next((line for line in reversed(self.output) if line.strip()), "")
            self._finish(code, f"{self.name}: deg-train {self.steps[self._step][0]} failed ({code}): {tail[:200]}")
        else:
            self._next()

    def _error(self, error) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart:
            self._finish(127, f"{self.name}: could not start {self.program[0]}")

    def _finish(self, code: int, message: str) -> None:
        if self.done:
            return
        self.done = True
        self.output.append(message)
        self.finished.emit(code, message)

    def cancel(self, grace_ms: int = 5000) -> None:
        """Stop: SIGTERM now, SIGKILL if the step has not ended after ``grace_ms``."""
        if not self.running:
            return
        self.cancelled = True
        self.process.terminate()
        QtCore.QTimer.singleShot(grace_ms, self._kill)

    def _kill(self) -> None:
        if self.running:
            self.process.kill()


def _percent(lines: list[str]) -> int:
    """The newest progress among ``lines`` in percent, or -1.

    Understands tqdm bars, their log lines off a terminal and the trainer's ``epoch E/N: step S/M`` line.
    """
    for line in reversed(lines):
        match = _EPOCH_STEP.search(line)
        if match:
            epoch, epochs, step, steps = (int(g) for g in match.groups())
            return int(100 * ((epoch - 1) + step / max(1, steps)) / max(1, epochs))
        match = _PERCENT.search(line)
        if match:
            return min(100, int(match.group(1)))
    return -1
