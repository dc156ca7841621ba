"""CUDA-backend checks beyond the backend-parametrized suite. Without a GPU the tests that need
only the kernels' logic (determinism, agreement with Triton, the K fallback) run the CUDA code
in the CPU emulation of the CUDA execution model; the build check confirms CI compiled the CUDA
sources for sm_80 and sm_90; graph capture and > 2^31 elements need a GPU."""

import json
import os
import subprocess
import sys

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import check_against_reference, make_inputs
from helpers import CUDA_EMULATED, HAS_GPU, require_backend


def needs_gpu(fn):
    return pytest.mark.gpu(pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")(fn))


@pytest.mark.skipif(os.environ.get("FUSEDATTN_EXPECT_CUDA_BUILD") != "1",
                    reason="set by `make test` where nvcc is present")
def test_cuda_kernels_were_compiled_and_registered():
    """A machine with nvcc must build the CUDA kernels (a silent CPU-only build fails this)."""
    from fusedattn import _library

    assert _library.load_error() is None, _library.load_error()
    info = fusedattn.build_info()
    assert info["cuda_built"], info
    # The archs `make` asked for (FUSEDATTN_CUDA_ARCHS: 8.0;9.0 by default, 9.0 in CI).
    wanted = os.environ.get("FUSEDATTN_CUDA_ARCHS", "8.0;9.0").replace(",", ";").split(";")
    assert {a.replace("+PTX", "") for a in wanted if a} <= set(info["cuda_archs_sass"]), info
    for op in ("fusedattn::attention_pool_fwd", "fusedattn::attention_pool_bwd"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"), op


# Channel splits, K = 33 and K = 64, a 56x56 map; smaller in the emulation (the same loops).
DETERMINISM_CASES = ([(3, 130, 20, 20, 8), (1, 160, 7, 7, 33), (2, 16, 56, 56, 64)] if CUDA_EMULATED
                     else [(3, 130, 20, 20, 8), (1, 1024, 7, 7, 33), (2, 64, 56, 56, 64)])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("case", DETERMINISM_CASES)
def test_backward_is_bitwise_deterministic(case, dtype, layout):
    device = require_backend("cuda", dtype)
    f, a = make_inputs(*case, dtype=dtype, layout=layout, device=device)
    grads = []
    for _ in range(3):
        fr, ar = f.clone().requires_grad_(), a.clone().requires_grad_()
        out = fusedattn.attention_pool(fr, ar, backend="cuda")
        (out.pooled.float().square().sum() + out.importance.sum() + out.diversity.sum()).backward()
        grads.append((out.pooled, out.diversity, fr.grad, ar.grad))
    for later in grads[1:]:
        for x, y in zip(grads[0], later):
            assert torch.equal(x, y)


@pytest.mark.parametrize("case", [(4, 96, 20, 20, 8), (2, 40, 7, 9, 33)] + (
    [] if CUDA_EMULATED else [(1, 1024, 20, 20, 8)]))
def test_agrees_with_triton(case):
    device = require_backend("cuda", torch.bfloat16)
    require_backend("triton", torch.bfloat16)
    f, a = make_inputs(*case, dtype=torch.bfloat16, device=device)
    cuda, (cgf, cga) = check_against_reference("cuda", f, a)
    tri, (tgf, tga) = check_against_reference("triton", f, a)
    for x, y in zip((*cuda, cgf, cga), (*tri, tgf, tga)):
        torch.testing.assert_close(x.float(), y.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("K", [64, 65, 130])
def test_any_number_of_maps(K):
    """The kernels tile over the maps: K past one group of 64 (two and three groups, and the
    separate gf launch they need) runs on the cuda backend and matches the reference."""
    device = require_backend("cuda", torch.float32)
    for dtype in (torch.float32, torch.bfloat16):
        for layout in ("contiguous", "channels_last"):
            f, a = make_inputs(2, 70, 5, 8, K, dtype=dtype, layout=layout, device=device)
            check_against_reference("cuda", f, a)
    shape_class = fusedattn.backends.shape_class("attention_pool", (K,))
    assert fusedattn.backends.choose("attention_pool", "cuda", f.device, f.dtype,
                                     shape_class) == "cuda"


@pytest.mark.parametrize("hw", [57, 58])
def test_stats_logit_cache_either_side_of_its_size(hw):
    """"stats" keeps a sample's logits in shared memory between its passes up to 64 KB
    (kStatsCacheBytes): float32, K = 5 puts 57x57 (64,980 bytes) inside and 58x58 (67,280)
    outside; both must match the reference, in both layouts."""
    device = require_backend("cuda", torch.float32)
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(1, 17, hw, hw, 5, dtype=torch.float32, layout=layout, device=device)
        check_against_reference("cuda", f, a)


def _plan(B, C, K, N, element_size, strides=None, sm_count=132):
    """The CUDA plans (plan_dump) of a call, dense NCHW unless strides (sb, sc, sn) are given."""
    from fusedattn.sass_report import report
    program = report.plan_program(report.op_reports()["attention_pool"])
    # plan_dump B C K N element_size sb sc sn sm_count
    args = [B, C, K, N, element_size, *(strides or (C * N, N, 1)), sm_count]
    return json.loads(subprocess.run([str(program), *map(str, args)], check=True,
                                     capture_output=True, text=True).stdout)


def _launched(plan, part):
    return {launch["name"] for launch in plan[part] if launch["grid"][0] > 0}


def _backward_launches(B, C, K, N, element_size=4):
    """The backward launches the plan makes for a dense NCHW call."""
    return _launched(_plan(B, C, K, N, element_size), "backward")


@pytest.mark.parametrize("K", [3056, 3057])
def test_one_launch_epilogue_either_side_of_its_shared_memory(K):
    """Where a sample's pixels fit one block, the backward's gather and logits are one launch
    whose shared memory (its one warp's sums, 64 floats, and the per-map sums, 4 K floats) stays
    within 48 KB (K = 3056 at 4 pixels); past that (3057) the two launches take over. Both must
    match the reference."""
    device = require_backend("cuda", torch.float32)
    f, a = make_inputs(1, 8, 2, 2, K, device=device)
    check_against_reference("cuda", f, a)
    launched = _backward_launches(1, 8, K, 4)
    assert ("epilogue" in launched) == (K == 3056)
    assert ("gather" in launched and "logits" in launched) == (K == 3057)


@pytest.mark.parametrize("hw,K", [((16, 32), 8), ((19, 27), 8), ((15, 17), 33), ((16, 32), 33),
                                  ((19, 27), 33)],
                         ids=["512px-K8", "513px-K8", "255px-K33", "512px-K33", "513px-K33"])
def test_one_launch_epilogue_up_to_512_pixels(hw, K):
    """"epilogue" (a thread a pixel, a block a sample) up to 512 pixels, whether a pixel's maps
    are held in registers (K <= 8) or loaded in batches (K = 33; a short last warp at 255); else
    "gather" and "logits" over pixel tiles (test_epilogue_pixel_tiles). Both must match the
    reference, in both layouts."""
    device = require_backend("cuda", torch.float32)
    N = hw[0] * hw[1]
    one_launch = N <= 512
    launched = _backward_launches(2, 17, K, N)
    assert ("epilogue" in launched) == one_launch
    assert ("gather" in launched and "logits" in launched) == (not one_launch)
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(2, 17, *hw, K, device=device, layout=layout)
        check_against_reference("cuda", f, a)


@pytest.mark.parametrize("case", [(1, 136, 33, 35, 8), (2, 17, 41, 25, 8), (1, 136, 33, 35, 9)],
                         ids=["held-3splits", "held-1px-last-tile", "batched-3splits"])
def test_epilogue_pixel_tiles(case):
    """"gather" and "logits" over pixel tiles: where a pixel's maps are held (K <= 8) a thread
    takes two pixels, tiles of 512 (1155 pixels: a last tile of 131, whose threads have one
    pixel or none; 1025: a last tile of one pixel), else one, tiles of 256. With channel splits
    (C = 136, B = 1: 3 splits on 132 SMs) "gather" stores the splits' totals for "logits"; with
    one it stores none. Each must match the reference, in both layouts and with and without the
    diversity's gradient."""
    device = require_backend("cuda", torch.float32)
    B, C, H, W, K = case
    N = H * W
    # (the plan the run gets: the GPU's SMs, or the emulation's)
    sm_count = (torch.cuda.get_device_properties(device).multi_processor_count if HAS_GPU
                else int(os.environ.get("FUSEDATTN_EMULATE_SM_COUNT", "132")))
    plan = _plan(B, C, K, N, 4, sm_count=sm_count)
    assert plan["epilogue_held_maps"] == (K <= 8)
    assert (plan["channel_splits"] > 1) == (C == 136)
    tile = 512 if K <= 8 else 256
    grids = {launch["name"]: launch["grid"][0] for launch in plan["backward"]}
    assert grids["gather"] == grids["logits"] == B * -(-N // tile) and grids["epilogue"] == 0
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(B, C, H, W, K, device=device, layout=layout)
        check_against_reference("cuda", f, a)
        check_against_reference("cuda", f, a, compute_diversity=False)


STREAMING_CHECK = """
import sys, torch
from fusedattn.ops.attention_pool.testing import check_against_reference, make_inputs
B, C, H, W, K = map(int, sys.argv[1:6])
for dtype in (torch.bfloat16, torch.float32):
    f, a = make_inputs(B, C, H, W, K, dtype=dtype, layout="channels_last")
    check_against_reference("cuda", f, a)
"""


SPLIT_SUMS = """
import hashlib, sys, torch
import fusedattn
from fusedattn.ops.attention_pool.testing import make_inputs
f, a = make_inputs(*map(int, sys.argv[1:6]), dtype=torch.bfloat16)
print(hashlib.sha256(fusedattn.attention_pool(f, a, backend="cuda")[0].view(torch.int16)
                     .numpy().tobytes()).hexdigest())
"""


@pytest.mark.parametrize("B,C,H,W,K,last_block", [
    (2, 130, 9, 9, 8, True), (1, 64, 20, 20, 8, True), (1, 64, 40, 40, 8, False),
    (1, 70, 15, 20, 33, False)], ids=["scalar-3-splits", "B1-20x20", "too-many-splits", "K33"])
def test_split_tiles_are_summed_in_split_order(B, C, H, W, K, last_block):
    """Where a sample's channel tiles are too few to fill the GPU, pixel chunks are split between
    "pool"'s blocks. With one 8-map tile whose splits' partial sums fit the shared memory its
    blocks may take (B = 1 20x20: 13 splits, NCHW and channels_last alike), the last of a
    tile's blocks to finish adds them (no "reduce" launch); else "reduce" does. Either
    way in split order: the result must match the reference in both layouts and, where a last
    block adds, be bitwise the same whichever block that is (the emulation's block orders)."""
    device = require_backend("cuda", torch.float32)
    N = H * W
    for strides in (None, (C * N, 1, C)):  # (NCHW, channels_last)
        plan = _plan(B, C, K, N, 2, strides)
        assert plan["pixel_splits"] > 1
        assert ("reduce" in _launched(plan, "forward")) == (not last_block)
    for layout in ("contiguous", "channels_last"):
        for dtype in (torch.bfloat16, torch.float32):
            f, a = make_inputs(B, C, H, W, K, dtype=dtype, layout=layout, device=device)
            check_against_reference("cuda", f, a)
    if CUDA_EMULATED and last_block and B == 1:  # (13 splits, 16-byte loads)
        digests = {subprocess.run(
            [sys.executable, "-c", SPLIT_SUMS, *map(str, (B, C, H, W, K))], check=True,
            capture_output=True, text=True,
            env={**os.environ, "FUSEDATTN_EMULATE_BLOCK_ORDER": order}).stdout
            for order in ("forward", "reverse", "shuffle:3")}
        assert len(digests) == 1, digests


@pytest.mark.parametrize("K, H, W, own_stats", [(8, 7, 7, True), (2, 6, 6, True),
                                                (9, 7, 7, False)])
def test_pool_computes_the_statistics_of_small_maps(K, H, W, own_stats):
    """NCHW 7x7 and 6x6: the flat variant's blocks stream channel tiles, 4 blocks a sample
    here. With one 8-map tile each block computes its sample's statistics and w from the logits
    (no "stats" launch, no w scratch) and the first stores them; 9 maps keep "stats". Against
    the reference with the logits as one span (a cp.async copy: 784 bytes at K = 8, 144 at
    K = 2 on 6x6) and strided (loaded element by element), with and without the diversity; the
    inference op (no log-sum-exp) gives the same bits."""
    B, C = 2, 200
    plan = _plan(B, C, K, H * W, 2)
    assert plan["load"] == "flat" and plan["pool_own_stats"] == own_stats
    assert ("stats" in _launched(plan, "forward")) != own_stats
    (pool,) = [launch for launch in plan["forward"] if launch["name"] == "pool"]
    assert pool["grid"][0] == B * 4  # (132 SMs: a block a channel tile)
    device = require_backend("cuda", torch.bfloat16)
    f, a = make_inputs(B, C, H, W, K, dtype=torch.bfloat16, device=device, logit_scale=6.0)
    strided = make_inputs(B, 2 * C, H, W, 2 * K, dtype=torch.bfloat16, device=device,
                          seed=3)[1][:, ::2]
    for logits in (a, strided):
        for compute_diversity in (True, False):
            check_against_reference("cuda", f, logits, compute_diversity=compute_diversity)
        trained = fusedattn.attention_pool(f, logits.clone().requires_grad_(), backend="cuda")
        with torch.no_grad():
            inferred = fusedattn.attention_pool(f, logits, backend="cuda")
        for x, y in zip(trained, inferred):
            assert torch.equal(x.detach(), y)


@pytest.mark.parametrize("sm_count", [1, 2] if CUDA_EMULATED else [None])
def test_small_maps_stream_channel_tiles(sm_count):
    """channels_last 7x7: a channel tile's two pixel chunks cannot fill the pool's ring, so its
    blocks stream several channel tiles (the plan, read back, says how many steps a block
    takes), each computing its sample's statistics and the maps of both chunks (one 8-map
    tile: no "stats" launch). In the emulation a process whose GPU has 1 SM (bf16: blocks of 3
    and 2 of the 5 tiles, three blocks an SM keeping 32 KB in flight) or 2 (2, 2 and 1); on a
    GPU a shape whose channel tiles are many."""
    device = require_backend("cuda", torch.float32)
    B, C, K, H, W = (2, 264, 8, 7, 7) if CUDA_EMULATED else (16, 4096, 8, 7, 7)
    sms = sm_count or torch.cuda.get_device_properties(device).multi_processor_count
    plan = _plan(B, C, K, H * W, 2, (C * H * W, 1, C), sms)
    (pool,) = [launch for launch in plan["forward"] if launch["name"] == "pool"]
    assert plan["load"] == "nhwc" and plan["pool_own_stats"]
    tiles = (C + 63) // 64
    assert pool["grid"][0] < B * tiles and pool["steps"] > 2, pool  # streams, 2 chunks a tile
    assert "stats" not in _launched(plan, "forward")
    if not CUDA_EMULATED:
        for dtype in (torch.bfloat16, torch.float32):
            f, a = make_inputs(B, C, H, W, K, dtype=dtype, layout="channels_last", device=device)
            check_against_reference("cuda", f, a)
        return
    env = {**os.environ, "FUSEDATTN_EMULATE_SM_COUNT": str(sm_count)}
    subprocess.run([sys.executable, "-c", STREAMING_CHECK, *map(str, (B, C, H, W, K))],
                   check=True, env=env)


@needs_gpu
@pytest.mark.parametrize("mode", ["graph", "reduce-overhead"])
def test_cuda_graph_capture(mode):
    device = require_backend("cuda", torch.bfloat16)
    f, a = make_inputs(8, 128, 20, 20, 8, dtype=torch.bfloat16, device=device)
    fr, ar = f.clone().requires_grad_(), a.clone().requires_grad_()

    def step():
        out = fusedattn.attention_pool(fr, ar, backend="cuda")
        return torch.autograd.grad(out.pooled.float().sum() + out.diversity.sum(), (fr, ar))

    expected = step()
    if mode == "graph":
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            step()  # warm-up on a side stream, as CUDA graph capture requires
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = step()
        graph.replay()
        torch.cuda.synchronize()
        got = captured
    else:
        compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
        for _ in range(3):
            got = compiled()
    for x, y in zip(got, expected):
        torch.testing.assert_close(x, y)
