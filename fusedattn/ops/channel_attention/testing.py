"""channel_attention's testing harness: inputs over every layout, and the check of a backend
against the float64 reference (with fusedattn.testing's tolerances), used by the test suite
and by `python -m fusedattn check`."""

from __future__ import annotations

import torch

from ...testing import assert_close, backward_through, random_like
from . import channel_attention

# Cases `python -m fusedattn check` runs (B, C, H, W, R): odd sizes, one pixel, an IR-SE block.
CHECK_CASES = [(2, 17, 7, 9, 5), (1, 8, 1, 1, 1), (3, 64, 14, 14, 4)]

LAYOUTS = ("contiguous", "channels_last", "3d", "strided")
NAMES = ("y", "grad x", "grad fc1_weight", "grad fc1_bias", "grad fc2_weight", "grad fc2_bias")


def make_inputs(B, C, H, W, R, *, dtype=torch.float32, weight_dtype=None, layout="contiguous",
                device="cpu", bias=True, conv_weights=True, seed=0):
    """(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias): x (B, C, H, W) in the given layout
    (contiguous, channels_last, 3d (B, C, N), or strided: a channel slice of a larger tensor),
    weights as 1x1 convolutions' (R, C, 1, 1) (or (R, C) without conv_weights) in weight_dtype
    (default: x's), biases or None. Weights are scaled so that the gate is not saturated."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 2 * C if layout == "strided" else C, H, W, generator=g,
                    dtype=torch.float64)
    x = x.to(dtype=dtype, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "3d":
        x = x.flatten(2)
    elif layout == "strided":
        x = x[:, ::2]
    elif layout != "contiguous":
        raise ValueError(layout)
    wdtype = weight_dtype or dtype
    shape = (lambda *s: s + (1, 1)) if conv_weights else (lambda *s: s)

    def param(*size, scale):
        t = torch.randn(*size, generator=g, dtype=torch.float64) * scale
        return t.to(dtype=wdtype, device=device)

    w1 = param(*shape(R, C), scale=2.0 / max(C, 1) ** 0.5)
    w2 = param(*shape(C, R), scale=2.0 / max(R, 1) ** 0.5)
    b1 = param(R, scale=0.5) if bias else None
    b2 = param(C, scale=0.5) if bias else None
    return x, w1, b1, w2, b2


def run(backend, inputs, *, activation="relu", gate="sigmoid", grads=None, seed=1):
    """Forward and (when grads is given, or True for a random one) backward through L = <y, G>.
    Returns (y, (grad x, grad fc1_weight, grad fc1_bias, grad fc2_weight, grad fc2_bias),
    grads)."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in inputs]
    y = channel_attention(*leaves, activation=activation, gate=gate, backend=backend)
    if grads is None:
        return y, (None,) * 5, None
    if grads is True:
        grads = random_like((y,), seed)
    backward_through((y,), grads)
    return y, tuple(t.grad if t is not None else None for t in leaves), grads


def float64_inputs(inputs):
    return tuple(t.detach().double().cpu() if t is not None else None for t in inputs)


def check_against_reference(backend, inputs, *, activation="relu", gate="sigmoid",
                            backward=True):
    """Runs `backend`, the float64 reference and the reference in the inputs' dtypes (the
    baseline of PyTorch's own rounding error) and compares y and every gradient."""
    x = inputs[0]
    dtype = x.dtype
    grads = True if backward else None
    ref, ref_grads, grads = run("reference", float64_inputs(inputs), activation=activation,
                                gate=gate, grads=grads)
    grads = grads if backward else None
    y, got, _ = run(backend, inputs, activation=activation, gate=gate, grads=grads)
    base, base_grads, _ = run("reference", tuple(t.cpu() if t is not None else None
                                                 for t in inputs),
                              activation=activation, gate=gate, grads=grads)
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        assert y.is_contiguous(memory_format=torch.channels_last), "y lost channels_last"
    assert_close(y, ref, base, dtype, "y")
    if backward:
        for name, t, g, e, b in zip(NAMES[1:], inputs, got, ref_grads, base_grads):
            if t is None:
                assert g is None, f"{name}: a gradient for a missing parameter"
                continue
            assert g.dtype == t.dtype and g.shape == t.shape, f"{name}: {g.dtype} {g.shape}"
            assert_close(g, e, b, dtype, name)
    return y, got


def self_check(backend, dtype, device) -> None:
    """`python -m fusedattn check`: the backend against the float64 reference on CHECK_CASES in
    both memory layouts, both activations and gates, forward and backward; raises
    AssertionError on a mismatch."""
    for case in CHECK_CASES:
        for layout in ("contiguous", "channels_last"):
            inputs = make_inputs(*case, dtype=dtype, layout=layout, device=device)
            check_against_reference(backend, inputs)
            check_against_reference(backend, inputs, activation="silu", gate="hardsigmoid")

