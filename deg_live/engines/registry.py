"""Engines by name, safe availability probing, and the ``auto`` choice.

``create_engine(bundle, backend)`` with ``backend`` one of :func:`list_engines` (``onnxruntime``, ``torch``,
``tensorrt``) or ``"auto"``:

1. ``tensorrt`` when a CUDA device exists and TensorRT is installed (the preferred live path);
2. else ``torch`` on CUDA when a CUDA device exists and torch was built with CUDA;
3. else the fastest CPU engine measured on this project's reference CPU within tolerance (see
   ``CPU_PREFERENCE`` and docs/engines.md): torch bf16 where the CPU has native bf16, else ONNX Runtime, else
   torch fp32 — falling back along that list to whatever is installed and fits the bundle.

Each step is logged with its reason. Probing never imports TensorRT (touching it without a GPU can crash the
process): it checks for a CUDA device through the driver library first and only looks the package up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from deg_live.engines.base import Engine, EngineError, EngineUnavailableError

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)

# name -> "module:Class"; modules are imported only when that engine is used or probed for its class.
_ENGINES: dict[str, str] = {
    "tensorrt": "deg_live.engines.tensorrt_engine:TensorRTEngine",
    "torch": "deg_live.engines.torch_engine:TorchEngine",
    "onnxruntime": "deg_live.engines.onnxruntime_engine:OnnxRuntimeEngine",
}

# CPU engines, fastest first, measured at batch 1 for the deg_f encoder at 128x128 on the reference CPU (AMD EPYC
# with avx512_bf16; docs/engines.md has the table and the command). torch bf16 was ~1.5x faster than ONNX Runtime
# fp32 and within tolerance (probabilities within 0.003, features within 0.6 %), so it comes first where the CPU
# has native bf16; then ONNX Runtime, then torch fp32. ``auto`` takes the first that is installed and usable.
CPU_PREFERENCE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("torch", {"device": "cpu", "precision": "bf16"}),
    ("onnxruntime", {}),
    ("torch", {"device": "cpu"}),
)

INSTALL_HINTS = {
    "tensorrt": "pip install --extra-index-url https://pypi.nvidia.com tensorrt (on a machine with an NVIDIA GPU)",
    "torch": "pip install torch (see https://pytorch.org for a CUDA build)",
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu for the CUDA provider)",
}


@dataclass(frozen=True)
class Availability:
    """Whether an engine can run here, and why not.

    Attributes:
        name: the engine's registry name.
        available: installed and has a device to run on.
        devices: what it could run on (``["cpu"]``, ``["cuda:0"]``...).
        reason: a human-readable explanation (what is missing and how to install it, or what was found).
    """

    name: str
    available: bool
    devices: tuple[str, ...]
    reason: str


def list_engines() -> list[str]:
    """The registered engine names."""
    return list(_ENGINES)


def register_engine(name: str, target: str) -> None:
    """Register an engine class by ``"module:Class"`` path (imported lazily)."""
    _ENGINES[name] = target


def engine_class(name: str) -> type[Engine]:
    """The engine class registered under ``name`` (imports its module).

    Raises:
        EngineError: unknown name (lists the known ones).
        EngineUnavailableError: its framework is not installed (with the install command).
    """
    if name not in _ENGINES:
        raise EngineError(f"unknown engine {name!r}; known engines: auto, {', '.join(_ENGINES)}")
    module_name, _, cls_name = _ENGINES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:  # pragma: no cover - the engine modules import their frameworks lazily
        hint = INSTALL_HINTS.get(name, "")
        raise EngineUnavailableError(f"the {name} engine cannot be loaded ({err}); {hint}") from err
    return getattr(module, cls_name)


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices, found through the driver library (no torch, no TensorRT); 0 when none.

    Loading ``libcuda`` and calling ``cuInit``/``cuDeviceGetCount`` is safe on machines without a GPU: the library
    is missing or the call returns an error code.
    """
    names = [ctypes.util.find_library("cuda"), "libcuda.so.1", "libcuda.so", "nvcuda.dll"]
    for lib_name in filter(None, names):
        try:
            lib = ctypes.CDLL(lib_name)
        except OSError:
            continue
        try:
            if lib.cuInit(0) != 0:
                return 0
            count = ctypes.c_int(0)
            if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
            return int(count.value)
        except (AttributeError, OSError):  # pragma: no cover - an odd libcuda
            return 0
    return 0


