"""The reference and cpu backends against the spec's formulas written independently in float64
numpy (docs/channel_attention.md, the hand-written backward), and gradcheck."""

import numpy as np
import pytest
import torch

import fusedattn
from fusedattn.ops.channel_attention.testing import make_inputs
from helpers import require_backend


def numpy_channel_attention(x, w1, b1, w2, b2, gy, silu, hard):
    """x (B, C, N) float64; returns y and the gradients of <y, gy> by the spec's formulas."""
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    N = x.shape[2]
    s = x.mean(axis=2)
    h = s @ w1.T + b1
    z = h * sig(h) if silu else np.maximum(h, 0)
    u = z @ w2.T + b2
    g = np.clip(u + 3, 0, 6) / 6 if hard else sig(u)
    y = x * g[:, :, None]
    d = (gy * x).sum(axis=2)
    du = d * (np.where((u > -3) & (u < 3), 1 / 6, 0) if hard else g * (1 - g))
    dz = du @ w2
    dh = dz * (sig(h) * (1 + h * (1 - sig(h))) if silu else (h > 0))
    ds = dh @ w1
    gx = gy * g[:, :, None] + ds[:, :, None] / N
    return y, gx, dh.T @ s, dh.sum(0), du.T @ z, du.sum(0)


@pytest.mark.parametrize("silu, hard", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("case", [(2, 17, 7, 9, 5), (3, 1, 1, 1, 1), (2, 6, 4, 4, 9)])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_against_independent_float64(backend, case, silu, hard):
    require_backend(backend, torch.float64, op="channel_attention")
    inputs = make_inputs(*case, dtype=torch.float64, conv_weights=False)
    gy = torch.randn(inputs[0].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    leaves = [t.clone().requires_grad_() for t in inputs]
    y = fusedattn.channel_attention(*leaves, activation="silu" if silu else "relu",
                                    gate="hardsigmoid" if hard else "sigmoid", backend=backend)
    (y * gy).sum().backward()
    B, C = case[:2]
    expected = numpy_channel_attention(*(t.numpy().reshape(B, C, -1) if i == 0 else t.numpy()
                                         for i, t in enumerate(inputs)),
                                       gy.numpy().reshape(B, C, -1), silu, hard)
    got = [y.detach()] + [t.grad for t in leaves]
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a.numpy().reshape(e.shape), e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_gradcheck(backend, layout):
    require_backend(backend, torch.float64, op="channel_attention")
    inputs = [t.requires_grad_() for t in make_inputs(2, 5, 3, 4, 3, dtype=torch.float64,
                                                      layout=layout)]
    for activation, gate in (("relu", "sigmoid"), ("silu", "hardsigmoid")):
        assert torch.autograd.gradcheck(
            lambda *a: fusedattn.channel_attention(*a, activation=activation, gate=gate,
                                                   backend=backend),
            inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
