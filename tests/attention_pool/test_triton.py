"""Triton-specific checks beyond the backend-parametrized suite: other tile configurations and
channel splits, int64 offsets, opcheck of the Triton ops, and native compilation for sm_80 /
sm_90 without a GPU (what the interpreter cannot check: lowering, tensor-core use, spills)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import check_against_reference, make_inputs
from helpers import HAS_GPU, require_backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fap():
    require_backend("triton", torch.float32)
    import fusedattn.ops.attention_pool.triton_kernels as module
    return module


@pytest.mark.parametrize("override", [
    dict(BC=16, BN=16, BNS=16, splits=1),   # many small tiles, one split
    dict(BC=16, BN=16, BNS=32, splits=3),   # uneven channel splits: gw summed over them
    dict(BC=32, BN=32, BNS=64, splits=2),
])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_tile_configurations(fap, monkeypatch, override, layout):
    original = fap.launch_config

    def forced(*args, **kwargs):
        cfg = original(*args, **kwargs)
        n_ctiles = -(-args[1] // override["BC"])
        cfg.update(override, splits=min(override["splits"], n_ctiles))
        return cfg

    monkeypatch.setattr(fap, "launch_config", forced)
    device = require_backend("triton", torch.bfloat16)
    for dtype in (torch.float32, torch.bfloat16):
        f, a = make_inputs(2, 50, 7, 9, 5, dtype=dtype, layout=layout, device=device)
        check_against_reference("triton", f, a)


@pytest.mark.parametrize("B, C, K", [(1, 200, 3), (3, 40, 8), (64, 8, 2)])
def test_launch_config_splits(fap, B, C, K):
    """Every channel tile belongs to exactly one split, none is empty."""
    class Gpu:
        type, index = "cuda", 0
    from fusedattn import _triton

    original = _triton.sm_count
    try:
        _triton.sm_count = lambda index: 132
        cfg = fap.launch_config(B, C, K, 400, torch.bfloat16, Gpu())
    finally:
        _triton.sm_count = original
    n_ctiles = -(-C // cfg["BC"])
    per_split = -(-n_ctiles // cfg["splits"])
    assert 1 <= cfg["splits"] <= n_ctiles and (cfg["splits"] - 1) * per_split < n_ctiles
    assert cfg["KP"] >= max(16, K) and cfg["BC"] >= 16 and cfg["BN"] >= 16


def test_int64_offsets_on_a_huge_strided_view():
    """A batch stride above 2^31 elements: every offset must be computed in int64. The view
    spans 4.3 GB of address space but touches a few pages (torch.empty is not initialized)."""
    device = require_backend("triton", torch.float16)
    if device.type != "cpu":
        pytest.skip("the interpreter variant of this test; GPUs run test_int64_offsets_gpu")
    B, C, N, K = 2, 5, 12, 3
    batch_stride = 2**31 + 64
    storage = torch.empty(batch_stride + C * N, dtype=torch.float16)
    f = storage.as_strided((B, C, N), (batch_stride, N, 1))
    dense_f, a = make_inputs(B, C, 3, 4, K, dtype=torch.float16, layout="3d")
    f.copy_(dense_f)
    a_storage = torch.empty(batch_stride + K * N, dtype=torch.float16)
    a_huge = a_storage.as_strided((B, K, N), (batch_stride, N, 1))
    a_huge.copy_(a)
    check_against_reference("triton", f, a_huge)


def test_opcheck_triton_ops(fap):
    device = require_backend("triton", torch.float32)
    for layout in ("3d", "channels_last"):
        f, a = make_inputs(2, 7, 3, 5, 3, layout=layout, device=device)
        f, a = f.flatten(2), a.flatten(2)
        args = (f.requires_grad_(), a.requires_grad_(), "sum", True)
        torch.library.opcheck(fap.attention_pool_fwd, args)
        pooled, s, d, lse = fap.attention_pool_fwd(f.detach(), a.detach(), "sum", True)
        torch.library.opcheck(fap.attention_pool_bwd, (
            torch.randn_like(pooled), torch.randn_like(s), torch.randn_like(d), f.detach(),
            a.detach(), s, lse, "mean"))


def test_backward_is_deterministic(fap):
    device = require_backend("triton", torch.float32)
    f, a = make_inputs(2, 70, 5, 5, 4, device=device)
    runs = []
    for _ in range(2):
        fr, ar = f.clone().requires_grad_(), a.clone().requires_grad_()
        out = fusedattn.attention_pool(fr, ar, backend="triton")
        (out.pooled.square().sum() + out.diversity.sum()).backward()
        runs.append((fr.grad, ar.grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("arch", ["80", "90"])
def test_kernels_compile_for_gpu_without_a_gpu(arch):
    """Every kernel x dtype x layout compiles for the arch (Triton's bundled ptxas); 16-bit
    variants use tensor-core mma; nothing spills registers (float32 at most a few bytes)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "attention_pool" / "triton_compile.py"), arch],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    errors = [r for r in rows if "error" in r]
    assert proc.returncode == 0 and rows and not errors, (errors or proc.stderr[-3000:])
    for r in rows:
        if "logits" not in r["kernel"] and "float32" not in r["kernel"]:
            assert r["mma"], f"{r['kernel']}: no tensor-core mma in the PTX"
        limit = 64 if "float32" in r["kernel"] else 0
        assert r.get("spill_stores", 0) <= limit, f"{r['kernel']} spills: {r}"


def test_more_maps_than_the_tiles_hold(fap):
    device = require_backend("triton", torch.float32)
    f, a = make_inputs(2, 8, 3, 3, 65, device=device)
    with pytest.raises(fusedattn.BackendUnavailableError, match="at most 64 attention maps"):
        fusedattn.attention_pool(f, a, backend="triton")
