"""channel_attention's Triton backend (docs/channel_attention.md): kernels, launchers and the
torch.library custom ops (with the op's shared fakes and autograd), in one file.

Forward: _channel_attention_squeeze_kernel sums each (sample, channel) over a split of the
pixels, _channel_attention_mlp_fwd_kernel (one program per sample) sums the splits in order and
runs the bottleneck MLP and the gate, _channel_attention_excite_kernel writes y = x * g.
Backward: the same squeeze of grad_y * x, _channel_attention_mlp_bwd_kernel back through the
gate, fc2, the activation and fc1, the excite writing grad_x = grad_y * g + ds / N, and
_channel_attention_batch_outer_kernel summing the parameters' gradients over the batch. No
atomics: every sum runs in a fixed order. x is addressed through its strides (Triton specializes
unit strides, so NCHW and channels_last tiles are both loaded coalesced); offsets are int64.
"""

import math
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ... import _triton
from ..._validation import accumulate_dtype
from . import autograd

RELU, SILU = 0, 1
SIGMOID, HARDSIGMOID = 0, 1


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _activate(h, ACT: tl.constexpr):
    if ACT == 0:
        return tl.maximum(h, 0.0)
    return h * _sigmoid(h)


@triton.jit
def _activation_grad(h, ACT: tl.constexpr):
    if ACT == 0:
        return tl.where(h > 0.0, 1.0, 0.0)
    sg = _sigmoid(h)
    return sg * (1.0 + h * (1.0 - sg))


@triton.jit
def _gate(u, GATE: tl.constexpr):
    if GATE == 0:
        return _sigmoid(u)
    return tl.minimum(tl.maximum(u + 3.0, 0.0), 6.0) / 6.0


@triton.jit
def _gate_grad(u, g, GATE: tl.constexpr):
    if GATE == 0:
        return g * (1.0 - g)
    return tl.where((u > -3.0) & (u < 3.0), 1.0 / 6.0, 0.0)


@triton.jit
def _offset_type(i, WIDE: tl.constexpr):
    if WIDE:
        return i.to(tl.int64)
    return i


@triton.jit
def _channel_attention_squeeze_kernel(
    a_ptr, b_ptr, partial_ptr, C, N, pixels_per_split,
    s_ab, s_ac, s_an, s_bb, s_bc, s_bn,
    HAS_B: tl.constexpr, WIDE: tl.constexpr, DIV: tl.constexpr, HINT_A: tl.constexpr,
    HINT_B: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
):
    """Grid (B, channel blocks, splits): partial[b, split, c] = sum over the split's pixels of
    a[b, c, n] (times b[b, c, n] when HAS_B). Offsets within a sample are int32 unless WIDE."""
    b = tl.program_id(0).to(tl.int64)
    if DIV[2] > 1:
        s_ab = tl.multiple_of(s_ab, DIV[2])
    if DIV[3] > 1:
        s_bb = tl.multiple_of(s_bb, DIV[3])
    a_ptr += b * s_ab
    b_ptr += b * s_bb
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    split = tl.program_id(2)
    n_begin = split * pixels_per_split
    n_end = tl.minimum(n_begin + pixels_per_split, N)
    if DIV[1] > 1:
        n_end = tl.multiple_of(n_end, DIV[1])
    if DIV[0] > 1:
        C = tl.multiple_of(C, DIV[0])
    acc = tl.zeros([BC], tl.float32)
    for n0 in range(n_begin, n_end, BN):
        n = n0 + tl.arange(0, BN)
        mask = (c[:, None] < C) & (n[None, :] < n_end)
        cc, nn = _offset_type(c[:, None], WIDE), _offset_type(n[None, :], WIDE)
        off_a, off_b = cc * s_ac + nn * s_an, cc * s_bc + nn * s_bn
        off_a = tl.multiple_of(off_a, [HINT_A[0], HINT_A[1]])
        off_b = tl.multiple_of(off_b, [HINT_B[0], HINT_B[1]])
        x = tl.load(a_ptr + off_a, mask=mask, other=0.0).to(tl.float32)
        if HAS_B:
            x *= tl.load(b_ptr + off_b, mask=mask, other=0.0).to(tl.float32)
        acc += tl.sum(x, axis=1)
    tl.store(partial_ptr + (b * tl.num_programs(2) + split) * C + c, acc, mask=c < C)


