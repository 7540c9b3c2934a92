"""torch engine: the bundle's exported programs (``encoder.pt2``, ``sequence_step.pt2``) on the CPU or CUDA.

torch cannot load ONNX, so this engine needs the ``.pt2`` files (``deg-train export`` writes them by default).
Options:

- ``threads`` (int): torch intra-op threads (default: leave torch's setting, which is the physical cores).
- ``cuda_graphs`` (bool, CUDA only, default False): capture the whole per-frame step of a stream (window gather,
  encoder, sequence step, state update) in one CUDA graph and replay it per frame; falls back (logged) to eager
  when capture fails.
- ``channels_last`` (bool, default True on the CPU): store 4-D weights channels-last, which makes oneDNN's
  convolutions faster on x86 CPUs (measured ~25% for deg_f at 128x128).
- ``compile`` (bool, default False): ``torch.compile`` both graphs (inductor). On the reference CPU this made
  the deg_f encoder ~1.5x faster in bf16 at batch 1, but compiling takes ~2 minutes on 2 cores the first time
  (inductor caches its work in its cache directory, so later starts are faster); the first calls (``warmup``)
  compile.
- ``precision``: ``fp32``; ``bf16`` (autocast; on CPUs with avx512_bf16/AMX, and on CUDA); ``fp16`` (autocast,
  CUDA only). Reduced precisions change the outputs by ~1e-2: check with ``deg-live bench-engine``.

torch is imported when the engine is constructed, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from camera_adapters.plugins import Availability
from deg_live.engines.base import Engine, EngineError, EngineUnavailableError, FrameStream, StepResult, state_shape
from deg_live.engines.onnxruntime_engine import cpu_name
from deg_live.engines.probing import INSTALL_HINTS, cuda_devices, installed

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def cpu_flags() -> set[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX-BF16)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside runs with ``weights_only=True``, whatever its caller asked for.

    ``torch.export.load`` reads the pickled parts of a ``.pt2`` (sample inputs, constants) with the safe loader
    but, when that refuses a part, retries it with the unrestricted unpickler (torch/_export/serde/serialize.py):
    a crafted ``encoder.pt2`` in a bundle from someone else would run its code at load. PyTorch's
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` switch turns that retry into an error. It is set for the duration only
    (the engine loads before any socket or worker thread of ``deg-live run`` starts).
    """
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


