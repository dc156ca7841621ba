"""attention_pool's testing harness: inputs over every layout, and the check of a backend
against the float64 reference (with fusedattn.testing's tolerances), used by the test suite
and by `python -m fusedattn check`."""

from __future__ import annotations

import torch

from ...testing import assert_close, backward_through, random_like
from . import attention_pool

# Cases `python -m fusedattn check` runs: odd sizes, a single pixel and map, a 20x20 map.
CHECK_CASES = [(2, 17, 7, 9, 5), (1, 8, 1, 1, 1), (3, 24, 20, 20, 8)]

LAYOUTS = ("contiguous", "channels_last", "3d", "strided")


def make_inputs(B, C, H, W, K, *, dtype=torch.float32, layout="contiguous", device="cpu",
                scale=1.0, logit_scale=2.0, seed=0):
    """features (B, C, H, W) and attn_logits (B, K, H, W) in the given layout:
    contiguous, channels_last, 3d ((B, C, N) and (B, K, N)) or strided (non-contiguous slices
    of larger tensors, which no backend may assume dense)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(B, 2 * C if layout == "strided" else C, H, W, generator=g,
                    dtype=torch.float64) * scale
    a = torch.randn(B, K, H, 2 * W if layout == "strided" else W, generator=g,
                    dtype=torch.float64) * logit_scale
    f, a = f.to(dtype=dtype, device=device), a.to(dtype=dtype, device=device)
    if layout == "channels_last":
        f = f.contiguous(memory_format=torch.channels_last)
        a = a.contiguous(memory_format=torch.channels_last)
    elif layout == "3d":
        f, a = f.flatten(2), a.flatten(2)
    elif layout == "strided":
        f, a = f[:, ::2], a[..., 1::2]
    elif layout != "contiguous":
        raise ValueError(layout)
    return f, a


def run(backend, features, logits, *, pool="sum", compute_diversity=True, grads=None, seed=1):
    """Forward and (when grads is given, or True for random ones) backward through
    L = <v, Gv> + <s, Gs> + <div, Gd>. Returns (outputs, (grad_features, grad_logits), grads)."""
    f = features.detach().clone().requires_grad_()
    a = logits.detach().clone().requires_grad_()
    out = attention_pool(f, a, pool=pool, compute_diversity=compute_diversity, backend=backend)
    if grads is None:
        return out, (None, None), None
    if grads is True:
        grads = random_like(out, seed)
    backward_through(out, grads)
    return out, (f.grad, a.grad), grads


def float64_reference(features, logits, *, pool="sum", compute_diversity=True, grads=None):
    """The reference backend on the same (rounded) inputs in float64, on the CPU."""
    f64 = features.detach().double().cpu()
    a64 = logits.detach().double().cpu()
    return run("reference", f64, a64, pool=pool, compute_diversity=compute_diversity, grads=grads)


def check_against_reference(backend, features, logits, *, pool="sum", compute_diversity=True,
                            backward=True):
    """Runs `backend` and the float64 reference (and the reference in the input dtype as the
    baseline of PyTorch's own rounding error) and compares every output and gradient."""
    dtype = features.dtype
    grads = True if backward else None
    ref, (ref_gf, ref_ga), grads = float64_reference(
        features, logits, pool=pool, compute_diversity=compute_diversity, grads=grads)
    grads = grads if backward else None
    out, (gf, ga), _ = run(backend, features, logits, pool=pool,
                           compute_diversity=compute_diversity, grads=grads)
    base, (base_gf, base_ga), _ = run("reference", features.cpu(), logits.cpu(), pool=pool,
                                      compute_diversity=compute_diversity, grads=grads)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert out.pooled.dtype == dtype and out.importance.dtype == acc
    assert out.pooled.device == features.device and out.importance.device == features.device
    if compute_diversity:
        assert out.diversity.dtype == acc and out.diversity.shape == (features.shape[0],)
    else:
        assert out.diversity is None
    for name, x, e, b in (("pooled", out.pooled, ref.pooled, base.pooled),
                          ("importance", out.importance, ref.importance, base.importance),
                          ("diversity", out.diversity, ref.diversity, base.diversity)):
        if e is not None:
            assert_close(x, e, b, dtype, name)
    if backward:
        assert gf.dtype == dtype and ga.dtype == dtype
        assert gf.shape == features.shape and ga.shape == logits.shape
        assert_close(gf, ref_gf, base_gf, dtype, "grad features")
        assert_close(ga, ref_ga, base_ga, dtype, "grad attn_logits")
    return out, (gf, ga)


def self_check(backend, dtype, device) -> None:
    """`python -m fusedattn check`: the backend against the float64 reference on CHECK_CASES in
    both memory layouts, forward and backward; raises AssertionError on a mismatch."""
    for case in CHECK_CASES:
        for layout in ("contiguous", "channels_last"):
            f, a = make_inputs(*case, dtype=dtype, layout=layout, device=device)
            check_against_reference(backend, f, a)
