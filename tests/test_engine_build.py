"""The embedded model's engine build (scripts/engine.py): compiled per CPU, without the AMX
kernels that die with SIGILL, and checked before the install counts as done."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
X86 = platform.machine().lower() in {"x86_64", "amd64"}


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("engine_script", ROOT / "scripts" / "engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pinned_version_is_the_installed_one() -> None:
    import llama_cpp

    assert _script().pinned_version() == llama_cpp.__version__


def test_a_build_is_keyed_by_the_cpu_and_the_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _script()
    monkeypatch.setattr(engine, "_cpu_flags", lambda: "fpu sse2 avx2")
    first = engine.build_key("0.3.36", "native")
    assert engine.build_key("0.3.36", "native") == first
    assert engine.build_key("0.3.36", "portable") != first
    assert engine.build_key("0.3.37", "native") != first
    monkeypatch.setattr(engine, "_cpu_flags", lambda: "fpu sse2 avx2 avx512f amx_tile")
    assert engine.build_key("0.3.36", "native") != first
    # A portable build runs on any CPU of its kind: the CPU it was built on does not matter.
    portable = engine.build_key("0.3.36", "portable")
    monkeypatch.setattr(engine, "_cpu_flags", lambda: "fpu sse2 avx2")
    assert engine.build_key("0.3.36", "portable") == portable


@pytest.mark.skipif(not X86, reason="AMX is an x86-64 extension")
def test_a_native_build_leaves_the_amx_kernels_out() -> None:
    flags = _script().build_env("native")
    for flag in ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"):
        assert flag in flags["CFLAGS"].split() and flag in flags["CXXFLAGS"].split()
    assert "GGML_NATIVE=OFF" in _script().build_env("portable")["CMAKE_ARGS"]


@pytest.mark.skipif(not X86 or shutil.which("objdump") is None, reason="needs objdump on x86-64")
def test_the_installed_engine_has_no_amx_instructions() -> None:
    import llama_cpp

    libraries = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu*.so*"))
    assert libraries, "llama_cpp ships no libggml-cpu library"
    for library in libraries:
        listing = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(library)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tilezero" not in listing and "tdpbssd" not in listing, library


def test_the_check_runs_a_reply_through_the_embedded_model() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "engine.py"), "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "embedded model check: " in done.stdout and " tokens: " in done.stdout