class TorchEngine(Engine):
    """The bundle's torch exported programs, run eagerly (optionally replayed as a CUDA graph per frame).

    Args:
        bundle: the bundle (must hold ``encoder.pt2`` and ``sequence_step.pt2``).
        device: ``"cpu"`` (default) or ``"cuda"``/``"cuda:N"``.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA); autocast around both graphs.
        threads: torch intra-op threads for this process (default: unchanged).
        cuda_graphs: replay each stream's per-frame step as a CUDA graph (CUDA only).
        channels_last: channels-last 4-D weights (default: on the CPU).
        compile: ``torch.compile`` both graphs (slow first calls, faster after).
    """

    name = "torch"
    supported_precisions = ("fp32", "bf16", "fp16")

    @classmethod
    def availability(cls) -> Availability:
        """Installed, and whether it can use the CUDA devices there are (imports torch only when there are)."""
        version = installed("torch")
        if version is None:
            return Availability(cls.name, False, f"torch is not installed: {INSTALL_HINTS[cls.name]}")
        gpus = cuda_devices()
        if gpus:
            import torch  # only here, when there is a GPU to ask about

            if torch.cuda.is_available():
                return Availability(cls.name, True, f"torch {version} with CUDA", ("cpu", *gpus))
            return Availability(cls.name, True, f"torch {version} without CUDA support (CPU only)", ("cpu",))
        return Availability(cls.name, True, f"torch {version}, no CUDA device (CPU only)", ("cpu",))

    def __init__(
        self,
        bundle: Bundle,
        *,
        device: str | None = None,
        precision: str = "fp32",
        threads: int | None = None,
        cuda_graphs: bool = False,
        channels_last: bool | None = None,
        compile: bool = False,
        **options: Any,
    ):
        super().__init__(bundle, device=device or "cpu", precision=precision, **options)
        try:
            import torch
        except ImportError as err:
            raise EngineUnavailableError("torch is not installed: pip install torch") from err
        self._torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        try:
            self._device = torch.device(self.device)
        except RuntimeError as err:
            raise EngineError(f"unknown device {self.device!r} for torch; use 'cpu' or 'cuda[:N]'") from err
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailableError(
                f"device {self.device!r} requested but torch sees no CUDA device (torch {torch.__version__}); "
                "use device='cpu' or install a CUDA build of torch"
            )
        if self._device.type not in ("cpu", "cuda"):
            raise EngineError(f"device {self.device!r}: the torch engine runs on 'cpu' or 'cuda[:N]'")
        if precision == "fp16" and self._device.type != "cuda":
            raise EngineError("precision fp16 needs CUDA with the torch engine; use fp32 or bf16 on the CPU")
        if precision == "bf16" and self._device.type == "cpu" and not cpu_has_bf16():
            log.warning("this CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 will be slow, prefer fp32")
        self.cuda_graphs = bool(cuda_graphs) and self._device.type == "cuda"
        if cuda_graphs and not self.cuda_graphs:
            log.info("cuda_graphs ignored: the torch engine runs on %s", self.device)
        self.threads = torch.get_num_threads()
        self.channels_last = self._device.type == "cpu" if channels_last is None else bool(channels_last)
        self.compiled = bool(compile)
        self._encoder = self._load("encoder")
        self._sequence = self._load("sequence")
        if self.compiled:
            self._encoder = torch.compile(self._encoder)
            self._sequence = torch.compile(self._sequence)

    def _load(self, graph: str):
        torch = self._torch
        path = self.bundle.model_file(graph, "torch")
        if path is None:
            raise EngineUnavailableError(
                f"{self.bundle.directory}: the bundle has no torch exported program for the {graph} (torch cannot "
                "load ONNX); re-export with `deg-train export` (writes .pt2 by default) or use the onnxruntime engine"
            )
        try:
            with warnings.catch_warnings(), weights_only_loads():
                # torch's archive reader warns about shared constants; harmless
                warnings.filterwarnings("ignore", message="No complete tensor found", category=UserWarning)
                program = torch.export.load(path)
        except Exception as err:
            raise EngineError(
                f"{path}: torch cannot load this exported program ({type(err).__name__}: {str(err).strip()[:300]}); "
                "the file is corrupt, crafted, or from an incompatible torch version; re-export the bundle"
            ) from None
        # The program's argument names are the Python ones, so compare counts (names are checked on the ONNX).
        sig = program.graph_signature
        spec = self._spec(graph)
        if len(sig.user_inputs) != len(spec.inputs) or len(sig.user_outputs) != len(spec.outputs):
            raise EngineError(
                f"{path}: the program takes {len(sig.user_inputs)} inputs and gives {len(sig.user_outputs)} outputs "
                f"but the manifest lists {len(spec.inputs)} and {len(spec.outputs)}; re-export the bundle"
            )
        if self._device.type != "cpu":
            program = torch.export.passes.move_to_device_pass(program, self._device)
        module = program.module()
        if self.channels_last:
            with torch.no_grad():
                for p in [*module.parameters(), *module.buffers()]:
                    if p.dim() == 4:
                        p.data = p.data.contiguous(memory_format=torch.channels_last)
        return module

    def _spec(self, graph: str):
        manifest = self.bundle.manifest
        return manifest.encoder if graph == "encoder" else manifest.sequence

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = getattr(self._torch, _DTYPES[self.precision])
        return self._torch.autocast(self._device.type, dtype=dtype)

    # ------------------------------------------------------------------------------------ tensor-level calls
    def encode_tensor(self, windows):
        """Encoder on a device tensor ``(B, T, H, W, 3) uint8`` -> ``features (B, D)``, ``logits (B, K)`` float32."""
        with self._torch.inference_mode(), self._autocast():
            features, logits = self._encoder(windows)
        return features.float(), logits.float()

    def sequence_tensor(self, features, state):
        """Sequence step on device tensors -> ``probs (B, K) float32`` and the new state (tuple)."""
        with self._torch.inference_mode(), self._autocast():
            probs, *new_state = self._sequence(features, *state)
        return probs.float(), tuple(s.to(o.dtype) for s, o in zip(new_state, state))

    def initial_state_tensor(self, batch: int = 1) -> tuple:
        """Zero state tensors on the engine's device."""
        torch = self._torch
        where = str(self.bundle.directory)
        return tuple(
            torch.zeros(state_shape(s.shape, batch, where), dtype=getattr(torch, s.dtype), device=self._device)
            for s in self.bundle.manifest.sequence.state
        )

    # ------------------------------------------------------------------------------------- the interface
    def encode(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the frame encoder; see :meth:`Engine.encode`. ``windows: (B, T, H, W, 3) uint8``."""
        self._check_open()
        windows = self.check_windows(windows)
        x = self._torch.from_numpy(windows).to(self._device, non_blocking=True)
        features, logits = self.encode_tensor(x)
        return features.cpu().numpy(), logits.cpu().numpy()

    def sequence_step(self, features: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """One sequence step on host arrays; see :meth:`Engine.sequence_step`."""
        self._check_open()
        torch = self._torch
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self._device)
        s = tuple(torch.as_tensor(x).to(self._device) for x in state)
        probs, new_state = self.sequence_tensor(f, s)
        return probs.cpu().numpy(), tuple(x.cpu().numpy() for x in new_state)

    def stream(self) -> FrameStream:
        """A stream whose window ring and sequence state live on the engine's device."""
        self._check_open()
        return TorchFrameStream(self)

    def synchronize(self) -> None:
        """Wait for the device (no-op on the CPU)."""
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)

    def describe(self) -> dict[str, Any]:
        """Backend, device name, precision, torch version, threads, CUDA graphs; see :meth:`Engine.describe`."""
        torch = self._torch
        if self._device.type == "cuda":
            props = torch.cuda.get_device_properties(self._device)
            device = f"{props.name} (sm_{props.major}{props.minor})"
        else:
            device = cpu_name()
        return {
            "backend": self.name,
            "device": device,
            "precision": self.precision,
            "torch": torch.__version__,
            "threads": self.threads,
            "cuda_graphs": self.cuda_graphs,
            "channels_last": self.channels_last,
            "compiled": self.compiled,
            "bf16_native": cpu_has_bf16() if self._device.type == "cpu" else None,
        }

    def _release(self) -> None:
        self._encoder = None
        self._sequence = None
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()


