"""The custom ops under torch.library.opcheck, and attention_pool under
torch.compile(fullgraph=True): no graph breaks, same numbers as eager."""

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import check_against_reference, make_inputs
from helpers import ALL_BACKENDS, require_backend


def sample_inputs():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for layout in ("3d", "channels_last", "strided"):
            for pool, div in (("sum", True), ("mean", False)):
                f, a = make_inputs(2, 7, 3, 5, 3, dtype=dtype, layout=layout)
                f, a = f.flatten(2), a.flatten(2)
                yield f.requires_grad_(), a.requires_grad_(), pool, div
    yield torch.randn(0, 4, 6), torch.randn(0, 2, 6), "sum", True  # empty batch


@pytest.mark.parametrize("args", list(sample_inputs()), ids=lambda a: None)
def test_opcheck_forward(args):
    require_backend("cpu")
    torch.library.opcheck(torch.ops.fusedattn.attention_pool_fwd.default, args)


@pytest.mark.parametrize("args", list(sample_inputs()), ids=lambda a: None)
def test_opcheck_backward(args):
    require_backend("cpu")
    f, a, pool, div = (x.detach() if isinstance(x, torch.Tensor) else x for x in args)
    pooled, s, d, lse = torch.ops.fusedattn.attention_pool_fwd(f, a, pool, div)
    gv = torch.randn_like(pooled)
    gd = torch.randn_like(d) if div else None
    torch.library.opcheck(torch.ops.fusedattn.attention_pool_bwd.default,
                          (gv, torch.randn_like(s), gd, f, a, s, lse, pool))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_compile_fullgraph(backend):
    device = require_backend(backend, torch.float32)
    torch._dynamo.reset()

    def model(f, a):
        v, s, div = fusedattn.attention_pool(f, a, pool="mean", backend=backend)
        return v.square().sum() + (s * s).sum() + div.sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for layout in ("contiguous", "channels_last"):
        f, a = make_inputs(3, 9, 4, 5, 4, layout=layout, device=device)
        fe, ae = f.clone().requires_grad_(), a.clone().requires_grad_()
        fc, ac = f.clone().requires_grad_(), a.clone().requires_grad_()
        model(fe, ae).backward()
        loss = compiled(fc, ac)
        loss.backward()
        torch.testing.assert_close(fc.grad, fe.grad)
        torch.testing.assert_close(ac.grad, ae.grad)


def test_compile_inductor_cpu():
    """The cpu backend inside an inductor-compiled model (the custom op stays opaque)."""
    require_backend("cpu")
    torch._dynamo.reset()
    fn = torch.compile(lambda f, a: fusedattn.attention_pool(f, a, backend="cpu"), fullgraph=True)
    f, a = make_inputs(2, 9, 4, 5, 4)
    out = fn(f, a)
    ref = fusedattn.attention_pool(f, a, backend="reference")
    torch.testing.assert_close(out.pooled, ref.pooled)
    torch.testing.assert_close(out.diversity, ref.diversity)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_compile_dynamic_shapes(backend):
    """dynamic=True and a K that changes between calls: no failure, the same numbers."""
    require_backend(backend, torch.float32)
    torch._dynamo.reset()
    fn = torch.compile(lambda f, a: fusedattn.attention_pool(f, a, backend=backend),
                       fullgraph=True, dynamic=True)
    for B, K in ((2, 3), (5, 3), (2, 4)):
        f, a = make_inputs(B, 9, 4, 5, K)
        out = fn(f, a)
        ref = fusedattn.attention_pool(f, a, backend="reference")
        torch.testing.assert_close(out.pooled, ref.pooled)
