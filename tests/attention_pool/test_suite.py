"""The backend-parametrized suite: every backend against the float64 reference, on awkward
shapes, every dtype and layout, ties, large logits and empty batches. A backend joins by being
listed in helpers.ALL_BACKENDS; it is skipped (with the reason) where it cannot run."""

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.benchmarks import SPEC_SHAPES as SPEC_BENCHMARK_SHAPES
from fusedattn.ops.attention_pool.testing import LAYOUTS, check_against_reference, make_inputs, run
from fusedattn.testing import assert_close
from helpers import ALL_BACKENDS, HAS_GPU, TRITON_INTERPRETED, require_backend

# (B, C, H, W, K): odd channel counts, N = 1, K = 1, C = 1, H != W, K = 33, N = 3136; with the
# CUDA kernels' tiles (64 channels, 32 pixels, maps in groups of up to 64), shapes that take
# every tiled loop at least twice (3 channel tiles and 3 pixel chunks; 3 map groups), and 7x7
# maps in 3 channel tiles, the last of 8 channels (the flat span of small maps).
CASES = [
    (2, 17, 7, 9, 5),
    (1, 1, 1, 1, 1),
    (3, 8, 1, 1, 4),
    (2, 136, 7, 7, 1),
    (2, 40, 5, 4, 33),
    (4, 64, 20, 20, 8),
    (1, 24, 56, 56, 3),
    (2, 130, 9, 9, 8),
    (1, 70, 6, 7, 130),
]
# The spec's benchmark shapes (docs/attention_pool.md; GPU only: too large for the CPU suite).
SPEC_SHAPES = [(s.B, s.C, s.H, s.W, s.K) for s in SPEC_BENCHMARK_SHAPES]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def _skip_slow_interpreter(backend, B, C, H, W, K):
    # The Triton interpreter executes every program in numpy: keep it to the small shapes.
    if backend == "triton" and TRITON_INTERPRETED and B * C * H * W * max(K, 8) > 2_000_000:
        pytest.skip("too large for the Triton interpreter; runs natively on a GPU")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}C{}H{}W{}K{}".format(*c))
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_matches_reference(backend, case, dtype, layout):
    device = require_backend(backend, dtype, {"attention maps": case[4]})
    _skip_slow_interpreter(backend, *case)
    B, C, H, W, K = case
    f, a = make_inputs(B, C, H, W, K, dtype=dtype, layout=layout, device=device)
    check_against_reference(backend, f, a)