class TorchFrameStream(FrameStream):
    """A stream on the torch engine's device.

    The last ``T`` frames live in a device ring of ``T`` slots; each push copies the frame once (host -> device,
    from a pinned staging buffer on CUDA) into the oldest slot, and the encoder gets the window gathered in time
    order with a small index tensor. The sequence state stays on the device. With ``cuda_graphs``, gather,
    encoder, sequence step and state update are one captured CUDA graph, replayed per frame (the ``encoder``
    timing then includes the sequence step, and ``sequence`` is 0).
    """

    def __init__(self, engine: TorchEngine):
        super().__init__(engine)
        torch = engine._torch
        self._torch = torch
        t = engine.frames_per_window
        dev = engine._device
        cuda = dev.type == "cuda"
        self._ring = torch.zeros((t, *engine.frame_shape), dtype=torch.uint8, device=dev)
        self._order = torch.zeros(t, dtype=torch.long, device=dev)
        self._staging = torch.empty(engine.frame_shape, dtype=torch.uint8, pin_memory=cuda)
        self._order_host = torch.empty(t, dtype=torch.long, pin_memory=cuda)
        self._state = engine.initial_state_tensor(1)
        self._graph = None
        self._outputs = None
        if engine.cuda_graphs:
            self._capture()
        self.reset()

    # The per-frame body: gather the window in time order, encoder, sequence step, state update in place.
    def _body(self):
        engine = self.engine
        window = self._ring.index_select(0, self._order)[None]
        features, logits = engine.encode_tensor(window)
        probs, new_state = engine.sequence_tensor(features, self._state)
        for s, n in zip(self._state, new_state):
            s.copy_(n)
        return probs, logits, features

    def _capture(self) -> None:
        torch = self._torch
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self._body()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._outputs = self._body()
            self._graph = graph
        except Exception as err:  # capture is an optimisation: fall back to eager and say so
            log.warning("CUDA graph capture failed (%s: %s); running eagerly", type(err).__name__, err)
            self._graph = None
            self._outputs = None

    def reset(self) -> None:
        """Start a new stream: empty window, zero sequence state, count from 0."""
        if self._graph is not None:
            for s in self._state:  # the graph reads and writes these very tensors
                s.zero_()
        else:
            self._state = self.engine.initial_state_tensor(1)
        self._pos = -1
        self._count = 0

    def push(self, frame: np.ndarray, index: int | None = None) -> StepResult:
        """Process the next frame; see :meth:`FrameStream.push`. ``frame: (H, W, 3) uint8``."""
        engine = self.engine
        engine._check_open()
        frame = engine.check_frame(frame)
        torch = self._torch
        t = engine.frames_per_window
        t0 = time.perf_counter()
        self._staging.numpy()[...] = frame
        if self._pos < 0:  # causal padding: the first frame fills the window
            self._ring.copy_(self._staging.to(engine._device, non_blocking=True).expand_as(self._ring))
            self._pos = t - 1
        else:
            self._pos = (self._pos + 1) % t
            self._ring[self._pos].copy_(self._staging, non_blocking=True)
        self._order_host.copy_(torch.arange(self._pos + 1, self._pos + 1 + t) % t)
        self._order.copy_(self._order_host, non_blocking=True)
        engine.synchronize()
        t1 = time.perf_counter()
        if self._graph is not None:
            self._graph.replay()
            engine.synchronize()
            t2 = t3 = time.perf_counter()
            probs, logits, features = self._outputs
        else:
            window = self._ring.index_select(0, self._order)[None]
            features, logits = engine.encode_tensor(window)
            engine.synchronize()
            t2 = time.perf_counter()
            probs, self._state = engine.sequence_tensor(features, self._state)
            engine.synchronize()
            t3 = time.perf_counter()
        result = StepResult(
            index=self._next_index(index),
            probs=probs[0].cpu().numpy().copy(),
            logits=logits[0].cpu().numpy().copy(),
            features=features[0].cpu().numpy().copy(),
            timings={"upload": t1 - t0, "encoder": t2 - t1, "sequence": t3 - t2},
        )
        result.timings["total"] = time.perf_counter() - t0
        return result