def _installed(module: str) -> str | None:
    """The installed distribution version of ``module`` without importing it, or None."""
    if importlib.util.find_spec(module) is None:
        return None
    for dist in (module, f"{module}-gpu", f"{module}-cu12", f"{module}_cu12"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown version"


def probe(name: str) -> Availability:
    """Whether engine ``name`` can run here; never raises and never imports TensorRT."""
    try:
        return _probe(name)
    except Exception as err:  # probing must never take the process down
        return Availability(name, False, (), f"probing failed: {err}")


def _probe(name: str) -> Availability:
    if name not in _ENGINES:
        return Availability(name, False, (), f"unknown engine; known: {', '.join(_ENGINES)}")
    gpus = cuda_device_count()
    cuda_devices = tuple(f"cuda:{i}" for i in range(gpus))
    if name == "tensorrt":
        if gpus == 0:
            reason = f"no CUDA device found: TensorRT needs an NVIDIA GPU; there, {INSTALL_HINTS[name]}"
            return Availability(name, False, (), reason)
        version = _installed("tensorrt")
        if version is None:
            return Availability(name, False, (), f"TensorRT is not installed: {INSTALL_HINTS[name]}")
        if _installed("torch") is None:
            reason = "the TensorRT engine uses torch CUDA tensors as buffers: pip install torch"
            return Availability(name, False, (), reason)
        return Availability(name, True, cuda_devices, f"TensorRT {version}, {gpus} CUDA device(s)")
    if name == "torch":
        version = _installed("torch")
        if version is None:
            return Availability(name, False, (), f"torch is not installed: {INSTALL_HINTS[name]}")
        if gpus:
            import torch  # only here, when asked about the torch engine

            if torch.cuda.is_available():
                return Availability(name, True, ("cpu", *cuda_devices), f"torch {version} with CUDA")
            return Availability(name, True, ("cpu",), f"torch {version} without CUDA support (CPU only)")
        return Availability(name, True, ("cpu",), f"torch {version}, no CUDA device (CPU only)")
    if name == "onnxruntime":
        version = _installed("onnxruntime")
        if version is None:
            return Availability(name, False, (), f"ONNX Runtime is not installed: {INSTALL_HINTS[name]}")
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        devices = ("cpu", *cuda_devices) if gpus and "CUDAExecutionProvider" in providers else ("cpu",)
        return Availability(name, True, devices, f"onnxruntime {version}, providers {', '.join(providers)}")
    return Availability(name, True, ("cpu",), "registered engine (not probed)")


def probe_all() -> dict[str, Availability]:
    """:func:`probe` for every registered engine."""
    return {name: probe(name) for name in _ENGINES}


def _cpu_candidate_usable(name: str, options: dict[str, Any], bundle: Bundle | None) -> str | None:
    """Why a CPU candidate cannot be used here (None if it can)."""
    # What the bundle lacks is checked before what this machine lacks, so the reason a candidate is passed over
    # reads the same on every CPU.
    if name == "torch" and bundle is not None and bundle.model_file("encoder", "torch") is None:
        return "the bundle has no torch exported program (.pt2)"
    av = probe(name)
    if not av.available:
        return av.reason
    if options.get("precision") == "bf16":
        from deg_live.engines.torch_engine import cpu_has_bf16

        if not cpu_has_bf16():
            return "this CPU has no native bf16 (avx512_bf16/amx_bf16)"
    return None


def choose_auto(bundle: Bundle | None = None) -> tuple[str, dict[str, Any], str]:
    """What ``auto`` picks here for ``bundle``: ``(engine name, options, reason)``."""
    trt = probe("tensorrt")
    if trt.available:
        return "tensorrt", {}, f"TensorRT is usable ({trt.reason})"
    torch_av = probe("torch")
    has_pt2 = bundle is None or bundle.model_file("encoder", "torch") is not None
    if torch_av.available and has_pt2 and any(d.startswith("cuda") for d in torch_av.devices):
        return "torch", {"device": "cuda"}, f"torch on CUDA (TensorRT not usable: {trt.reason})"
    skipped = []
    for name, options in CPU_PREFERENCE:
        why_not = _cpu_candidate_usable(name, options, bundle)
        label = name + (f" {options['precision']}" if "precision" in options else "")
        if why_not is None:
            passed = f"; skipped {'; '.join(skipped)}" if skipped else ""
            reason = (
                f"no usable GPU engine ({trt.reason}); {label} is the fastest CPU engine measured for this "
                f"project within tolerance (docs/engines.md){passed}"
            )
            return name, dict(options), reason
        skipped.append(f"{label}: {why_not}")
    raise EngineUnavailableError(
        "no inference engine is installed; install one of: " + "; ".join(INSTALL_HINTS.values())
    )


def create_engine(bundle: Bundle, backend: str = "auto", **options: Any) -> Engine:
    """Construct an engine for ``bundle``.

    Args:
        bundle: a bundle from :func:`deg_live.bundle.read_bundle`.
        backend: an engine name (:func:`list_engines`) or ``"auto"`` (see the module docstring).
        **options: passed to the engine (``device``, ``precision`` and backend options). With ``auto``,
            options the pick does not set are passed through.

    Raises:
        EngineError: unknown backend (lists the known ones) or options it does not take.
        EngineUnavailableError: the backend is not installed or has no device here (with what to install).
    """
    if backend == "auto":
        backend, picked, reason = choose_auto(bundle)
        log.info("engine auto: chose %s (%s)", backend, reason)
        options = {**picked, **options}
    if backend not in _ENGINES:
        raise EngineError(f"unknown engine {backend!r}; known engines: auto, {', '.join(_ENGINES)}")
    availability = probe(backend)
    if not availability.available:
        raise EngineUnavailableError(f"the {backend} engine is not usable here: {availability.reason}")
    cls = engine_class(backend)
    return cls(bundle, **options)