@pytest.mark.parametrize("compute_diversity", [True, False])
@pytest.mark.parametrize("pool", ["sum", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_pool_modes_and_inference(backend, dtype, pool, compute_diversity):
    device = require_backend(backend, dtype)
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(2, 19, 6, 5, 3, dtype=dtype, layout=layout, device=device)
        check_against_reference(backend, f, a, pool=pool, compute_diversity=compute_diversity)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_all_zero_logits_ties(backend, dtype):
    """All-zero logits (common after a ReLU): every map ties at every pixel. Exact values are
    known, and the diversity gradient must go to map 0 (torch.max's lowest index)."""
    device = require_backend(backend, dtype)
    B, C, H, W, K = 2, 9, 5, 7, 4
    f, _ = make_inputs(B, C, H, W, K, dtype=dtype, device=device)
    a = torch.zeros(B, K, H, W, dtype=dtype, device=device)
    out, (gf, ga) = check_against_reference(backend, f, a)
    N = H * W
    torch.testing.assert_close(out.importance.cpu(), torch.full((B, K), 1 / K, dtype=out.importance.dtype))
    torch.testing.assert_close(out.diversity.cpu(), torch.full((B,), 1 - 1 / K, dtype=out.diversity.dtype))
    # Only the diversity loss (gd = 1, gv = gs = 0), with the spec's backward worked out by hand:
    # sig = 1/2, s = 1/K, p = 1/N and map 0 wins every pixel, so gp[0, n] = -s and
    # p (gp - sum_m p gp) = 0 for every map; gs_tot = (-1, 0, ..., 0), and the only gradient
    # left flows through the importance softmax: ga[k, n] = sig (1 - sig) gg[k] / N.
    f2 = f.detach().clone()
    a2 = a.detach().clone().requires_grad_()
    fusedattn.attention_pool(f2, a2, backend=backend).diversity.sum().backward()
    gs_tot = torch.zeros(K, dtype=torch.float64)
    gs_tot[0] = -1.0
    gg = (gs_tot - (gs_tot / K).sum()) / K
    expected = (0.25 * gg / N)[None, :, None].expand(B, K, H * W).reshape(B, K, H, W)
    rtol = 1e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-5
    torch.testing.assert_close(a2.grad.double().cpu(), expected, atol=1e-7, rtol=rtol)
    # A backend that sent the gradient to another map (the highest k, or all of them) fails:
    # map 0 is pushed down, the others up.
    assert (a2.grad[:, 0] < 0).all() and (a2.grad[:, 1:] > 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_identical_maps_tie(backend, dtype):
    device = require_backend(backend, dtype)
    f, a = make_inputs(2, 11, 4, 6, 1, dtype=dtype, device=device)
    a = a.repeat(1, 3, 1, 1)  # three identical maps: s = 1/3, div = 1 - 1/3 exactly
    out, _ = check_against_reference(backend, f, a)
    torch.testing.assert_close(out.diversity.cpu().double(),
                               torch.full((2,), 2 / 3, dtype=torch.float64),
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_large_logits(backend, dtype):
    """|a| ~ 50: sigmoid saturates, the pixel softmax is one-hot; nothing may be NaN or Inf."""
    device = require_backend(backend, dtype)
    f, a = make_inputs(3, 13, 5, 5, 4, dtype=dtype, device=device, logit_scale=50.0)
    out, (gf, ga) = check_against_reference(backend, f, a)
    for t in (out.pooled, out.importance, out.diversity, gf, ga):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("case", [(2, 136, 7, 7, 8), (1, 72, 20, 20, 8)],
                         ids=lambda c: "B{}C{}H{}W{}K{}".format(*c))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_non_finite_feature_stays_in_its_channel(backend, dtype, case):
    """An Inf or NaN feature makes its own channel's pooled values non-finite and no other's:
    a kernel whose products read past a channel's pixels (the next channel's, in a flat span of
    small maps; padding in a tile) must keep them out."""
    device = require_backend(backend, dtype)
    B, C, H, W, K = case
    f, a = make_inputs(B, C, H, W, K, dtype=dtype, device=device)
    f[:, 1, 0, 0] = float("inf")        # the first pixel after channel 0's last
    f[:, 65, 0, 0] = float("nan")       # the second channel tile's second channel
    f[:, C - 1, H - 1, W - 1] = -float("inf")  # the tensor's last element
    poisoned = torch.tensor([1, 65, C - 1])
    clean = torch.ones(C, dtype=torch.bool)
    clean[poisoned] = False
    out, _, _ = run(backend, f, a)
    ref, _, _ = run("reference", f.double().cpu(), a.double().cpu())
    base, _, _ = run("reference", f.cpu(), a.cpu())
    assert not torch.isfinite(out.pooled[:, :, poisoned].float()).any()
    assert_close(out.pooled[:, :, clean], ref.pooled[:, :, clean], base.pooled[:, :, clean], dtype,
                 "pooled, clean channels")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "3d"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_empty_batch(backend, layout):
    device = require_backend(backend, torch.float32)
    f, a = make_inputs(0, 6, 3, 4, 2, layout=layout, device=device)
    out, (gf, ga), _ = run(backend, f, a, grads=True)
    assert out.pooled.shape == (0, 2, 6) and out.importance.shape == (0, 2)
    assert out.diversity.shape == (0,)
    assert gf.shape == f.shape and ga.shape == a.shape


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_zero_channels(backend):
    device = require_backend(backend, torch.float32)
    f, a = make_inputs(2, 0, 3, 4, 2, device=device)
    check_against_reference(backend, f, a)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_partial_use_of_outputs(backend):
    """Gradients when only some outputs feed the loss (the others get no gradient at all)."""
    device = require_backend(backend, torch.float32)
    f, a = make_inputs(2, 10, 4, 4, 3, device=device)
    for pick in ("pooled", "importance", "diversity"):
        grads = {}
        for be in (backend, "reference"):
            fr = f.detach().clone().requires_grad_()
            ar = a.detach().clone().requires_grad_()
            out = fusedattn.attention_pool(fr, ar, backend=be)
            getattr(out, pick).sum().backward()
            # autograd leaves None where an input does not reach the loss: that is a zero.
            grads[be] = [torch.zeros_like(t) if t.grad is None else t.grad for t in (fr, ar)]
        for x, y in zip(grads[backend], grads["reference"]):
            torch.testing.assert_close(x, y, atol=2e-5, rtol=2e-4)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_no_grad_and_requires_grad_subsets(backend):
    device = require_backend(backend, torch.float32)
    f, a = make_inputs(2, 10, 4, 4, 3, device=device)
    with torch.no_grad():
        out = fusedattn.attention_pool(f, a, backend=backend)
    assert not out.pooled.requires_grad
    ar = a.clone().requires_grad_()
    out = fusedattn.attention_pool(f, ar, backend=backend)  # features need no gradient
    (out.pooled.sum() + out.diversity.sum()).backward()
    assert ar.grad is not None and torch.isfinite(ar.grad).all()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_channels_last_gradient_layout(backend):
    """The feature gradient keeps the features' memory format (no transposing copy later)."""
    device = require_backend(backend, torch.float32)
    f, a = make_inputs(2, 16, 5, 6, 3, layout="channels_last", device=device)
    _, (gf, _), _ = run(backend, f, a, grads=True)
    if backend != "reference":
        assert gf.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", SPEC_SHAPES, ids=lambda c: "B{}C{}H{}W{}K{}".format(*c))
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_spec_shapes_on_gpu(backend, case):
    device = require_backend(backend, torch.bfloat16)
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(*case, dtype=torch.bfloat16, layout=layout, device=device)
        check_against_reference(backend, f, a)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_int64_offsets_gpu(backend):
    """More than 2^31 feature elements (4.3 GB in bfloat16): every offset must be int64."""
    device = require_backend(backend, torch.bfloat16)
    B, C, N, K = 2, 2**20 + 8, 1024, 4
    f = torch.randn(B, C, N, device=device, dtype=torch.bfloat16)
    a = torch.randn(B, K, N, device=device, dtype=torch.bfloat16)
    out = fusedattn.attention_pool(f, a, backend=backend, compute_diversity=False)
    tail = fusedattn.attention_pool(f[:, -64:], a, backend="reference", compute_diversity=False)
    torch.testing.assert_close(out.pooled[:, :, -64:].float(), tail.pooled.float(), atol=0.05,
                               rtol=0.02)


@pytest.mark.parametrize("isa", ["default", "avx2", "avx512"])
def test_cpu_kernels_for_every_instruction_set(isa, monkeypatch):
    """The cpu backend's kernels are compiled per instruction set and picked at run time; each
    variant this CPU runs gets the awkward cases (FUSEDATTN_CPU_ISA is read at every call)."""
    require_backend("cpu")
    monkeypatch.setenv("FUSEDATTN_CPU_ISA", isa)
    f, a = make_inputs(1, 3, 2, 2, 2)
    try:
        fusedattn.attention_pool(f, a, backend="cpu")
    except RuntimeError as exc:
        assert "does not support it" in str(exc)
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    for case in [(2, 17, 7, 9, 5), (1, 1, 1, 1, 1), (2, 40, 5, 4, 33), (1, 24, 56, 56, 3)]:
        for dtype in DTYPES:
            for layout in ("contiguous", "channels_last", "strided"):
                f, a = make_inputs(*case, dtype=dtype, layout=layout)
                check_against_reference("cpu", f, a)


def test_cpu_isa_override_is_checked(monkeypatch):
    require_backend("cpu")
    monkeypatch.setenv("FUSEDATTN_CPU_ISA", "sse9")
    f, a = make_inputs(1, 3, 2, 2, 2)
    with pytest.raises(RuntimeError, match="FUSEDATTN_CPU_ISA must be default, avx2 or avx512"):
        fusedattn.attention_pool(f, a, backend="cpu")
