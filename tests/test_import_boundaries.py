"""The architecture's import rules (docs/architecture.md, "The house"): who may import whom, and what needs no torch.

The torch-free checks run in fresh interpreters (a camera or stimulus PC needs no torch); the package table is
checked on the source (every import statement, also those inside functions).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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
    "deg_live.windows",
    "deg_live.labels",
    "deg_live.outputs",
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


# The table of docs/architecture.md: each part of deg_train and the parts of deg_train it may import. Imports run one
# way (project and models at the bottom, the commands on top); camera_adapters is open to all.
DEG_TRAIN_MAY_IMPORT = {
    "project": set(),
    "models": set(),
    "inference": {"project", "models"},
    "evaluation": {"project", "models", "inference"},
    "training": {"project", "models", "inference", "evaluation"},
    "export": {"project", "models", "inference", "training"},
    "recipe": {"project", "models", "inference", "evaluation", "training"},
    "studio": {"project"},
    "commands": {"project", "models", "inference", "evaluation", "training", "export", "recipe", "studio"},
    "cli": {"commands"},
}
#: deg_live's torch-free modules deg_train shares (formats and rules both sides must agree on).
DEG_LIVE_SHARED = {
    "deg_live",
    "deg_live.bundle",
    "deg_live.events",
    "deg_live.postprocess",
    "deg_live.windows",
    "deg_live.labels",
    "deg_live.outputs",
}


#: The studio is a window: it may also use the viewer's torch-free drawing and widgets (one FrameBox, one ethogram).
DEG_LIVE_GUI_FOR = {"studio": ("deg_live.viewer",)}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _part(path: Path) -> str:
    rel = path.relative_to(ROOT / "deg_train").with_suffix("")
    return rel.parts[0]


def test_deg_train_parts_import_one_way():
    bad = []
    for path in sorted((ROOT / "deg_train").rglob("*.py")):
        part = _part(path)
        if part == "__init__":
            continue
        assert part in DEG_TRAIN_MAY_IMPORT, f"{path}: a new part of deg_train; add it to the table and the docs"
        for name in _imports(path):
            pieces = name.split(".")
            if pieces[0] == "deg_train" and len(pieces) > 1 and pieces[1] != part:
                if pieces[1] not in DEG_TRAIN_MAY_IMPORT[part]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
            elif pieces[0] == "deg_live" and name not in DEG_LIVE_SHARED:
                if any(name == g or name.startswith(g + ".") for g in DEG_LIVE_GUI_FOR.get(part, ())):
                    continue
                bad.append(f"{path.relative_to(ROOT)} imports {name} (deg_train may use deg_live's shared modules)")
    assert not bad, "\n".join(bad)


def test_deg_live_never_imports_deg_train():
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "deg_live").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] == "deg_train"
    ]
    assert not bad, "\n".join(bad)


def test_project_part_needs_no_torch():
    code = (
        "import sys, deg_train.project\n"
        "print(','.join(sorted(m for m in ('torch', 'deg_train.models', 'deg_train.training') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing deg_train.project pulled in {out.stdout.strip()}"
