"""csrc/common/cuda/tile.cuh (the shared tiles, copies and warp products every tiled CUDA
kernel builds on) in the CPU emulation of the CUDA execution model, plain and under
AddressSanitizer + UBSan: tests/emulation/tiles_check.cpp checks one warp's 16 x 8 x 16 product
in every orientation (ldmatrix + mma.sync for bf16 and f16, FMAs for float, against a host
product) and the tile and span copies with their zero-filled edges."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_HOME = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda-13.0")
FLAVORS = {"plain": [], "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                                 "-fno-sanitize-recover=undefined"]}


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_tiles_in_the_emulation(flavor, tmp_path):
    if shutil.which("g++") is None or not (CUDA_HOME / "include" / "cuda_fp16.h").exists():
        pytest.skip(f"needs g++ and the CUDA headers (CUDA_HOME={CUDA_HOME})")
    exe = tmp_path / "tiles_check"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", "-DFUSEDATTN_CUDA_EMULATION",
                    "-Wno-unknown-pragmas", f"-I{ROOT / 'csrc'}", f"-I{CUDA_HOME / 'include'}",
                    *FLAVORS[flavor], str(ROOT / "tests" / "emulation" / "tiles_check.cpp"),
                    str(ROOT / "csrc" / "common" / "emulation" / "emulator.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ASAN_OPTIONS": "halt_on_error=1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count(": ok") == 8, proc.stdout
