"""The reference backend against an independent float64 formulation of the spec
(docs/attention_pool.md; numpy, written here, with the spec's hand-derived backward), and
gradcheck of the differentiable backends."""

import numpy as np
import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import make_inputs
from helpers import require_backend


def numpy_attention_pool(f, a, alpha, gv, gs, gd):
    """One sample, float64 numpy: f (C, N), a (K, N). Returns (v, s, div, gf, ga) with the
    backward written from the spec's formulas, not from autograd."""
    K, N = a.shape
    sig = 1.0 / (1.0 + np.exp(-a))
    g = sig.mean(axis=1)
    e = np.exp(g - g.max())
    s = e / e.sum()
    w = s[:, None] * sig
    v = alpha * w @ f.T
    pe = np.exp(a - a.max(axis=1, keepdims=True))
    p = pe / pe.sum(axis=1, keepdims=True)
    q = s[:, None] * p
    winner = q.argmax(axis=0)  # numpy returns the first (lowest) index of the max
    onehot = np.zeros((K, N))
    onehot[winner, np.arange(N)] = 1.0
    div = 1.0 - (q * onehot).sum()
    gw = alpha * gv @ f
    gf = alpha * gv.T @ w
    gp = -gd * s[:, None] * onehot
    gs_tot = gs + (gw * sig).sum(axis=1) - gd * (onehot * p).sum(axis=1)
    gg = s * (gs_tot - (s * gs_tot).sum())
    gsig = s[:, None] * gw + gg[:, None] / N
    ga = gsig * sig * (1 - sig) + p * (gp - (p * gp).sum(axis=1, keepdims=True))
    return v, s, div, gf, ga


@pytest.mark.parametrize("logit_scale", [2.0, 50.0, 0.0])
@pytest.mark.parametrize("pool", ["sum", "mean"])
@pytest.mark.parametrize("case", [(2, 17, 7, 9, 5), (1, 1, 1, 1, 1), (3, 6, 1, 1, 4),
                                  (2, 5, 4, 4, 33)])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_against_independent_float64(backend, case, pool, logit_scale):
    require_backend(backend, torch.float64)
    B, C, H, W, K = case
    N = H * W
    f, a = make_inputs(B, C, H, W, K, dtype=torch.float64, logit_scale=logit_scale)
    g = torch.Generator().manual_seed(3)
    gv = torch.randn(B, K, C, generator=g, dtype=torch.float64)
    gs = torch.randn(B, K, generator=g, dtype=torch.float64)
    gd = torch.randn(B, generator=g, dtype=torch.float64)
    fr, ar = f.clone().requires_grad_(), a.clone().requires_grad_()
    out = fusedattn.attention_pool(fr, ar, pool=pool, backend=backend)
    ((out.pooled * gv).sum() + (out.importance * gs).sum() + (out.diversity * gd).sum()).backward()
    alpha = 1.0 / N if pool == "mean" else 1.0
    for b in range(B):
        v, s, div, gf, ga = numpy_attention_pool(
            f[b].reshape(C, N).numpy(), a[b].reshape(K, N).numpy(), alpha,
            gv[b].numpy(), gs[b].numpy(), gd[b].item())
        np.testing.assert_allclose(out.pooled[b].detach().numpy(), v, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(out.importance[b].detach().numpy(), s, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out.diversity[b].item(), div, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(fr.grad[b].reshape(C, N).numpy(), gf, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(ar.grad[b].reshape(K, N).numpy(), ga, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("compute_diversity", [True, False])
@pytest.mark.parametrize("pool", ["sum", "mean"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_gradcheck(backend, layout, pool, compute_diversity):
    require_backend(backend, torch.float64)
    f, a = make_inputs(2, 5, 3, 4, 3, dtype=torch.float64, layout=layout)
    f.requires_grad_()
    a.requires_grad_()

    def fn(f, a):
        out = fusedattn.attention_pool(f, a, pool=pool, compute_diversity=compute_diversity,
                                       backend=backend)
        return tuple(t for t in out if t is not None)

    assert torch.autograd.gradcheck(fn, (f, a), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_diversity_bounds(backend):
    """div lies in [0, 1 - max_k s_k]: 0 when the maps do not overlap, 1 - max s when equal."""
    require_backend(backend, torch.float64)
    f, a = make_inputs(8, 4, 6, 6, 5, dtype=torch.float64, logit_scale=3.0, seed=7)
    out = fusedattn.attention_pool(f, a, backend=backend)
    assert (out.diversity >= -1e-12).all()
    assert (out.diversity <= 1 - out.importance.max(dim=1).values + 1e-12).all()
    # Five maps, each a sharp peak on its own pixel: no overlap, D = sum_k s_k = 1.
    peaks = torch.full((1, 5, 36), -40.0, dtype=torch.float64)
    peaks[0, torch.arange(5), torch.arange(5) * 7] = 40.0
    out = fusedattn.attention_pool(f[:1].flatten(2), peaks, backend=backend)
    assert abs(out.diversity.item()) < 1e-12
    same = peaks[:, :1].expand(1, 5, 36)  # identical maps: D = max_k s_k = 1/5
    out = fusedattn.attention_pool(f[:1].flatten(2), same, backend=backend)
    assert abs(out.diversity.item() - 0.8) < 1e-12
