"""The per-element math headers shared by the CPU and CUDA kernels (csrc/common/math.h and
each op's math.h), compiled on their own with the host compiler: the vectorizable exp against
libm over a sweep of every float, the softmax state merge in every split order, the tie rule
(tests/cpp/math_header_check.cpp)."""

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_math_header(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "math_header_check"
    subprocess.run([cxx, "-O2", "-std=c++17", str(HERE / "cpp" / "math_header_check.cpp"),
                    "-o", str(exe)], check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
