"""What a run's numbers depend on besides its config: package versions, source revision, platform.

Recorded in ``config.json`` when a run starts; a resume compares the versions and notes changes.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from pathlib import Path
from typing import Any

__all__ = ["platform_info", "source_revision", "versions"]

_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "numpy",
    "minari",
    "gymnasium",
    "gymnasium-robotics",
    "mujoco",
    "fdivrl",
)


def versions() -> dict[str, str | None]:
    """Installed versions of python and the packages that decide a run's numbers (None: absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["fdivrl"] is None:
        from fdivrl import __version__

        out["fdivrl"] = __version__
    out["fdivrl_source"] = source_revision()
    return out


def source_revision() -> str | None:
    """The git commit fdivrl runs from ("<sha>+changes" when its tracked files differ from it), or
    None when it is not a git checkout (an installed wheel)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        # no timeout: Popen.wait(timeout) polls with time.sleep, which tests patch; git here is local
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+changes" if dirty else sha


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


# the vector extensions XLA's CPU code and MuJoCo's build choose between: float results, and so the
# stand-ins the walker generates, can differ between CPUs that differ in them
_ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu_model() -> dict[str, Any]:
    """The CPU's model name and the vector extensions of _ISA_FLAGS it has (from Linux's /proc/cpuinfo,
    first processor; x86 names them "flags", Arm "Features"); empty where there is no such file."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return {}
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or platform.processor() or None
    return {"cpu_model": model, "cpu_isa": [f for f in _ISA_FLAGS if f in flags]}


def platform_info() -> dict[str, Any]:
    """Where the run ran: OS, CPU, host and the JAX backend (numbers differ across backends)."""
    info: dict[str, Any] = {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        # XLA sizes its CPU thread pool to these, and float sums split over another number of threads
        # differ in the last bits: bench --workers pins each run to a share of the machine
        "cpus_usable": len(usable_cpus()),
        **cpu_model(),
    }
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [d.device_kind for d in jax.devices()]
    except Exception as exc:  # a broken accelerator setup must not stop the run from being recorded
        info["jax_backend"] = f"unavailable: {exc}"
    return info
