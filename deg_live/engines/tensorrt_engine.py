"""TensorRT engine: the bundle's ONNX graphs built into TensorRT engines on this GPU, cached beside the bundle.

Written against TensorRT's documented Python API (``tensorrt`` >= 10: ``Builder``, ``OnnxParser``,
``build_serialized_network``, ``Runtime.deserialize_cuda_engine``, the name-based tensor API and
``IExecutionContext.execute_async_v3``). Device buffers are torch CUDA tensors, allocated once; everything runs
on torch's current CUDA stream, so the engine composes with other torch work on that stream.

Safety: TensorRT is imported only inside the constructor, and only after torch has confirmed a CUDA device exists
(touching TensorRT on a machine without a GPU can take the process down).

Build and cache:

- FP16 by default (``precision="fp32"`` on request); FP16 changes outputs by ~1e-3..1e-2. TensorRT 11 has no
  FP16 builder flag (strong typing only), so the FP16 engine is built from an FP16 copy of the ONNX graph (see
  :func:`fp16_onnx`); TensorRT 10.0-10.11 use the FP16 builder flag.
- The encoder gets two optimisation profiles: profile 0 for streaming (batch exactly 1, the kernels tuned for
  it) and profile 1 for offline batches (``1 .. max_batch``, tuned at ``max_batch``); the sequence step one profile
  (``1 .. max_batch``, tuned at 1).
- Plans are cached in ``<bundle>/engines/`` as ``<graph>-<precision>-<key>.plan`` with a JSON sidecar. The key
  hashes the GPU name and compute capability, the TensorRT version, the ONNX file's sha256, the precision and the
  profiles: a cache built for another GPU or TensorRT version is not used — the engine is rebuilt (logged), as it
  is when a plan fails to deserialise. An unwritable bundle directory means the plan is built in memory (logged).

Options: ``max_batch`` (int, default 64): the largest offline batch (larger ``encode`` calls are split);
``workspace_mb`` (int, default 1024): the builder's workspace limit; ``rebuild`` (bool): ignore the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from camera_adapters.plugins import Availability
from deg_live.engines.base import Engine, EngineError, EngineUnavailableError, FrameStream, StepResult, state_shape
from deg_live.engines.probing import INSTALL_HINTS, cuda_devices, installed

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)

INSTALL = "pip install --extra-index-url https://pypi.nvidia.com tensorrt"
CACHE_SCHEMA_VERSION = 1


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


class TensorRTEngine(Engine):
    """The bundle's encoder and sequence step as TensorRT engines on one CUDA device.

    Args:
        bundle: the bundle.
        device: ``"cuda"`` (default) or ``"cuda:N"``.
        precision: ``"fp16"`` (default) or ``"fp32"``.
        max_batch: largest offline encoder batch the engine is built for.
        workspace_mb: builder workspace limit in MiB.
        rebuild: build even when a matching cached plan exists.
    """

    name = "tensorrt"
    supported_precisions = ("fp16", "fp32")

    @classmethod
    def availability(cls) -> Availability:
        """A CUDA device (asked of the driver), TensorRT and torch installed; never imports TensorRT."""
        gpus = cuda_devices()
        if not gpus:
            hint = INSTALL_HINTS[cls.name]
            return Availability(cls.name, False, f"no CUDA device found: TensorRT needs an NVIDIA GPU; there, {hint}")
        version = installed("tensorrt")
        if version is None:
            return Availability(cls.name, False, f"TensorRT is not installed: {INSTALL_HINTS[cls.name]}")
        if installed("torch") is None:
            reason = "the TensorRT engine uses torch CUDA tensors as buffers: pip install torch"
            return Availability(cls.name, False, reason)
        return Availability(cls.name, True, f"TensorRT {version}, {len(gpus)} CUDA device(s)", gpus)

    def __init__(
        self,
        bundle: Bundle,
        *,
        device: str | None = None,
        precision: str = "fp16",
        max_batch: int = 64,
        workspace_mb: int = 1024,
        rebuild: bool = False,
        **options: Any,
    ):
        super().__init__(bundle, device=device or "cuda", precision=precision, **options)
        try:
            import torch
        except ImportError as err:
            raise EngineUnavailableError(
                f"the TensorRT engine needs torch (CUDA build) and TensorRT: {INSTALL}"
            ) from err
        if not self.device.startswith("cuda"):
            raise EngineError(f"the TensorRT engine runs on CUDA devices, not {self.device!r}")
        # Never touch TensorRT without a CUDA device: check through torch first.
        if not torch.cuda.is_available():
            raise EngineUnavailableError(
                f"TensorRT needs an NVIDIA GPU and torch sees no CUDA device here; on a GPU machine: {INSTALL}"
            )
        try:
            import tensorrt as trt
        except ImportError as err:
            raise EngineUnavailableError(f"TensorRT is not installed: {INSTALL}") from err
        self._torch = torch
        self._trt = trt
        self._device = torch.device(self.device)
        if self._device.index is None:  # "cuda" means the current device; TensorRT needs it explicit
            self._device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(self._device)
        self.max_batch = int(max_batch)
        self.workspace_mb = int(workspace_mb)
        props = torch.cuda.get_device_properties(self._device)
        self.gpu_name = props.name
        self.compute_capability = f"{props.major}.{props.minor}"
        self._logger = _make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.cache_files: dict[str, str] = {}

        t, h, w = self.frames_per_window, self.height, self.width
        frames = bundle.manifest.encoder.inputs[0].name
        enc_profiles = [
            {frames: [(1, t, h, w, 3)] * 3},
            {frames: [(1, t, h, w, 3), (self.max_batch, t, h, w, 3), (self.max_batch, t, h, w, 3)]},
        ]
        seq = bundle.manifest.sequence
        seq_shapes = {seq.inputs[0].name: (self.feature_size,)}
        for s in seq.state:
            seq_shapes[s.input] = state_shape(s.shape, 1, str(bundle.directory))[1:]
        seq_profiles = [{n: [(1, *shape), (1, *shape), (self.max_batch, *shape)] for n, shape in seq_shapes.items()}]
        self._enc_engine = self._engine("encoder", enc_profiles, rebuild)
        self._seq_engine = self._engine("sequence", seq_profiles, rebuild)
        self._check_io("encoder", self._enc_engine)
        self._check_io("sequence", self._seq_engine)

        stream = torch.cuda.current_stream(self._device)
        # Offline encoder context on profile 1; streaming contexts are made per FrameStream on profile 0.
        self._enc_ctx = self._enc_engine.create_execution_context()
        if not self._enc_ctx.set_optimization_profile_async(1, stream.cuda_stream):
            raise EngineError(f"TensorRT refused the offline optimisation profile: {self._logger.errors()}")
        self._seq_ctx = self._seq_engine.create_execution_context()
        self._frames_name = frames
        # Buffers for offline batches, allocated once at max_batch.
        self._enc_in = torch.empty((self.max_batch, t, h, w, 3), dtype=torch.uint8, device=self._device)
        self._enc_out = {
            "features": torch.empty((self.max_batch, self.feature_size), dtype=torch.float32, device=self._device),
            "logits": torch.empty((self.max_batch, self.num_behaviours), dtype=torch.float32, device=self._device),
        }

    # ---------------------------------------------------------------------------------- build and cache
    def _cache_key(self, graph: str, onnx_sha256: str, profiles: list) -> dict[str, Any]:
        return {
            "schema_version": CACHE_SCHEMA_VERSION,
            "graph": graph,
            "gpu": self.gpu_name,
            "compute_capability": self.compute_capability,
            "tensorrt": self._trt.__version__,
            "onnx_sha256": onnx_sha256,
            "precision": self.precision,
            "profiles": json.loads(json.dumps(profiles)),
        }

    def _engine(self, graph: str, profiles: list[dict[str, list]], rebuild: bool):
        from deg_live.bundle import sha256_file

        onnx_path = self.bundle.model_file(graph, "onnx")
        if onnx_path is None or not onnx_path.is_file():
            raise EngineError(f"{self.bundle.directory}: no ONNX file for the {graph}; re-export the bundle")
        entry = self.bundle.manifest.files.get(onnx_path.relative_to(self.bundle.directory).as_posix())
        onnx_sha = entry.sha256 if entry is not None else sha256_file(onnx_path)
        key = self._cache_key(graph, onnx_sha, profiles)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        cache_dir = self.bundle.engine_cache_dir
        stem = f"{graph}-{self.precision}-{_slug(self.gpu_name)}-sm{self.compute_capability.replace('.', '')}-{digest}"
        plan_path, meta_path = cache_dir / f"{stem}.plan", cache_dir / f"{stem}.json"
        self.cache_files[graph] = str(plan_path)

        if not rebuild and plan_path.is_file() and meta_path.is_file():
            engine = self._load_cached(plan_path, meta_path, key)
            if engine is not None:
                log.info("TensorRT %s: using cached engine %s", graph, plan_path)
                return engine

        log.info(
            "TensorRT %s: building a %s engine for %s (this takes a while once)", graph, self.precision, self.gpu_name
        )
        started = time.perf_counter()
        plan = self._build(onnx_path, profiles)
        log.info("TensorRT %s: built in %.1f s", graph, time.perf_counter() - started)
        try:
            from camera_adapters.files import atomic_write_bytes, atomic_write_text

            cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(plan_path, bytes(plan))
            atomic_write_text(meta_path, json.dumps(key, indent=2) + "\n")
        except OSError as err:
            log.warning(
                "TensorRT %s: cannot cache the engine in %s (%s); it will be rebuilt next time", graph, cache_dir, err
            )
            self.cache_files[graph] = ""
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(
                f"TensorRT could not load the engine it just built for {onnx_path}: {self._logger.errors()}"
            )
        return engine

    def _load_cached(self, plan_path: Path, meta_path: Path, key: dict[str, Any]):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            log.warning("TensorRT cache %s: unreadable metadata (%s); rebuilding", meta_path, err)
            return None
        if meta != key:
            diff = sorted(k for k in key if meta.get(k) != key[k])
            log.warning("TensorRT cache %s was built for another %s; rebuilding", plan_path, ", ".join(diff))
            return None
        try:
            engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        except Exception as err:  # a damaged plan must not stop the live system: rebuild
            log.warning("TensorRT cache %s cannot be loaded (%s); rebuilding", plan_path, err)
            return None
        if engine is None:
            log.warning("TensorRT cache %s cannot be loaded (%s); rebuilding", plan_path, self._logger.errors())
            return None
        return engine

    def _build(self, onnx_path: Path, profiles: list[dict[str, list]]):
        """Build a serialized plan from the ONNX file; raises with the parser's errors.

        Precision: TensorRT 11 removed weak typing (``BuilderFlag.FP16``) and 10.12+ offers strongly typed
        networks, where the graph's own types decide. So for FP16 the FP32 ONNX is converted to FP16 first
        (inputs and outputs keep their types: uint8 frames in, float32 out) and built strongly typed; only on
        TensorRT < 10.12 is the old FP16 builder flag used instead. FP32 is built strongly typed without TF32.
        """
        trt = self._trt
        strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        weak_fp16 = self.precision == "fp16" and not strongly_typed and hasattr(trt.BuilderFlag, "FP16")
        model = onnx_path.read_bytes()
        if self.precision == "fp16" and not weak_fp16:
            model = fp16_onnx(model, onnx_path)
        builder = trt.Builder(self._logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
        network = builder.create_network(flags)  # explicit batch is the only mode since TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(model):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"{onnx_path}: TensorRT's ONNX parser rejected the graph: {errors or 'no details'}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if weak_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # true FP32, comparable with torch/ONNX Runtime
        for shapes in profiles:
            profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in shapes.items():
                profile.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError(f"{onnx_path}: TensorRT could not build an engine: {self._logger.errors()}")
        return plan

    def _check_io(self, graph: str, engine) -> None:
        """Compare the built engine's I/O tensors with the manifest (names, ranks, fixed dims, dtypes)."""
        trt = self._trt
        spec = self.bundle.manifest.encoder if graph == "encoder" else self.bundle.manifest.sequence
        found: dict[str, tuple] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = [d if d >= 0 else None for d in engine.get_tensor_shape(name)]
            dtype = _TRT_DTYPES.get(str(engine.get_tensor_dtype(name)))
            found[name] = (name, shape, dtype, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT)
        # TensorRT lists tensors in its own order: put them in the manifest's order (unknown names last).
        rank = {t.name: i for i, t in enumerate([*spec.inputs, *spec.outputs])}
        ordered = sorted(found.values(), key=lambda x: rank.get(x[0], len(rank)))
        self.bundle.check_graph_io(graph, [x[:3] for x in ordered if x[3]], [x[:3] for x in ordered if not x[3]])

    # ------------------------------------------------------------------------------------ execution
    @property
    def _stream_handle(self) -> int:
        return self._torch.cuda.current_stream(self._device).cuda_stream

    def run_encoder(self, context, frames, features, logits) -> None:
        """Enqueue the encoder on device tensors (``frames (B, T, H, W, 3) uint8`` -> given output buffers)."""
        context.set_input_shape(self._frames_name, tuple(frames.shape))
        context.set_tensor_address(self._frames_name, frames.data_ptr())
        context.set_tensor_address("features", features.data_ptr())
        context.set_tensor_address("logits", logits.data_ptr())
        if not context.execute_async_v3(self._stream_handle):
            raise EngineError(f"TensorRT encoder execution failed: {self._logger.errors()}")

    def run_sequence(self, features, state_in, probs, state_out) -> None:
        """Enqueue the sequence step on device tensors (outputs written into ``probs`` and ``state_out``)."""
        seq = self.bundle.manifest.sequence
        ctx = self._seq_ctx
        ctx.set_input_shape(seq.inputs[0].name, tuple(features.shape))
        ctx.set_tensor_address(seq.inputs[0].name, features.data_ptr())
        for spec, s_in, s_out in zip(seq.state, state_in, state_out):
            ctx.set_input_shape(spec.input, tuple(s_in.shape))
            ctx.set_tensor_address(spec.input, s_in.data_ptr())
            ctx.set_tensor_address(spec.output, s_out.data_ptr())
        ctx.set_tensor_address(seq.outputs[0].name, probs.data_ptr())
        if not ctx.execute_async_v3(self._stream_handle):
            raise EngineError(f"TensorRT sequence step failed: {self._logger.errors()}")

    def encode(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the encoder on batches of up to ``max_batch``; see :meth:`Engine.encode`."""
        self._check_open()
        windows = self.check_windows(windows)
        torch = self._torch
        feats, logits = [], []
        for start in range(0, len(windows), self.max_batch):
            chunk = torch.from_numpy(windows[start : start + self.max_batch])
            b = len(chunk)
            self._enc_in[:b].copy_(chunk, non_blocking=False)
            f, lg = self._enc_out["features"][:b], self._enc_out["logits"][:b]
            self.run_encoder(self._enc_ctx, self._enc_in[:b], f, lg)
            feats.append(f.cpu().numpy())
            logits.append(lg.cpu().numpy())
        return np.concatenate(feats), np.concatenate(logits)

    def sequence_step(self, features: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """One sequence step on host arrays; see :meth:`Engine.sequence_step`."""
        self._check_open()
        torch = self._torch
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self._device)
        s_in = [torch.from_numpy(np.ascontiguousarray(x)).to(self._device) for x in state]
        s_out = [torch.empty_like(x) for x in s_in]
        probs = torch.empty((len(f), self.num_behaviours), dtype=torch.float32, device=self._device)
        self.run_sequence(f, s_in, probs, s_out)
        return probs.cpu().numpy(), tuple(x.cpu().numpy() for x in s_out)

    def stream(self) -> FrameStream:
        """A stream with its own batch-1 encoder context and device buffers."""
        self._check_open()
        return TensorRTFrameStream(self)

    def describe(self) -> dict[str, Any]:
        """Backend, GPU, precision, TensorRT version and cache files; see :meth:`Engine.describe`."""
        return {
            "backend": self.name,
            "device": f"{self.gpu_name} (sm_{self.compute_capability.replace('.', '')})",
            "precision": self.precision,
            "tensorrt": self._trt.__version__,
            "max_batch": self.max_batch,
            "engine_cache": self.cache_files,
        }

    def _release(self) -> None:
        self._enc_ctx = self._seq_ctx = None
        self._enc_engine = self._seq_engine = None
        self._enc_in = None
        self._enc_out = {}
        self._runtime = None
        self._torch.cuda.empty_cache()


_TRT_DTYPES = {
    "DataType.FLOAT": "float32",
    "DataType.HALF": "float16",
    "DataType.UINT8": "uint8",
    "DataType.INT32": "int32",
    "DataType.INT64": "int64",
    "DataType.BOOL": "bool",
}


def fp16_onnx(model: bytes, source: Path) -> bytes:
    """The ONNX graph converted to FP16 inside, its inputs and outputs keeping their types.

    Uses ONNX Runtime's converter (``onnxruntime.transformers.float16``), which keeps the uint8 frame input and
    float32 outputs and casts at the boundaries.

    Raises:
        EngineUnavailableError: onnx / onnxruntime are not installed (needed for FP16 with TensorRT >= 10.12).
    """
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as err:
        raise EngineUnavailableError(
            "FP16 TensorRT engines are built from an FP16 copy of the ONNX graph, which needs onnx and onnxruntime: "
            "pip install onnx onnxruntime (or request precision='fp32')"
        ) from err
    graph = onnx.load_from_string(model)
    converted = convert_float_to_float16(graph, keep_io_types=True)
    log.info("TensorRT: converted %s to FP16 (inputs/outputs keep their types)", source.name)
    return converted.SerializeToString()


class TensorRTFrameStream(FrameStream):
    """A stream on the TensorRT engine: device ring of the last T frames, static window, ping-pong state.

    Each push uploads the frame once (pinned host staging -> ring slot), gathers the window in time order into a
    static input buffer, runs the batch-1 encoder (its own context on profile 0) whose ``features`` output buffer
    IS the sequence step's input (no copy), then the sequence step from state buffer A into B (swapped after).
    """

    def __init__(self, engine: TensorRTEngine):
        super().__init__(engine)
        torch = engine._torch
        self._torch = torch
        dev = engine._device
        t = engine.frames_per_window
        self._ctx = engine._enc_engine.create_execution_context()
        if self._ctx is None or not self._ctx.set_optimization_profile_async(0, engine._stream_handle):
            raise EngineError(f"TensorRT could not make a streaming context: {engine._logger.errors()}")
        self._ring = torch.zeros((t, *engine.frame_shape), dtype=torch.uint8, device=dev)
        self._window = torch.zeros((1, *engine.window_shape), dtype=torch.uint8, device=dev)
        self._order = torch.zeros(t, dtype=torch.long, device=dev)
        self._order_host = torch.empty(t, dtype=torch.long, pin_memory=True)
        self._staging = torch.empty(engine.frame_shape, dtype=torch.uint8, pin_memory=True)
        self._features = torch.zeros((1, engine.feature_size), dtype=torch.float32, device=dev)
        self._logits = torch.zeros((1, engine.num_behaviours), dtype=torch.float32, device=dev)
        self._probs = torch.zeros((1, engine.num_behaviours), dtype=torch.float32, device=dev)
        self._host_out = torch.empty(
            engine.feature_size + 2 * engine.num_behaviours, dtype=torch.float32, pin_memory=True
        )
        where = str(engine.bundle.directory)
        shapes = [
            (state_shape(s.shape, 1, where), getattr(torch, s.dtype)) for s in engine.bundle.manifest.sequence.state
        ]
        self._state_a = [torch.zeros(shape, dtype=dtype, device=dev) for shape, dtype in shapes]
        self._state_b = [torch.zeros(shape, dtype=dtype, device=dev) for shape, dtype in shapes]
        self.reset()

    def reset(self) -> None:
        """Start a new stream: empty window, zero state, count from 0."""
        for s in self._state_a:
            s.zero_()
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
            self._ring[0].copy_(self._staging, non_blocking=True)
            self._ring[1:].copy_(self._ring[:1].expand(t - 1, *engine.frame_shape))
            self._pos = 0
            self._order_host.fill_(0)
        else:
            self._pos = (self._pos + 1) % t
            self._ring[self._pos].copy_(self._staging, non_blocking=True)
            self._order_host.copy_(torch.arange(self._pos + 1, self._pos + 1 + t) % t)
        self._order.copy_(self._order_host, non_blocking=True)
        torch.index_select(self._ring, 0, self._order, out=self._window[0])
        torch.cuda.current_stream(engine._device).synchronize()
        t1 = time.perf_counter()
        engine.run_encoder(self._ctx, self._window, self._features, self._logits)
        torch.cuda.current_stream(engine._device).synchronize()
        t2 = time.perf_counter()
        engine.run_sequence(self._features, self._state_a, self._probs, self._state_b)
        self._state_a, self._state_b = self._state_b, self._state_a
        d, k = engine.feature_size, engine.num_behaviours
        self._host_out[:k].copy_(self._probs[0], non_blocking=True)
        self._host_out[k : 2 * k].copy_(self._logits[0], non_blocking=True)
        self._host_out[2 * k :].copy_(self._features[0], non_blocking=True)
        torch.cuda.current_stream(engine._device).synchronize()
        t3 = time.perf_counter()
        out = self._host_out.numpy()
        return StepResult(
            index=self._next_index(index),
            probs=out[:k].copy(),
            logits=out[k : 2 * k].copy(),
            features=out[2 * k : 2 * k + d].copy(),
            timings={"upload": t1 - t0, "encoder": t2 - t1, "sequence": t3 - t2, "total": t3 - t0},
        )


def _make_logger(trt):
    """A ``trt.ILogger`` that forwards to logging and keeps the last errors for exception messages."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self._errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self._errors = [*self._errors[-9:], msg]
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

        def errors(self) -> str:
            text = " | ".join(self._errors) or "no details logged"
            self._errors = []
            return text

    return Logger()
