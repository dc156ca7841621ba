"""Checking an op's implementation against its float64 reference, for every op: the per-dtype
tolerances (defined once, here) and the comparison the test suites and `python -m fusedattn
check` use. Each op's harness (fusedattn/ops/<op>/testing.py) makes its inputs and runs it."""

from __future__ import annotations

import torch

# (atol, rtol) of a backend's output against the float64 reference evaluated on the same
# (already rounded) inputs. A backend may also be off by twice the error PyTorch itself makes in
# the same dtype (the reference backend run on those inputs), whichever is larger.
TOLERANCES = {
    torch.float64: (1e-10, 1e-9),
    torch.float32: (2e-5, 2e-4),
    torch.bfloat16: (2e-3, 2e-2),
    torch.float16: (5e-4, 4e-3),
}


def random_like(outputs, seed: int = 1) -> tuple:
    """float64 random cotangents for each output (None stays None): the gradients a check
    backpropagates through L = sum <output, cotangent>."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t.shape, generator=g, dtype=torch.float64) if t is not None
                 else None for t in outputs)


def backward_through(outputs, cotangents) -> None:
    """loss = sum_i <outputs[i], cotangents[i]> in float64, then loss.backward()."""
    loss = sum((t.double() * g.to(t.device)).sum() for t, g in zip(outputs, cotangents)
               if t is not None)
    loss.backward()


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