@triton.jit
def _sum_splits(partial_ptr, b, c, C, splits, SB: tl.constexpr):
    """sum over the splits of partial[b, split, c], SB splits per load, in a fixed order."""
    total = tl.zeros(c.shape, tl.float32)
    for i0 in range(0, splits, SB):
        i = i0 + tl.arange(0, SB)
        p = tl.load(partial_ptr + (b * splits + i[:, None]) * C + c[None, :],
                    mask=(i[:, None] < splits) & (c[None, :] < C), other=0.0)
        total += tl.sum(p, axis=0)
    return total


@triton.jit
def _channel_attention_mlp_fwd_kernel(
    partial_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, s_ptr, h_ptr, u_ptr, scale_ptr,
    C, N, R, splits,
    HAS_B1: tl.constexpr, HAS_B2: tl.constexpr, ACT: tl.constexpr, GATE: tl.constexpr,
    RP: tl.constexpr, BC: tl.constexpr, SB: tl.constexpr,
):
    """One program per sample, the whole bottleneck (R <= RP) in registers: s = (sum of the
    splits) / N, h = fc1(s), u = fc2(act(h)), scale = gate(u); s, h and u are saved."""
    b = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, RP)
    h = tl.zeros([RP], tl.float32)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        s = _sum_splits(partial_ptr, b, c, C, splits, SB) / N
        tl.store(s_ptr + b * C + c, s, mask=c < C)
        w1 = tl.load(w1_ptr + r[:, None] * C + c[None, :], mask=(r[:, None] < R) & (c[None, :] < C),
                     other=0.0).to(tl.float32)
        h += tl.sum(w1 * s[None, :], axis=1)
    if HAS_B1:
        h += tl.load(b1_ptr + r, mask=r < R, other=0.0).to(tl.float32)
    tl.store(h_ptr + b * R + r, h, mask=r < R)
    z = tl.where(r < R, _activate(h, ACT), 0.0)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        w2 = tl.load(w2_ptr + c[:, None] * R + r[None, :], mask=(c[:, None] < C) & (r[None, :] < R),
                     other=0.0).to(tl.float32)
        u = tl.sum(w2 * z[None, :], axis=1)
        if HAS_B2:
            u += tl.load(b2_ptr + c, mask=c < C, other=0.0).to(tl.float32)
        tl.store(u_ptr + b * C + c, u, mask=c < C)
        tl.store(scale_ptr + b * C + c, _gate(u, GATE), mask=c < C)


@triton.jit
def _channel_attention_mlp_bwd_kernel(
    partial_ptr, w1_ptr, w2_ptr, h_ptr, u_ptr, scale_ptr, shift_ptr, dh_ptr, du_ptr, z_ptr,
    C, N, R, splits,
    ACT: tl.constexpr, GATE: tl.constexpr, RP: tl.constexpr, BC: tl.constexpr,
    SB: tl.constexpr,
):
    """One program per sample: du = (sum_n gy x) gate'(u), dz = fc2^T du, dh = dz act'(h),
    ds = fc1^T dh; writes scale = g and shift = ds / N for the excite, and du, dh, act(h) for
    the parameters' gradients."""
    b = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, RP)
    dz = tl.zeros([RP], tl.float32)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        u = tl.load(u_ptr + b * C + c, mask=c < C, other=0.0)
        g = _gate(u, GATE)
        du = tl.where(c < C, _sum_splits(partial_ptr, b, c, C, splits, SB)
                      * _gate_grad(u, g, GATE), 0.0)
        tl.store(scale_ptr + b * C + c, g, mask=c < C)
        tl.store(du_ptr + b * C + c, du, mask=c < C)
        w2 = tl.load(w2_ptr + c[:, None] * R + r[None, :], mask=(c[:, None] < C) & (r[None, :] < R),
                     other=0.0).to(tl.float32)
        dz += tl.sum(w2 * du[:, None], axis=0)
    h = tl.load(h_ptr + b * R + r, mask=r < R, other=0.0)
    dh = tl.where(r < R, dz * _activation_grad(h, ACT), 0.0)
    tl.store(dh_ptr + b * R + r, dh, mask=r < R)
    tl.store(z_ptr + b * R + r, _activate(h, ACT), mask=r < R)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        w1 = tl.load(w1_ptr + r[:, None] * C + c[None, :], mask=(r[:, None] < R) & (c[None, :] < C),
                     other=0.0).to(tl.float32)
        ds = tl.sum(w1 * dh[:, None], axis=0)
        tl.store(shift_ptr + b * C + c, ds / N, mask=c < C)


