"""What an engine's availability check may look at without loading a framework: CUDA devices and installed packages.

Probing never imports TensorRT (touching it without a GPU can crash the process): the CUDA device count comes
from the driver library, and packages are looked up in the installed distributions' metadata.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
from functools import lru_cache

INSTALL_HINTS = {
    "tensorrt": "pip install --extra-index-url https://pypi.nvidia.com tensorrt (on a machine with an NVIDIA GPU)",
    "torch": "pip install torch (see https://pytorch.org for a CUDA build)",
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu for the CUDA provider)",
}


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


def cuda_devices() -> tuple[str, ...]:
    """``("cuda:0", ...)`` for every CUDA device the driver reports."""
    return tuple(f"cuda:{i}" for i in range(cuda_device_count()))


def installed(module: str) -> str | None:
    """The installed distribution version of ``module`` without importing it, or None."""
    if importlib.util.find_spec(module) is None:
        return None
    for dist in (module, f"{module}-gpu", f"{module}-cu12", f"{module}_cu12"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown version"
