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

import logging
from typing import TYPE_CHECKING, Any

from camera_adapters.plugins import Availability, Registry
from deg_live.engines.base import Engine, EngineError, EngineUnavailableError
from deg_live.engines.probing import INSTALL_HINTS, cuda_device_count

if TYPE_CHECKING:
    from deg_live.bundle import Bundle

log = logging.getLogger(__name__)

__all__ = [
    "CPU_PREFERENCE",
    "ENGINES",
    "INSTALL_HINTS",
    "Availability",
    "choose_auto",
    "create_engine",
    "cuda_device_count",
    "engine_class",
    "list_engines",
    "probe",
    "probe_all",
    "register_engine",
]


def _check_engine(cls: type[Engine]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"{cls!r} is not a subclass of deg_live.engines.Engine")


#: Every engine by name (the plug-in pattern of :mod:`camera_adapters.plugins`). Registered by ``"module:Class"``:
#: a module is imported only when its engine is used or probed, and importing it loads no framework.
ENGINES: Registry[type[Engine]] = Registry("engine", EngineError, also=("auto",), check=_check_engine)
ENGINES.add("deg_live.engines.tensorrt_engine:TensorRTEngine", "tensorrt")
ENGINES.add("deg_live.engines.torch_engine:TorchEngine", "torch")
ENGINES.add("deg_live.engines.onnxruntime_engine:OnnxRuntimeEngine", "onnxruntime")

# CPU engines, fastest first, measured at batch 1 for the deg_f encoder at 128x128 on the reference CPU (AMD EPYC
# with avx512_bf16; docs/engines.md has the table and the command). torch bf16 was ~1.5x faster than ONNX Runtime
# fp32 and within tolerance (probabilities within 0.003, features within 0.6 %), so it comes first where the CPU
# has native bf16; then ONNX Runtime, then torch fp32. ``auto`` takes the first that is installed and usable.
CPU_PREFERENCE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("torch", {"device": "cpu", "precision": "bf16"}),
    ("onnxruntime", {}),
    ("torch", {"device": "cpu"}),
)


def list_engines() -> list[str]:
    """The registered engine names."""
    return ENGINES.names()


def register_engine(name: str, target: str | type[Engine]) -> None:
    """Register an engine class, or a ``"module:Class"`` path imported when the engine is first used."""
    ENGINES.add(target, name)


def engine_class(name: str) -> type[Engine]:
    """The engine class registered under ``name`` (imports its module).

    Raises:
        EngineError: unknown name (lists the known ones).
        EngineUnavailableError: its module cannot be imported (with the install command).
    """
    try:
        return ENGINES.get(name)
    except ImportError as err:  # pragma: no cover - the engine modules import their frameworks lazily
        hint = INSTALL_HINTS.get(name, "")
        raise EngineUnavailableError(f"the {name} engine cannot be loaded ({err}); {hint}") from err


def probe(name: str) -> Availability:
    """Whether engine ``name`` can run here (its class's ``availability()``); never raises, never imports TensorRT."""
    return ENGINES.availability(name)


def probe_all() -> dict[str, Availability]:
    """:func:`probe` for every registered engine."""
    return {a.name: a for a in ENGINES.available()}


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
    if backend not in ENGINES:
        raise ENGINES.unknown(backend)
    availability = probe(backend)
    if not availability.available:
        raise EngineUnavailableError(f"the {backend} engine is not usable here: {availability.reason}")
    cls = engine_class(backend)
    return cls(bundle, **options)