@triton.jit
def _channel_attention_batch_outer_kernel(
    a_ptr, v_ptr, out_ptr, bias_ptr, B, I, J,
    BB: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr,
):
    """out[i, j] = sum_b a[b, i] v[b, j] and bias[i] = sum_b a[b, i] (programs of the first
    column block), BB samples per step (an exact float32 product of [BI, BB] x [BB, BJ]
    tiles), the steps summed in order: a parameter's gradient from per-sample vectors."""
    i = tl.program_id(0) * BI + tl.arange(0, BI)
    j = tl.program_id(1) * BJ + tl.arange(0, BJ)
    acc = tl.zeros([BI, BJ], tl.float32)
    bias = tl.zeros([BI], tl.float32)
    for b0 in range(0, B, BB):
        b = b0 + tl.arange(0, BB)
        a = tl.load(a_ptr + b[None, :] * I + i[:, None], mask=(b[None, :] < B) & (i[:, None] < I),
                    other=0.0)
        v = tl.load(v_ptr + b[:, None] * J + j[None, :], mask=(b[:, None] < B) & (j[None, :] < J),
                    other=0.0)
        acc = tl.dot(a, v, acc, input_precision="ieee")
        bias += tl.sum(a, axis=1)
    tl.store(out_ptr + i[:, None] * J + j[None, :], acc, mask=(i[:, None] < I) & (j[None, :] < J))
    if tl.program_id(1) == 0:
        tl.store(bias_ptr + i, bias, mask=i < I)


