"""DeepEthogram 0.5's own environment and the machine, for the benchmarks that measure against it.

DeepEthogram is never a dependency of ours: it lives in a virtual environment of its own (``--peer-venv`` or
``$DEG_PEER_VENV``), which :func:`install_peer` creates as ``../shared/peer/README.md`` says (uv,
``deepethogram==0.5.0``, the CPU patch). Both ``accuracy_vs_deepethogram.py`` and ``speed_vs_deepethogram.py``
import these helpers; nothing here imports torch or our packages.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine_description() -> dict:
    """CPU model, logical cores, the vector ISA flags /proc/cpuinfo lists (names the machine in the output)."""
    model = ""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
    }
    try:
        info["load_average_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def run_logged(cmd: list[str], logfile: Path, env: dict | None = None, cwd: Path | None = None) -> float:
    """Run ``cmd`` with stdout and stderr appended to ``logfile``; return its wall time in seconds."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log(f"running: {' '.join(cmd)}  (log: {logfile})")
    start = time.time()
    with open(logfile, "a") as f:
        f.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    wall = time.time() - start
    if rc != 0:
        tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"command failed (exit {rc}) after {wall:.0f} s: {' '.join(cmd)}\n--- {logfile}:\n{tail}")
    log(f"done in {wall / 60:.1f} min")
    return wall


def peer_python(peer_venv: Path | None) -> Path:
    """The DeepEthogram venv's interpreter, or one clear error saying how to name or make the venv."""
    if peer_venv is None:
        raise SystemExit("no DeepEthogram venv given: use --peer-venv PATH, set DEG_PEER_VENV, or add --install-peer")
    py = peer_venv / "bin" / "python"
    if not py.is_file():
        raise SystemExit(
            f"no DeepEthogram venv at {peer_venv} (give --peer-venv PATH, set DEG_PEER_VENV, or use --install-peer)"
        )
    return py


def check_peer(peer_venv: Path | None) -> Path:
    """:func:`peer_python`, and that DeepEthogram imports there; one clear error otherwise."""
    py = peer_python(peer_venv)
    probe = subprocess.run(
        [str(py), "-c", "import deepethogram, torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(
            f"the venv {peer_venv} has no working DeepEthogram ({last}); install it there with --install-peer "
            "or as ../shared/peer/README.md says"
        )
    return py


def install_peer(peer_venv: Path, patch: Path, logs: Path) -> None:
    """Create DeepEthogram's venv as ../shared/peer/README.md says (uv, its own environment, CPU patch)."""
    logfile = logs / "deepethogram_install.log"
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("--install-peer needs uv on PATH")
    if peer_venv.resolve().is_relative_to(REPO):
        raise SystemExit("the DeepEthogram venv must live outside the repository")
    env = dict(os.environ, VIRTUAL_ENV=str(peer_venv))
    if not (peer_venv / "bin" / "python").is_file():
        run_logged([uv, "venv", str(peer_venv), "--python", "3.11"], logfile)
    lock = patch.parent / "requirements-peer.lock.txt"
    reqs = ["-r", str(lock)] if lock.is_file() else ["deepethogram==0.5.0", "matplotlib<3.8"]
    run_logged([uv, "pip", "install", *reqs], logfile, env=env)
    run_logged([uv, "pip", "install", "setuptools<70"], logfile, env=env)
    py = str(peer_venv / "bin" / "python")
    site = subprocess.check_output([py, "-c", "import site;print(site.getsitepackages()[0])"], text=True).strip()
    run_logged([py, str(patch), site], logfile)


def default_peer_venv() -> Path | None:
    """``$DEG_PEER_VENV`` as a path, or None."""
    return Path(os.environ["DEG_PEER_VENV"]) if os.environ.get("DEG_PEER_VENV") else None


DEFAULT_PEER_PATCH = REPO.parent / "shared" / "peer" / "apply_cpu_patch.py"
