"""The backend-parametrized suite of channel_attention: every backend against the float64
reference (y and every gradient) over odd shapes, every dtype and layout, both activations and
gates, biases present and absent, float32 weights with 16-bit x; validation messages; the
compiled ops under opcheck and torch.compile(fullgraph=True)."""

import pytest
import torch

import fusedattn
from fusedattn.ops.channel_attention.testing import (LAYOUTS, check_against_reference,
                                                     make_inputs, run)
from helpers import ALL_BACKENDS, CUDA_EMULATED, TRITON_INTERPRETED, require_backend

OP = "channel_attention"
# (B, C, H, W, R): C = 1, C = 17, R = 1, N = 1, 7x7, 56x56, 112x112 (the last two small in C).
CASES = [(2, 17, 7, 9, 5), (3, 1, 4, 4, 1), (2, 33, 1, 1, 4), (2, 64, 7, 7, 4),
         (1, 8, 56, 56, 2), (1, 2, 112, 112, 1)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
SETTINGS = [("relu", "sigmoid"), ("silu", "hardsigmoid")]


def _device(backend, dtype, case):
    return require_backend(backend, dtype, {"channels": case[1], "squeeze channels": case[4]},
                           op=OP)


def _slow(backend, B, C, H, W, R):
    # The interpreter and the emulation run every program / thread in Python or fibers.
    return (backend == "triton" and TRITON_INTERPRETED or backend == "cuda" and CUDA_EMULATED) \
        and B * C * H * W > 20_000


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}C{}H{}W{}R{}".format(*c))
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_matches_reference(backend, case, dtype, layout):
    device = _device(backend, dtype, case)
    if _slow(backend, *case) and (layout not in ("contiguous", "channels_last")
                                  or dtype == torch.float16):
        pytest.skip("large shapes run in two layouts and dtypes where kernels are emulated")
    for i, (activation, gate) in enumerate(SETTINGS):
        inputs = make_inputs(*case, dtype=dtype, layout=layout, device=device, bias=i == 0,
                             seed=i)
        check_against_reference(backend, inputs, activation=activation, gate=gate)