@triton.jit
def _channel_attention_excite_kernel(
    in_ptr, out_ptr, scale_ptr, shift_ptr, C, N,
    s_ib, s_ic, s_in, s_ob, s_oc, s_on,
    HAS_SHIFT: tl.constexpr, WIDE: tl.constexpr, DIV: tl.constexpr, HINT_IN: tl.constexpr,
    HINT_OUT: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
):
    """Grid (B, channel blocks, pixel blocks): out = in * scale[b, c] (+ shift[b, c]).
    Offsets within a sample are int32 unless WIDE."""
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    n = tl.program_id(2) * BN + tl.arange(0, BN)
    if DIV[0] > 1:
        C = tl.multiple_of(C, DIV[0])
    if DIV[1] > 1:
        N = tl.multiple_of(N, DIV[1])
    if DIV[2] > 1:
        s_ib = tl.multiple_of(s_ib, DIV[2])
    if DIV[3] > 1:
        s_ob = tl.multiple_of(s_ob, DIV[3])
    mask = (c[:, None] < C) & (n[None, :] < N)
    c64, n64 = _offset_type(c[:, None], WIDE), _offset_type(n[None, :], WIDE)
    off_in, off_out = c64 * s_ic + n64 * s_in, c64 * s_oc + n64 * s_on
    off_in = tl.multiple_of(off_in, [HINT_IN[0], HINT_IN[1]])
    off_out = tl.multiple_of(off_out, [HINT_OUT[0], HINT_OUT[1]])
    x = tl.load(in_ptr + b * s_ib + off_in, mask=mask, other=0.0).to(tl.float32)
    y = x * tl.load(scale_ptr + b * C + c, mask=c < C, other=0.0)[:, None]
    if HAS_SHIFT:
        y += tl.load(shift_ptr + b * C + c, mask=c < C, other=0.0)[:, None]
    tl.store(out_ptr + b * s_ob + off_out, y.to(out_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------- launchers


def launch_config(B: int, C: int, N: int, R: int, programs: int) -> dict:
    """Tile sizes and the pixel split, by a fixed heuristic (no autotuning, nothing to tune
    under torch.compile); programs: how many programs fill the GPU (two per SM):
    - BC x BN: 32 channels x 128 pixels per streaming tile (fewer pixels for small maps), 4
      warps; where the excite's tiles give fewer than half of `programs` (a small batch), the
      pixel tile is narrowed until they do (down to 16 pixels), with half the warps each time
      so that every thread still moves 16-byte vectors of the smaller tile;
    - splits: the pixels of the squeeze split until there are ~`programs` programs, at least
      one BN tile each;
    - RP: R padded to a power of two (the MLP holds the whole bottleneck), MLP_BC channels per
      MLP tile so that a [RP, MLP_BC] weight tile is 2048 elements, SB splits summed per load
      so that a [SB, MLP_BC] tile of the partial sums is at most 2048 elements (with the weight
      tile, no spills)."""
    BN = max(16, min(128, triton.next_power_of_2(N)))
    BC = max(16, min(32, triton.next_power_of_2(C)))
    warps = 4
    blocks = max(1, B * triton.cdiv(C, BC))
    while BN > 16 and blocks * triton.cdiv(N, BN) < programs // 2:
        BN //= 2
        warps = max(1, warps // 2)
    splits = max(1, min(triton.cdiv(programs, blocks), triton.cdiv(N, BN)))
    per_split = triton.cdiv(triton.cdiv(N, splits), BN) * BN
    splits = triton.cdiv(N, per_split)
    RP = max(2, triton.next_power_of_2(R))
    MLP_BC = max(16, min(triton.next_power_of_2(C), 2048 // RP, 64))
    SB = max(2, min(triton.next_power_of_2(splits), 2048 // MLP_BC))
    return dict(BN=BN, BC=BC, splits=splits, pixels_per_split=per_split, RP=RP, MLP_BC=MLP_BC,
                SB=SB, num_warps=warps, mlp_warps=4)


def _programs_wanted(device) -> int:
    """Programs a call should have to fill the GPU: two per SM."""
    return 2 * _triton.sm_count(device.index or 0) if device.type == "cuda" else 4


def _pixel_view(t: torch.Tensor) -> torch.Tensor:
    """t as (B, C, N): a view wherever H and W merge (NCHW, channels_last), else a copy."""
    return t.flatten(2) if t.dim() == 4 else t


def _matrix(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], w.shape[1]).contiguous()


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _wide(*tensors) -> bool:
    """Whether an offset within one sample of these (B, C, N) tensors may pass int32."""
    return any((t.shape[1] - 1) * abs(t.stride(1)) + (t.shape[2] - 1) * abs(t.stride(2))
               >= 2 ** 31 for t in tensors)


def _pow2(*values) -> int:
    """The largest power of two, at most 16, dividing every value (16 for none or all zero)."""
    g = 0
    for v in values:
        g = math.gcd(g, v)
    d = 1
    while d < 16 and (g == 0 or g % (2 * d) == 0):
        d *= 2
    return d


def _divisors(*values) -> tuple:
    """Each value's largest power-of-two divisor, at most 16: what Triton may assume of it
    (tl.multiple_of) where its own specialization (divisible by 16 or not) knows less; with
    the storage 16-byte aligned, runs along a unit stride can then load as vectors."""
    return tuple(_pow2(v) for v in values)


def _hint(t: torch.Tensor) -> tuple:
    """The divisibility (channels, pixels) of a [BC, BN] tile of offsets into a sample of t, in
    Triton's sense (of the first element of each contiguous run along the dimension; tiles
    start at multiples of 16): along the unit stride's dimension, the other stride's; along
    any dimension where neither stride is 1, both strides' (every offset is a multiple); 1
    along the other dimension (its offsets step by the unit stride)."""
    sc, sn = t.stride(1), t.stride(2)
    if sn == 1 and sc != 1:
        return (1, _pow2(sc))
    if sc == 1 and sn != 1:
        return (_pow2(sn), 1)
    return (_pow2(sc, sn), _pow2(sc, sn))


def _squeeze_launch(a3, b3, partials, cfg) -> "_triton.Launch":
    """partials[b, split, c] = sum over the split's pixels of a (times b)."""
    B, C, N = a3.shape
    bb = b3 if b3 is not None else a3
    tile = cfg["BC"] * cfg["BN"] * a3.element_size() * (2 if b3 is not None else 1)
    return _triton.Launch(
        "squeeze", _channel_attention_squeeze_kernel,
        (B, triton.cdiv(C, cfg["BC"]), cfg["splits"]),
        (a3, bb, partials, C, N, cfg["pixels_per_split"], *a3.stride(), *bb.stride()),
        dict(HAS_B=b3 is not None, WIDE=_wide(a3, bb), BC=cfg["BC"], BN=cfg["BN"],
             DIV=_divisors(C, N, a3.stride(0), bb.stride(0)), HINT_A=_hint(a3),
             HINT_B=_hint(bb), num_warps=cfg["num_warps"]),
        bytes=_nbytes(a3, b3, partials), in_flight_bytes=tile,
        steps=cfg["pixels_per_split"] // cfg["BN"], streams_features=True)


def _excite_launch(in3, out3, scale, shift, cfg) -> "_triton.Launch":
    """out = in * scale (+ shift): one tile per program."""
    B, C, N = in3.shape
    return _triton.Launch(
        "excite", _channel_attention_excite_kernel,
        (B, triton.cdiv(C, cfg["BC"]), triton.cdiv(N, cfg["BN"])),
        (in3, out3, scale, shift if shift is not None else scale, C, N, *in3.stride(),
         *out3.stride()),
        dict(HAS_SHIFT=shift is not None, WIDE=_wide(in3, out3),
             DIV=_divisors(C, N, in3.stride(0), out3.stride(0)), HINT_IN=_hint(in3),
             HINT_OUT=_hint(out3),
             BC=cfg["BC"], BN=cfg["BN"],
             num_warps=cfg["num_warps"]),
        bytes=_nbytes(in3, out3, scale, shift),
        in_flight_bytes=cfg["BC"] * cfg["BN"] * in3.element_size(), steps=1,
        streams_features=True)


def _mlp_rounds(C: int, cfg) -> int:
    """The MLP kernels' dependent loop iterations: per channel block, the partial sums' loads
    (SB splits at a time) and a weight tile, then a second pass of weight tiles."""
    blocks = triton.cdiv(C, cfg["MLP_BC"])
    return blocks * (triton.cdiv(cfg["splits"], cfg["SB"]) + 1) + blocks


def forward_launches(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, y, squeezed, hidden,
                     gate_logits, activation: str, gate: str,
                     programs: Optional[int] = None) -> list:
    """The forward's launches (fusedattn._triton.Launch), with their scratch allocated.
    programs: how many programs fill the GPU (default: from x's device)."""
    B, C = x.shape[:2]
    x3, y3 = _pixel_view(x), _pixel_view(y)
    N, R = x3.shape[2], fc1_weight.shape[0]
    cfg = launch_config(B, C, N, R, programs or _programs_wanted(x.device))
    w1, w2 = _matrix(fc1_weight), _matrix(fc2_weight)
    scale = torch.empty_like(squeezed)
    partials = x3.new_empty((B, cfg["splits"], C), dtype=torch.float32)
    rounds = _mlp_rounds(C, cfg)
    return [
        _squeeze_launch(x3, None, partials, cfg),
        _triton.Launch(
            "mlp_fwd", _channel_attention_mlp_fwd_kernel, (B,),
            (partials, w1, fc1_bias if fc1_bias is not None else w1, w2,
             fc2_bias if fc2_bias is not None else w2, squeezed, hidden, gate_logits, scale,
             C, N, R, cfg["splits"]),
            dict(HAS_B1=fc1_bias is not None, HAS_B2=fc2_bias is not None,
                 ACT=RELU if activation == "relu" else SILU,
                 GATE=SIGMOID if gate == "sigmoid" else HARDSIGMOID, RP=cfg["RP"],
                 BC=cfg["MLP_BC"], SB=cfg["SB"], num_warps=cfg["mlp_warps"]),
            bytes=_nbytes(partials, w1, fc1_bias, w2, fc2_bias, squeezed, hidden, gate_logits,
                          scale),
            in_flight_bytes=max(cfg["SB"] * 4, cfg["RP"] * w1.element_size()) * cfg["MLP_BC"],
            steps=rounds, rounds=rounds),
        _excite_launch(x3, y3, scale, None, cfg),
    ]


def backward_launches(grad_y, x, fc1_weight, fc2_weight, squeezed, hidden, gate_logits,
                      grad_x, grad_fc1_weight, grad_fc1_bias, grad_fc2_weight, grad_fc2_bias,
                      activation: str, gate: str, programs: Optional[int] = None) -> list:
    """The backward's launches (fusedattn._triton.Launch), with their scratch allocated."""
    B, C = x.shape[:2]
    x3, gy3, gx3 = _pixel_view(x), _pixel_view(grad_y), _pixel_view(grad_x)
    N, R = x3.shape[2], fc1_weight.shape[0]
    cfg = launch_config(B, C, N, R, programs or _programs_wanted(x.device))
    acc = accumulate_dtype(x.dtype)
    scale, shift, du = (x.new_empty((B, C), dtype=acc) for _ in range(3))
    dh, z = (x.new_empty((B, R), dtype=acc) for _ in range(2))
    partials = x3.new_empty((B, cfg["splits"], C), dtype=torch.float32)
    w1, w2 = _matrix(fc1_weight), _matrix(fc2_weight)
    hidden, gate_logits = hidden.contiguous(), gate_logits.contiguous()
    rounds = _mlp_rounds(C, cfg)
    launches = [
        _squeeze_launch(gy3, x3, partials, cfg),
        _triton.Launch(
            "mlp_bwd", _channel_attention_mlp_bwd_kernel, (B,),
            (partials, w1, w2, hidden, gate_logits, scale, shift, dh, du, z, C, N, R,
             cfg["splits"]),
            dict(ACT=RELU if activation == "relu" else SILU,
                 GATE=SIGMOID if gate == "sigmoid" else HARDSIGMOID, RP=cfg["RP"],
                 BC=cfg["MLP_BC"], SB=cfg["SB"], num_warps=cfg["mlp_warps"]),
            bytes=_nbytes(partials, w1, w2, hidden, gate_logits, scale, shift, dh, du, z),
            in_flight_bytes=max(cfg["SB"] * 4, cfg["RP"] * w1.element_size()) * cfg["MLP_BC"],
            steps=rounds, rounds=rounds),
        _excite_launch(gy3, gx3, scale, shift, cfg),
    ]
    squeezed = squeezed.contiguous()
    for name, a, v, out, bias, I, J in (("fc1_grad", dh, squeezed, grad_fc1_weight,
                                         grad_fc1_bias, R, C),
                                        ("fc2_grad", du, z, grad_fc2_weight, grad_fc2_bias, C, R)):
        launches.append(_triton.Launch(
            name, _channel_attention_batch_outer_kernel, (triton.cdiv(I, 32), triton.cdiv(J, 32)),
            (a, v, out, bias, B, I, J), dict(BB=16, BI=32, BJ=32, num_warps=4),
            bytes=_nbytes(a, v, out, bias), in_flight_bytes=16 * (32 + 32) * 4,
            steps=triton.cdiv(B, 16), rounds=triton.cdiv(B, 16)))
    return launches


@torch.library.custom_op("fusedattn::triton_channel_attention_fwd", mutates_args=())
def channel_attention_fwd(x: torch.Tensor, fc1_weight: torch.Tensor,
                          fc1_bias: Optional[torch.Tensor], fc2_weight: torch.Tensor,
                          fc2_bias: Optional[torch.Tensor], activation: str, gate: str
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    y, squeezed, hidden, gate_logits = autograd.forward_fake(
        x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)
    if x.shape[0] == 0:
        return y, squeezed, hidden, gate_logits
    with _triton.on_device(x):
        _triton.run(forward_launches(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, y, squeezed,
                                     hidden, gate_logits, activation, gate))
    return y, squeezed, hidden, gate_logits


@torch.library.custom_op("fusedattn::triton_channel_attention_bwd", mutates_args=())
def channel_attention_bwd(grad_y: torch.Tensor, x: torch.Tensor, fc1_weight: torch.Tensor,
                          fc2_weight: torch.Tensor, squeezed: torch.Tensor, hidden: torch.Tensor,
                          gate_logits: torch.Tensor, activation: str, gate: str
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                     torch.Tensor]:
    gx, gw1, gb1, gw2, gb2 = autograd.backward_fake(grad_y, x, fc1_weight, fc2_weight, squeezed,
                                                    hidden, gate_logits, activation, gate)
    if x.shape[0] == 0:
        return gx, gw1.zero_(), gb1.zero_(), gw2.zero_(), gb2.zero_()
    with _triton.on_device(x):
        _triton.run(backward_launches(grad_y, x, fc1_weight, fc2_weight, squeezed, hidden,
                                      gate_logits, gx, gw1, gb1, gw2, gb2, activation, gate))
    return gx, gw1, gb1, gw2, gb2


channel_attention = autograd.register(channel_attention_fwd, channel_attention_bwd)
