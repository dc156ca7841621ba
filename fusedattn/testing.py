"""Checking an attention_pool implementation against the float64 reference: the per-dtype
tolerances (defined once, here), input makers over every layout, and the comparison used by the
test suite and by `python -m fusedattn check`."""

from __future__ import annotations

import torch

from ._dispatch import attention_pool

# (atol, rtol) of a backend's output against the float64 reference evaluated on the same
# (already rounded) inputs. A backend may also be off by twice the error PyTorch itself makes in
# the same dtype (the reference backend run on those inputs), whichever is larger.
TOLERANCES = {
    torch.float64: (1e-10, 1e-9),
    torch.float32: (2e-5, 2e-4),
    torch.bfloat16: (2e-3, 2e-2),
    torch.float16: (5e-4, 4e-3),
}

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
    out = attention_pool(f, a, pool=pool, compute_diversity=compute_diversity,
                                   backend=backend)
    if grads is None:
        return out, (None, None), None
    if grads is True:
        g = torch.Generator().manual_seed(seed)
        grads = tuple(torch.randn(t.shape, generator=g, dtype=torch.float64) if t is not None
                      else None for t in out)
    loss = sum((t.double() * gt.to(t.device)).sum() for t, gt in zip(out, grads)
               if t is not None)
    loss.backward()
    return out, (f.grad, a.grad), grads


def float64_reference(features, logits, *, pool="sum", compute_diversity=True, grads=None):
    """The reference backend on the same (rounded) inputs in float64, on the CPU."""
    f64 = features.detach().double().cpu()
    a64 = logits.detach().double().cpu()
    return run("reference", f64, a64, pool=pool, compute_diversity=compute_diversity, grads=grads)


def assert_close(actual, expected64, baseline, dtype, what):
    """|actual - expected64| <= atol + rtol |expected64| + 2 max|baseline - expected64|."""
    assert actual is not None, f"{what}: missing"
    assert actual.shape == expected64.shape, f"{what}: shape {actual.shape} != {expected64.shape}"
    actual = actual.detach().double().cpu()
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    atol, rtol = TOLERANCES[dtype]
    pytorch_err = 0.0
    if baseline is not None:
        pytorch_err = (baseline.detach().double().cpu() - expected64).abs().max().item() \
            if baseline.numel() else 0.0
    err = (actual - expected64).abs()
    bound = atol + rtol * expected64.abs() + 2 * pytorch_err
    if err.numel() and not bool((err <= bound).all()):
        i = int((err - bound).argmax())
        raise AssertionError(
            f"{what} ({dtype}): max error {err.max().item():.3e}; worst element {i}: "
            f"{actual.flatten()[i].item():.6e} vs {expected64.flatten()[i].item():.6e} "
            f"(bound {bound.flatten()[i].item():.3e}, PyTorch's own error {pytorch_err:.3e})")


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
