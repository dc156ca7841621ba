"""Bad input raises ValueError/TypeError naming the argument and what was seen, from the public
API (one validation shared by every backend) and from the compiled ops called directly."""

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import make_inputs
from helpers import ALL_BACKENDS, require_backend

F = torch.randn(2, 3, 4, 5)
A = torch.randn(2, 2, 4, 5)

BAD_INPUTS = [
    # (features, attn_logits, kwargs, exception, message fragment)
    ("not a tensor", A, {}, TypeError, "features must be a torch.Tensor, got str"),
    (F, [1.0], {}, TypeError, "attn_logits must be a torch.Tensor, got list"),
    (torch.randn(2, 3), A, {}, ValueError, "features must be 4-D (B, C, H, W) or 3-D (B, C, N), got a 2-D tensor of shape (2, 3)"),
    (torch.randn(2, 3, 4, 5, 1), A, {}, ValueError, "got a 5-D tensor"),
    (F, torch.randn(2, 2), {}, ValueError, "attn_logits must be 4-D (B, K, H, W) or 3-D (B, K, N)"),
    (F, torch.randn(3, 2, 4, 5), {}, ValueError, "batch size mismatch: features (2, 3, 4, 5) has B=2, attn_logits (3, 2, 4, 5) has B=3"),
    (F, torch.randn(2, 2, 5, 4), {}, ValueError, "spatial size mismatch: features (2, 3, 4, 5) vs attn_logits (2, 2, 5, 4)"),
    (F, torch.randn(2, 2, 21), {}, ValueError, "spatial size mismatch"),
    (F, torch.randn(2, 0, 4, 5), {}, ValueError, "K >= 1"),
    (torch.randn(2, 3, 0, 5), torch.randn(2, 2, 0, 5), {}, ValueError, "at least one pixel"),
    (F, A.double(), {}, TypeError, "same dtype, got attn_logits torch.float64 and features torch.float32"),
    (F.int(), A.int(), {}, TypeError, "features must be float16, bfloat16, float32 or float64, got torch.int32"),
    (F.to(torch.complex64), A.to(torch.complex64), {}, TypeError, "got torch.complex64"),
    (F, A.to("meta"), {}, ValueError, "same device, got attn_logits on meta and features on cpu"),
    (F.to_sparse(), A, {}, TypeError, "dense (strided) tensor"),
    (F, A, {"pool": "max"}, ValueError, "pool must be 'sum' or 'mean', got 'max'"),
    (F, A, {"pool": None}, ValueError, "pool must be 'sum' or 'mean', got None"),
    (F, A, {"backend": "tpu"}, ValueError, "backend must be 'auto' or one of ['cuda', 'triton', 'cpu', 'reference'], got 'tpu'"),
    (F, A, {"compute_diversity": 1}, TypeError, "compute_diversity must be a bool, got int"),
]


@pytest.mark.parametrize("features, logits, kwargs, exc, fragment", BAD_INPUTS,
                         ids=[m[4][:40] for m in BAD_INPUTS])
def test_bad_input_message(features, logits, kwargs, exc, fragment):
    with pytest.raises(exc) as info:
        fusedattn.attention_pool(features, logits, **kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_backend_gets_the_same_validation(backend):
    with pytest.raises(ValueError, match="batch size mismatch"):
        fusedattn.attention_pool(F, torch.randn(3, 2, 4, 5), backend=backend)


def test_mixed_3d_and_4d_inputs_are_accepted():
    out = fusedattn.attention_pool(F, A.flatten(2))
    ref = fusedattn.attention_pool(F, A, backend="reference")
    torch.testing.assert_close(out.pooled, ref.pooled)


def test_unavailable_backend_says_why(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.delenv("FUSEDATTN_CUDA_EMULATE", raising=False)  # CPU tensors: not the cuda backend's
    for cache in ("_CHOSEN", "_RUN_FOR"):
        monkeypatch.setattr(fusedattn.backends, cache, {})
    with pytest.raises(fusedattn.BackendUnavailableError,
                       match="'cuda' cannot run these inputs: .*FUSEDATTN_CUDA_EMULATE=1"):
        fusedattn.attention_pool(F, A, backend="cuda")
    status = fusedattn.backend_status("cuda")
    assert set(status) == {"cuda", "triton", "reference"} and status["reference"] is None
    assert status["cuda"]  # a reason, not None


def test_available_backends_order():
    assert fusedattn.available_backends("cpu")[:2] == ["cpu", "reference"]
    assert set(fusedattn.available_backends("cpu")) <= set(fusedattn.BACKENDS)
    assert fusedattn.available_backends(torch.device("meta")) == ["reference"]


BAD_OP_CALLS = [
    # Direct calls of the compiled forward op: its own checks (C++, torch's stable ABI, which
    # raises RuntimeError; the public API above raises ValueError/TypeError before them).
    ((torch.randn(2, 3), torch.randn(2, 2, 4), "sum", True), "features must be 3-D"),
    ((torch.randn(2, 3, 4), torch.randn(2, 2, 5), "sum", True), r"spatial size mismatch: features \[2, 3, 4\] vs attn_logits \[2, 2, 5\]"),
    ((torch.randn(2, 3, 4), torch.randn(3, 2, 4), "sum", True), "batch mismatch"),
    ((torch.randn(2, 3, 4), torch.randn(2, 0, 4), "sum", True), "K >= 1"),
    ((torch.randn(2, 3, 4), torch.randn(2, 2, 4), "max", True), "pool must be 'sum' or 'mean'"),
    ((torch.randn(2, 3, 4).int(), torch.randn(2, 2, 4).int(), "sum", True), "float16, bfloat16, float32 or float64, got Int"),
    ((torch.randn(2, 3, 4), torch.randn(2, 2, 4).double(), "sum", True), "attn_logits must be Float, got Double"),
]


@pytest.mark.parametrize("args, fragment", BAD_OP_CALLS, ids=[c[1][:30] for c in BAD_OP_CALLS])
def test_compiled_op_checks(args, fragment):
    require_backend("cpu")
    with pytest.raises(RuntimeError, match="^fusedattn: .*" + fragment):
        torch.ops.fusedattn.attention_pool_fwd(*args)


def test_compiled_backward_op_checks():
    require_backend("cpu")
    f, a = make_inputs(2, 3, 2, 2, 4)
    f, a = f.flatten(2), a.flatten(2)
    _, s, _, lse = torch.ops.fusedattn.attention_pool_fwd(f, a, "sum", True)
    gv = torch.zeros(2, 4, 3)
    bwd = torch.ops.fusedattn.attention_pool_bwd
    with pytest.raises(RuntimeError, match=r"grad_pooled must have shape \[2, 4, 3\], got \[2, 3, 4\]"):
        bwd(torch.zeros(2, 3, 4), torch.zeros_like(s), None, f, a, s, lse, "sum")
    with pytest.raises(RuntimeError, match="grad_importance must be Float, got Double"):
        bwd(gv, s.double(), None, f, a, s, lse, "sum")
    with pytest.raises(RuntimeError, match=r"grad_diversity must have shape \[2\]"):
        bwd(gv, torch.zeros_like(s), torch.zeros(3), f, a, s, lse, "sum")
    with pytest.raises(RuntimeError, match=r"logsumexp must have shape \[2, 4\]"):
        bwd(gv, torch.zeros_like(s), None, f, a, s, lse[:1], "sum")
