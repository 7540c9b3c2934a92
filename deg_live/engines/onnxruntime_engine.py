"""ONNX Runtime engine: the bundle's ONNX graphs on the CPU everywhere, on CUDA where onnxruntime-gpu is installed.

Session options: intra-op threads = the physical cores this process may use (``threads`` overrides), one
inter-op thread, sequential execution, every graph optimisation (``ORT_ENABLE_ALL``). Options:

- ``threads`` (int): intra-op threads (default: physical cores available to this process).
- ``spinning`` (bool, default True): let idle worker threads spin between calls (lowest latency on cores kept
  for inference; pass False when the CPU is shared with other busy processes, where spinning wastes it).
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from camera_adapters.plugins import Availability
from deg_live.engines.base import Engine, EngineError, EngineUnavailableError
from deg_live.engines.probing import INSTALL_HINTS, cuda_devices, installed

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads counted once); at least 1."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def cpu_name() -> str:
    """The CPU's model string (``/proc/cpuinfo`` "model name" on Linux), for benchmark tables."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class OnnxRuntimeEngine(Engine):
    """The bundle's ``encoder.onnx`` and ``sequence_step.onnx`` in ONNX Runtime sessions.

    Args:
        bundle: the bundle.
        device: ``"cpu"`` (default) or ``"cuda"``/``"cuda:N"`` (needs onnxruntime-gpu's CUDA provider).
        precision: ``"fp32"`` only (the graphs are exported in fp32).
        threads: intra-op threads (default: physical cores available to this process).
        spinning: let idle intra-op threads spin (False on a CPU shared with other busy processes).
    """

    name = "onnxruntime"
    supported_precisions = ("fp32",)

    @classmethod
    def availability(cls) -> Availability:
        """Installed, and on which devices (CUDA only with onnxruntime-gpu's provider and a CUDA device)."""
        version = installed("onnxruntime")
        if version is None:
            return Availability(cls.name, False, f"ONNX Runtime is not installed: {INSTALL_HINTS[cls.name]}")
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        gpus = cuda_devices()
        devices = ("cpu", *gpus) if gpus and "CUDAExecutionProvider" in providers else ("cpu",)
        return Availability(cls.name, True, f"onnxruntime {version}, providers {', '.join(providers)}", devices)

    def __init__(
        self,
        bundle: Bundle,
        *,
        device: str | None = None,
        precision: str = "fp32",
        threads: int | None = None,
        spinning: bool = True,
        **options: Any,
    ):
        super().__init__(bundle, device=device or "cpu", precision=precision, **options)
        self.spinning = bool(spinning)
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise EngineUnavailableError(
                "ONNX Runtime is not installed: pip install onnxruntime (or onnxruntime-gpu for CUDA)"
            ) from err
        self._ort = ort
        self.threads = int(threads) if threads else physical_cores()
        if self.device == "cpu":
            self.providers: list[Any] = ["CPUExecutionProvider"]
        elif self.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EngineUnavailableError(
                    "ONNX Runtime's CUDA provider is not installed here (available: "
                    f"{', '.join(ort.get_available_providers())}); pip install onnxruntime-gpu, or use device='cpu'"
                )
            index = int(self.device.partition(":")[2] or 0)
            self.providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            raise EngineError(f"unknown device {self.device!r} for onnxruntime; use 'cpu' or 'cuda[:N]'")

        self._encoder = self._session("encoder")
        self._sequence = self._session("sequence")
        seq = bundle.manifest.sequence
        self._enc_input = bundle.manifest.encoder.inputs[0].name
        self._enc_outputs = ["features", "logits"]
        self._seq_input = seq.inputs[0].name
        self._state_inputs = [s.input for s in seq.state]
        self._seq_outputs = [seq.outputs[0].name, *[s.output for s in seq.state]]

    def _session(self, graph: str):
        ort = self._ort
        path = self.bundle.model_file(graph, "onnx")
        if path is None:
            raise EngineError(f"{self.bundle.directory}: the bundle has no ONNX file for the {graph}; re-export it")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if not self.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=self.providers)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
            raise EngineError(
                f"{path}: ONNX Runtime cannot load this graph ({type(err).__name__}: {str(err).strip()[:300]}); "
                "the file is corrupt or from an incompatible exporter, re-export the bundle"
            ) from None
        self.bundle.check_graph_io(graph, session.get_inputs(), session.get_outputs())
        return session

    def encode(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the frame encoder; see :meth:`Engine.encode`. ``windows: (B, T, H, W, 3) uint8``."""
        self._check_open()
        windows = self.check_windows(windows)
        features, logits = self._encoder.run(self._enc_outputs, {self._enc_input: windows})
        return features, logits

    def sequence_step(self, features: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """One sequence step; see :meth:`Engine.sequence_step`. ``features: (B, D) float32``."""
        self._check_open()
        feeds = {self._seq_input: np.ascontiguousarray(features, np.float32)}
        feeds.update(zip(self._state_inputs, state))
        probs, *new_state = self._sequence.run(self._seq_outputs, feeds)
        return probs, tuple(new_state)

    def describe(self) -> dict[str, Any]:
        """Backend, device, precision, providers and threads; see :meth:`Engine.describe`."""
        device = cpu_name() if self.device == "cpu" else self.device
        return {
            "backend": self.name,
            "device": device,
            "precision": self.precision,
            "onnxruntime": self._ort.__version__,
            "providers": self._encoder.get_providers(),
            "intra_op_threads": self.threads,
            "spinning": self.spinning,
        }

    def _release(self) -> None:
        self._encoder = None
        self._sequence = None