@pytest.mark.parametrize("activation, gate", [("relu", "hardsigmoid"), ("silu", "sigmoid")])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_float32_weights_with_16bit_x(backend, dtype, activation, gate):
    """Mixed precision: x in 16 bits, the parameters (and their gradients) in float32."""
    device = _device(backend, dtype, (2, 19, 5, 6, 3))
    for layout in ("contiguous", "channels_last"):
        inputs = make_inputs(2, 19, 5, 6, 3, dtype=dtype, weight_dtype=torch.float32,
                             layout=layout, device=device)
        _, grads = check_against_reference(backend, inputs, activation=activation, gate=gate)
        assert all(g.dtype == torch.float32 for g in grads[1:])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_2d_weights_and_no_grad_subsets(backend):
    device = _device(backend, torch.float32, (2, 10, 4, 4, 3))
    inputs = make_inputs(2, 10, 4, 4, 3, device=device, conv_weights=False)
    check_against_reference(backend, inputs)
    x, w1, b1, w2, b2 = inputs
    with torch.no_grad():
        y = fusedattn.channel_attention(x, w1, b1, w2, b2, backend=backend)
    assert not y.requires_grad
    w2r = w2.clone().requires_grad_()  # only one parameter learns
    fusedattn.channel_attention(x, w1, b1, w2r, b2, backend=backend).sum().backward()
    ref = w2.clone().requires_grad_()
    fusedattn.channel_attention(x, w1, b1, ref, b2, backend="reference").sum().backward()
    torch.testing.assert_close(w2r.grad, ref.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "3d"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_empty_batch(backend, layout):
    device = _device(backend, torch.float32, (0, 6, 3, 4, 2))
    inputs = make_inputs(0, 6, 3, 4, 2, layout=layout, device=device)
    y, grads, _ = run(backend, inputs, grads=True)
    assert y.shape == inputs[0].shape and grads[0].shape == inputs[0].shape
    for g, t in zip(grads[1:], inputs[1:]):
        assert g.shape == t.shape and not g.abs().sum()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_gradient_layout_follows_x(backend):
    device = _device(backend, torch.float32, (2, 16, 5, 6, 3))
    inputs = make_inputs(2, 16, 5, 6, 3, layout="channels_last", device=device)
    y, grads, _ = run(backend, inputs, grads=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    if backend != "reference":
        assert grads[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_expanded_output_gradient(backend):
    """y.sum() backpropagates an expanded (stride 0) gradient: read as it is, or copied once."""
    device = _device(backend, torch.float32, (2, 12, 5, 5, 3))
    inputs = make_inputs(2, 12, 5, 5, 3, device=device)
    grads = []
    for be in (backend, "reference"):
        leaves = [t.clone().requires_grad_() for t in inputs]
        fusedattn.channel_attention(*leaves, backend=be).sum().backward()
        grads.append([t.grad for t in leaves])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=2e-4)


@pytest.mark.parametrize("isa", ["default", "avx2", "avx512"])
def test_cpu_kernels_for_every_instruction_set(isa, monkeypatch):
    require_backend("cpu", op=OP)
    monkeypatch.setenv("FUSEDATTN_CPU_ISA", isa)
    try:
        fusedattn.channel_attention(*make_inputs(1, 3, 2, 2, 1), backend="cpu")
    except RuntimeError as exc:
        assert "does not support it" in str(exc)
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    for case in [(2, 17, 7, 9, 5), (2, 33, 1, 1, 4), (1, 8, 56, 56, 2)]:
        for dtype in DTYPES:
            for layout in ("contiguous", "channels_last", "strided"):
                check_against_reference("cpu", make_inputs(*case, dtype=dtype, layout=layout),
                                        activation="silu")


# ----------------------------------------------------------------------------- validation

X = torch.randn(2, 6, 4, 5)
W1, B1, W2, B2 = torch.randn(3, 6, 1, 1), torch.randn(3), torch.randn(6, 3, 1, 1), torch.randn(6)
BAD_INPUTS = [
    # (args, kwargs, exception, message fragment)
    (("x", W1, B1, W2, B2), {}, TypeError, "x must be a torch.Tensor, got str"),
    ((torch.randn(2, 6), W1, B1, W2, B2), {}, ValueError,
     "x must be 4-D (B, C, H, W) or 3-D (B, C, N), got a 2-D tensor of shape (2, 6)"),
    ((torch.randn(2, 7, 4, 5), W1, B1, W2, B2), {}, ValueError,
     "fc1_weight must have shape (3, 7) or (3, 7, 1, 1) for x with C=7 channels, got (3, 6, 1, 1)"),
    ((X, W1, B1, torch.randn(6, 4, 1, 1), B2), {}, ValueError,
     "fc2_weight must have shape (6, 3) or (6, 3, 1, 1), got (6, 4, 1, 1)"),
    ((X, W1, torch.randn(4), W2, B2), {}, ValueError, "fc1_bias must have shape (3,), got (4,)"),
    ((X, W1, B1, W2, torch.randn(5)), {}, ValueError, "fc2_bias must have shape (6,), got (5,)"),
    ((X, torch.randn(0, 6, 1, 1), None, torch.randn(6, 0, 1, 1), None), {}, ValueError,
     "at least one squeeze channel (R >= 1)"),
    ((X, torch.randn(3, 6, 3, 3), B1, W2, B2), {}, ValueError, "fc1_weight must have shape (3, 6)"),
    ((X.int(), W1, B1, W2, B2), {}, TypeError,
     "x must be float16, bfloat16, float32 or float64, got torch.int32"),
    ((X, W1.double(), B1, W2, B2), {}, TypeError,
     "fc1_weight must have x's dtype torch.float32 or torch.float32, got torch.float64"),
    ((X.bfloat16(), W1.double(), B1, W2, B2), {}, TypeError,
     "fc1_weight must have x's dtype torch.bfloat16 or torch.float32, got torch.float64"),
    ((X, W1, B1.half(), W2, B2), {}, TypeError,
     "fc1_bias must have fc1_weight's dtype torch.float32, got torch.float16"),
    ((X, W1, B1, W2.to("meta"), B2), {}, ValueError,
     "fc2_weight and x must be on the same device, got fc2_weight on meta and x on cpu"),
    ((X, W1, B1, W2, B2), {"activation": "gelu"}, ValueError,
     "activation must be 'relu' or 'silu', got 'gelu'"),
    ((X, W1, B1, W2, B2), {"gate": "tanh"}, ValueError,
     "gate must be 'sigmoid' or 'hardsigmoid', got 'tanh'"),
    ((X, W1, B1, W2, B2), {"backend": "tpu"}, ValueError,
     "backend must be 'auto' or one of ['cuda', 'triton', 'cpu', 'reference'], got 'tpu'"),
    ((torch.randn(2, 6, 0, 5), W1, B1, W2, B2), {}, ValueError, "at least one pixel"),
]


@pytest.mark.parametrize("args, kwargs, exc, fragment", BAD_INPUTS,
                         ids=[m[3][:40] for m in BAD_INPUTS])
def test_bad_input_message(args, kwargs, exc, fragment):
    with pytest.raises(exc) as info:
        fusedattn.channel_attention(*args, **kwargs)
    assert fragment in str(info.value)


def test_compiled_op_checks():
    require_backend("cpu", op=OP)
    fwd = torch.ops.fusedattn.channel_attention_fwd
    x, w1, w2 = X.flatten(2), W1, W2
    with pytest.raises(RuntimeError, match=r"fc2_weight must have shape \[6, 3\] or \[6, 3, 1, 1\]"):
        fwd(x, w1, None, torch.randn(6, 4), None, "relu", "sigmoid")
    with pytest.raises(RuntimeError, match="gate must be 'sigmoid' or 'hardsigmoid', got 'x'"):
        fwd(x, w1, None, w2, None, "relu", "x")
    _, s, h, u = fwd(x, w1, B1, w2, B2, "relu", "sigmoid")
    with pytest.raises(RuntimeError, match=r"hidden must have shape \[2, 3\]"):
        torch.ops.fusedattn.channel_attention_bwd(x, x, w1, w2, s, s, u, "relu", "sigmoid")


# ------------------------------------------------------------------ opcheck and torch.compile

def _op_samples():
    for dtype, wdtype in ((torch.float32, None), (torch.float64, None),
                          (torch.bfloat16, torch.float32)):
        for layout in ("3d", "channels_last", "strided"):
            yield make_inputs(2, 7, 3, 5, 3, dtype=dtype, weight_dtype=wdtype, layout=layout)
    yield make_inputs(0, 4, 2, 3, 2, bias=False)


@pytest.mark.parametrize("inputs", list(_op_samples()), ids=lambda a: None)
def test_opcheck(inputs):
    require_backend("cpu", op=OP)
    args = tuple(t.requires_grad_() if t is not None else None for t in inputs)
    torch.library.opcheck(torch.ops.fusedattn.channel_attention_fwd.default,
                          (*args, "silu", "hardsigmoid"))
    detached = tuple(t.detach() if t is not None else None for t in inputs)
    y, s, h, u = torch.ops.fusedattn.channel_attention_fwd(*detached, "relu", "sigmoid")
    torch.library.opcheck(torch.ops.fusedattn.channel_attention_bwd.default,
                          (torch.randn_like(y), detached[0], detached[1], detached[3], s, h, u,
                           "relu", "sigmoid"))


def test_opcheck_triton_ops():
    require_backend("triton", torch.float32, op=OP)
    import fusedattn.ops.channel_attention.triton_kernels as tk
    inputs = make_inputs(2, 7, 3, 5, 3, layout="channels_last")
    torch.library.opcheck(tk.channel_attention_fwd, (*inputs, "relu", "sigmoid"))
    y, s, h, u = tk.channel_attention_fwd(*inputs, "relu", "sigmoid")
    torch.library.opcheck(tk.channel_attention_bwd, (torch.randn_like(y), inputs[0], inputs[1],
                                                     inputs[3], s, h, u, "relu", "sigmoid"))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_compile_fullgraph(backend):
    device = _device(backend, torch.float32, (3, 9, 4, 5, 4))
    torch._dynamo.reset()

    def model(*inputs):
        y = fusedattn.channel_attention(*inputs, activation="silu", backend=backend)
        return y.square().sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for layout in ("contiguous", "channels_last"):
        inputs = make_inputs(3, 9, 4, 5, 4, layout=layout, device=device)
        eager = [t.clone().requires_grad_() for t in inputs]
        comp = [t.clone().requires_grad_() for t in inputs]
        model(*eager).backward()
        compiled(*comp).backward()
        for a, b in zip(eager, comp):
            torch.testing.assert_close(a.grad, b.grad)


def test_compile_inductor_cpu_module():
    """The fused module inside an inductor-compiled model (the custom op stays opaque)."""
    require_backend("cpu", op=OP)
    import fusedattn.nn as fnn

    torch._dynamo.reset()
    se = fnn.ChannelAttention(16, 4, activation="silu")
    ref = fnn.ReferenceChannelAttention(16, 4, activation="silu")
    ref.load_state_dict(se.state_dict())
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(torch.compile(se, fullgraph=True)(x), ref(x))
