"""The architecture's import rules, checked in fresh interpreters (a camera or stimulus PC needs no torch)."""

import subprocess
import sys

import pytest

NO_TORCH_MODULES = [
    "camera_adapters",
    "camera_adapters.wire",
    "camera_adapters.video",
    "camera_adapters.settings",
    "camera_adapters.subscriber",
    "camera_adapters.publisher",
    "camera_adapters.sources",
    "deg_live.postprocess",
    "deg_live.engines",
    "deg_live.pipeline",
    "deg_live.viewer",
    "deg_live",
    "deg_live.bundle",
    "deg_live.events",
]


@pytest.mark.parametrize("module", NO_TORCH_MODULES)
def test_module_does_not_import_torch(module):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'kornia', 'deg_train') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if "ModuleNotFoundError" in out.stderr and f"'{module}'" in out.stderr:
        pytest.fail(f"{module} does not exist yet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} pulled in {out.stdout.strip()}"


def test_camera_adapters_never_imports_upper_layers():
    code = (
        "import pkgutil, importlib, sys, camera_adapters\n"
        "for m in pkgutil.walk_packages(camera_adapters.__path__, 'camera_adapters.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'deg_train', 'deg_live'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
