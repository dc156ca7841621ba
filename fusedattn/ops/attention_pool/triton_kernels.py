"""attention_pool's Triton backend (docs/attention_pool.md): kernels, launch plans and the
torch.library custom ops (with the op's shared fakes and autograd), in one file. The design
follows the CUDA kernels' (csrc/attention_pool/cuda/plan.h):

Forward: "stats", one program per sample, computes the sample's statistics once (importance,
the per-map log-sum-exp, the diversity loss) and the recalibrated maps w = s sigmoid(a) in the
input dtype into a (K, NW) scratch, its rows padded to whole pixel chunks (zero past N), from
one register-resident tile of the sample's logits where it fits (one round trip); "pool", the
one pass over the features, v = alpha w f^T on tensor cores (tl.dot) per (sample, channel tile,
pixel split, map group) program, its pixel loop software-pipelined (tl.range num_stages: cp.async
on sm_80+), or where the maps are one pixel chunk a program streaming its share of the channel
tiles with w loaded once (or, where they are also one map group, computed from the logits by
each program, with no "stats" launch: its split 0 stores the statistics); where pixel chunks
were split between programs (small batches), "reduce" adds the splits' partial sums in a fixed
order.

Backward: "features" computes its pixel chunk's w from the logits and the saved importance, then
reads f once and writes gf = alpha gv^T w while accumulating its channel split's share of
gw = alpha gv f (tl.dot both; with several map groups gf comes from "grad_features" instead,
and "maps" writes w for it in parallel tiles); "epilogue", one program per sample where its
logits fit one register-resident tile, sums the splits' gw in a fixed order and applies the
spec's logits epilogue; for bigger samples "gather" (per pixel tile) sums the splits' gw and
each tile's per-map sums and "logits" applies the epilogue per pixel tile. Deterministic: no
atomics, fixed reduction orders.

Any number of maps: maps are tiled in groups of at most 64. Layouts: features are addressed
through their strides; Triton specializes unit strides and strides divisible by 16, so NCHW
(unit pixel stride) and channels_last (unit channel stride) tiles load as 16-byte vectors.
7x7 NCHW maps (channel stride 49) load element by element here (the CUDA backend streams them
as one span per channel tile). Offsets are int64.
"""

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ... import _triton, tuning
from . import autograd

INTERPRETED = tl.constexpr(_triton.interpreted())
NUM_WARPS = 4
NUM_STAGES = 4
MAX_GROUP_MAPS = 64
# Splits whose partial sums "epilogue" loads before adding any (tiles of 8 elements a thread),
# "gather" (32 a thread), and "reduce" where its tile has 8 a thread (fewer for larger tiles)
SPLITS_IN_FLIGHT = 8
GATHER_SPLITS_IN_FLIGHT = 4


# ----------------------------------------------------------------------------------- kernels


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _dot(x, y, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + x @ y on tensor cores. UPCAST (set only under TRITON_INTERPRET=1): the interpreter
    multiplies the raw bits of bfloat16 operands (triton-lang/triton#11584, "not supported
    yet"), so it gets them as float32; the operands were already rounded to the input dtype, so
    the interpreter still checks that rounding."""
    if UPCAST:
        x = x.to(tl.float32)
        y = y.to(tl.float32)
    return tl.dot(x, y, acc, input_precision=PRECISION)


@triton.jit
def _load_logits(a_ptr, s_ak, s_an, k, n, K, N):
    """The [KS, BS] tile of one sample's logits at maps k and pixels n, in float32; -inf where
    (k, n) is outside the maps, so that it vanishes from maxima and exponentials."""
    mask = (k[:, None] < K) & (n[None, :] < N)
    ptrs = a_ptr + k[:, None].to(tl.int64) * s_ak + n[None, :].to(tl.int64) * s_an
    return tl.load(ptrs, mask=mask, other=float("-inf")).to(tl.float32), mask


@triton.jit
def _accumulate_statistics(a, mask, gap, m, total):
    """The maps' running sums after one more tile of logits a (masked, -inf outside the maps):
    the sum of the sigmoid, the maximum, and the sum of exp(a - maximum), rescaled to the new
    maximum."""
    gap += tl.sum(tl.where(mask, _sigmoid(a), 0.0), axis=1)
    m_new = tl.maximum(m, tl.max(a, axis=1))
    m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows of padding
    total = total * tl.exp(m - m_ref) + tl.sum(tl.exp(a - m_ref[:, None]), axis=1)
    return gap, m_new, total


@triton.jit
def _importance(gap, m, total, k, K, N):
    """From the running sums of a tile holding every map: the importance s (softmax over the
    maps' global averages of the sigmoid maps; 0 in rows k >= K) and the per-map
    log-sum-exp (0 in rows k >= K, so that exp(a - lse) stays finite there)."""
    lse = tl.where(k < K, m + tl.log(tl.where(k < K, total, 1.0)), 0.0)
    g = tl.where(k < K, gap / N, float("-inf"))
    e = tl.exp(g - tl.max(g, axis=0))
    return e / tl.sum(e, axis=0), lse


@triton.jit
def _maps(a, mask, s):
    """w = s sigmoid(a) in float32, zero outside the mask: the one expression every kernel that
    computes w uses, so that all of them get the same bits."""
    return tl.where(mask, s[:, None] * _sigmoid(a), 0.0)


@triton.jit
def _pixel_candidates(a, mask, s, lse):
    """Per pixel, a tile of logits' largest candidate s p for the diversity."""
    return tl.max(tl.where(mask, s[:, None] * tl.exp(a - lse[:, None]), 0.0), axis=0)


@triton.jit
def _diversity_and_maps(a, mask, s, lse, k, n, w_b, K, NW):
    """The second pass over a tile of logits: w = s sigmoid(a) into the (K, NW) scratch (zero
    past N), and per pixel the tile's largest candidate s p for the diversity."""
    w = _maps(a, mask, s)
    tl.store(w_b + k[:, None].to(tl.int64) * NW + n[None, :], w.to(w_b.dtype.element_ty),
             mask=(k[:, None] < K) & (n[None, :] < NW))
    return _pixel_candidates(a, mask, s, lse)


@triton.jit
def _whole_sample_maps(a_b, s_ptr, lse_ptr, div_ptr, b, k, n, K, N, s_ak, s_an,
                       store_stats, HAS_DIV: tl.constexpr):
    """What "stats" computes, for a program whose tile of maps k and pixels n holds every map
    and pixel of sample b: the recalibrated maps w = s sigmoid(a) in float32 (zero outside),
    with store_stats the importance, the log-sum-exp and (HAS_DIV) the diversity stored too."""
    a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
    zeros = tl.zeros(k.shape, tl.float32)
    gap, m, total = _accumulate_statistics(a, mask, zeros, tl.full(k.shape, float("-inf"),
                                                                   tl.float32), zeros)
    s, lse = _importance(gap, m, total, k, K, N)
    if store_stats:
        tl.store(s_ptr + b * K + k, s, mask=k < K)
        tl.store(lse_ptr + b * K + k, lse, mask=k < K)
        if HAS_DIV:
            tl.store(div_ptr + b, 1.0 - tl.sum(_pixel_candidates(a, mask, s, lse), axis=0))
    return _maps(a, mask, s)


@triton.jit
def _stats_kernel(a_ptr, s_ptr, lse_ptr, div_ptr, w_ptr,
                  K, N, NW, s_ab, s_ak, s_an,
                  WHOLE: tl.constexpr, HAS_DIV: tl.constexpr, KS: tl.constexpr,
                  BS: tl.constexpr):
    """One program per sample: the importance s and the per-map log-sum-exp into s_ptr and
    lse_ptr, with HAS_DIV the diversity 1 - sum_n max_k s[k] p[k, n], and the recalibrated maps
    w[k, n] = s[k] sigmoid(a[k, n]) into the (K, NW) scratch, zero past N pixels.
    WHOLE: the sample's logits are one [KS, BS] tile (KS >= K, BS >= NW), loaded once and kept
    in registers for every pass (one round trip to memory); else two passes loop over pixel
    tiles (the statistics; the diversity and w), with s and lse in registers and each pass's
    copies software-pipelined into shared memory (STATS_STAGES - 1 tiles in flight) where the
    maps are one tile (K <= KS), through memory otherwise."""
    b = tl.program_id(0).to(tl.int64)
    a_b = a_ptr + b * s_ab
    w_b = w_ptr + b * K * NW
    k = tl.arange(0, KS)
    zeros, minus_inf = tl.zeros([KS], tl.float32), tl.full([KS], float("-inf"), tl.float32)
    if WHOLE:  # (the statistics and the diversity stored by _whole_sample_maps)
        n = tl.arange(0, BS)
        w = _whole_sample_maps(a_b, s_ptr, lse_ptr, div_ptr, b, k, n, K, N, s_ak, s_an, True,
                               HAS_DIV)
        tl.store(w_b + k[:, None].to(tl.int64) * NW + n[None, :], w.to(w_b.dtype.element_ty),
                 mask=(k[:, None] < K) & (n[None, :] < NW))
    elif K <= KS:
        gap, m, total = zeros, minus_inf, zeros
        for n0 in tl.range(0, N, BS, num_stages=STATS_STAGES):
            a, mask = _load_logits(a_b, s_ak, s_an, k, n0 + tl.arange(0, BS), K, N)
            gap, m, total = _accumulate_statistics(a, mask, gap, m, total)
        s, lse = _importance(gap, m, total, k, K, N)
        tl.store(s_ptr + b * K + k, s, mask=k < K)
        tl.store(lse_ptr + b * K + k, lse, mask=k < K)
        D = tl.zeros((), tl.float32)
        for n0 in tl.range(0, NW, BS, num_stages=STATS_STAGES):
            n = n0 + tl.arange(0, BS)
            a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
            D += tl.sum(_diversity_and_maps(a, mask, s, lse, k, n, w_b, K, NW), axis=0)
    else:
        # Per map tile: the global average of the sigmoid and the log-sum-exp.
        for k0 in range(0, K, KS):
            kt = k0 + k
            gap, m, total = zeros, minus_inf, zeros
            for n0 in range(0, N, BS):
                a, mask = _load_logits(a_b, s_ak, s_an, kt, n0 + tl.arange(0, BS), K, N)
                gap, m, total = _accumulate_statistics(a, mask, gap, m, total)
            tl.store(s_ptr + b * K + kt, gap / N, mask=kt < K)
            tl.store(lse_ptr + b * K + kt, m + tl.log(tl.where(kt < K, total, 1.0)),
                     mask=kt < K)
        tl.debug_barrier()
        # The softmax over the K averages (kept in s_ptr meanwhile).
        g_max = tl.full((), float("-inf"), tl.float32)
        for k0 in range(0, K, KS):
            g = tl.load(s_ptr + b * K + k0 + k, mask=k0 + k < K, other=float("-inf"))
            g_max = tl.maximum(g_max, tl.max(g, axis=0))
        g_sum = tl.zeros((), tl.float32)
        for k0 in range(0, K, KS):
            g = tl.load(s_ptr + b * K + k0 + k, mask=k0 + k < K, other=float("-inf"))
            g_sum += tl.sum(tl.exp(g - g_max), axis=0)
        tl.debug_barrier()
        for k0 in range(0, K, KS):
            g = tl.load(s_ptr + b * K + k0 + k, mask=k0 + k < K, other=float("-inf"))
            tl.store(s_ptr + b * K + k0 + k, tl.exp(g - g_max) / g_sum, mask=k0 + k < K)
        tl.debug_barrier()
        # The diversity and w, one pass over the tiles.
        D = tl.zeros((), tl.float32)
        for n0 in range(0, NW, BS):
            n = n0 + tl.arange(0, BS)
            best = tl.zeros([BS], tl.float32)
            for k0 in range(0, K, KS):
                kt = k0 + k
                a, mask = _load_logits(a_b, s_ak, s_an, kt, n, K, N)
                s = tl.load(s_ptr + b * K + kt, mask=kt < K, other=0.0)
                lse = tl.load(lse_ptr + b * K + kt, mask=kt < K, other=0.0)
                best = tl.maximum(best, _diversity_and_maps(a, mask, s, lse, kt, n, w_b, K, NW))
            D += tl.sum(best, axis=0)
    if HAS_DIV and not WHOLE:
        tl.store(div_ptr + b, 1.0 - D)


@triton.jit
def _recalibrated_maps(a_b, s_ptr, b, k, n, K, N, s_ak, s_an):
    """w[k, n] = s[k] sigmoid(a[k, n]) in float32, zero outside the maps and pixels (the
    forward's expression: the same bits wherever it is computed)."""
    a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
    s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
    return _maps(a, mask, s)


@triton.jit
def _maps_kernel(a_ptr, s_ptr, w_ptr, K, N, KW, NW, s_ab, s_ak, s_an, n_tiles,
                 KS: tl.constexpr, BS: tl.constexpr):
    """Grid (B x pixel tiles, map tiles): one [KS, BS] tile of w = s sigmoid(a) from the saved
    importance into the (KW, NW) scratch (the backward with several map groups)."""
    pid = tl.program_id(0)
    b = (pid // n_tiles).to(tl.int64)
    n = pid % n_tiles * BS + tl.arange(0, BS)
    k = tl.program_id(1) * KS + tl.arange(0, KS)
    w = _recalibrated_maps(a_ptr + b * s_ab, s_ptr, b, k, n, K, N, s_ak, s_an)
    tl.store(w_ptr + (b * KW + k[:, None]) * NW + n[None, :], w.to(w_ptr.dtype.element_ty),
             mask=(k[:, None] < KW) & (n[None, :] < NW))


@triton.jit
def _sum_splits(gw_b, split_stride, rows, mask, n_splits, UNROLL: tl.constexpr):
    """sum_i gw_b[i * split_stride + rows] over the splits (of channels for gw, of pixels for
    the pool's partial sums), added in split order (0.0 for the loads past the last split),
    UNROLL splits' loads in flight at a time (none waits for an add): a round trip per UNROLL
    splits."""
    gw = tl.zeros(rows.shape, tl.float32)
    for i in range(0, n_splits, UNROLL):
        at = gw_b + i * split_stride + rows  # (int32: a sample's splits hold < 2^31 floats)
        for j in tl.static_range(UNROLL):
            gw += tl.load(at + j * split_stride, mask=mask & (i + j < n_splits), other=0.0)
    return gw


@triton.jit
def _pool_kernel(f_ptr, w_ptr, v_ptr, part_ptr,
                 C, K, N, KW, NW, alpha, s_fb, s_fc, s_fn,
                 n_ctiles, n_splits, chunks_per_split,
                 SPLIT: tl.constexpr, KG: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
                 STAGES: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (B x channel tiles x pixel splits, map groups): v[k, c] = alpha sum_n w[k, n]
    f[c, n] over the split's pixel chunks, into v (SPLIT false) or the split's partial sums."""
    pid = tl.program_id(0)
    split = pid % n_splits
    ct = pid // n_splits % n_ctiles
    b = (pid // (n_splits * n_ctiles)).to(tl.int64)
    k = tl.program_id(1) * KG + tl.arange(0, KG)
    c = ct * BC + tl.arange(0, BC)
    f_b = f_ptr + b * s_fb
    w_b = w_ptr + b * K * NW
    n_begin = split * chunks_per_split * BN
    n_end = tl.minimum(n_begin + chunks_per_split * BN, N)
    acc = tl.zeros([KG, BC], tl.float32)
    for n0 in tl.range(n_begin, n_end, BN, num_stages=STAGES):
        n = n0 + tl.arange(0, BN)
        w = tl.load(w_b + k[:, None].to(tl.int64) * NW + n[None, :], mask=k[:, None] < K,
                    other=0.0)  # (pixels padded to NW: no pixel mask)
        f = tl.load(f_b + c[:, None].to(tl.int64) * s_fc + n[None, :].to(tl.int64) * s_fn,
                    mask=(c[:, None] < C) & (n[None, :] < N), other=0.0)
        acc = _dot(w, tl.trans(f), acc, DOT_PRECISION, INTERPRETED)
    if SPLIT:
        rows = ((b * n_ctiles + ct) * n_splits + split) * KW + k
        tl.store(part_ptr + rows[:, None] * BC + tl.arange(0, BC)[None, :], acc)
    else:
        tl.store(v_ptr + (b * K + k[:, None]) * C + c[None, :],
                 (acc * alpha).to(v_ptr.dtype.element_ty),
                 mask=(k[:, None] < K) & (c[None, :] < C))


@triton.jit
def _pool_tiles_kernel(f_ptr, w_ptr, a_ptr, s_ptr, lse_ptr, div_ptr, v_ptr,
                       C, K, N, NW, alpha, s_fb, s_fc, s_fn, s_ab, s_ak, s_an,
                       n_ctiles, n_splits, tiles_per_split,
                       STATS: tl.constexpr, HAS_DIV: tl.constexpr,
                       KG: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
                       STAGES: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (B x channel splits, map groups), for maps of one pixel chunk (N <= BN): the
    split's channel tiles streamed through one program, w loaded once. (One program per
    channel tile of so few pixels would spend more instructions on setting up than on
    moving the tile.) STATS (one map group): no "stats" launch before it; each program
    computes w from its sample's logits, which its one [KG, BN] tile holds, and split 0 stores
    the sample's statistics."""
    pid = tl.program_id(0)
    split = pid % n_splits
    b = (pid // n_splits).to(tl.int64)
    k = tl.program_id(1) * KG + tl.arange(0, KG)
    n = tl.arange(0, BN)
    if STATS:
        w = _whole_sample_maps(a_ptr + b * s_ab, s_ptr, lse_ptr, div_ptr, b, k, n, K, N, s_ak,
                               s_an, split == 0, HAS_DIV).to(f_ptr.dtype.element_ty)
    else:
        w = tl.load(w_ptr + (b * K + k[:, None]) * NW + n[None, :], mask=k[:, None] < K,
                    other=0.0)
    f_b = f_ptr + b * s_fb
    t_begin = split * tiles_per_split
    t_end = tl.minimum(t_begin + tiles_per_split, n_ctiles)
    for ct in tl.range(t_begin, t_end, num_stages=STAGES):
        c = ct * BC + tl.arange(0, BC)
        f = tl.load(f_b + c[:, None].to(tl.int64) * s_fc + n[None, :].to(tl.int64) * s_fn,
                    mask=(c[:, None] < C) & (n[None, :] < N), other=0.0)
        v = _dot(w, tl.trans(f), tl.zeros([KG, BC], tl.float32), DOT_PRECISION, INTERPRETED)
        tl.store(v_ptr + (b * K + k[:, None]) * C + c[None, :],
                 (v * alpha).to(v_ptr.dtype.element_ty),
                 mask=(k[:, None] < K) & (c[None, :] < C))


@triton.jit
def _reduce_kernel(part_ptr, v_ptr, C, K, KW, alpha, n_ctiles, n_splits,
                   KG: tl.constexpr, BC: tl.constexpr, SPLITS_IN_FLIGHT: tl.constexpr):
    """Grid (B x channel tiles, map groups): v = alpha * the splits' partial sums, added in
    split order."""
    pid = tl.program_id(0)
    ct = pid % n_ctiles
    b = (pid // n_ctiles).to(tl.int64)
    k = tl.program_id(1) * KG + tl.arange(0, KG)
    c = ct * BC + tl.arange(0, BC)
    offsets = k[:, None].to(tl.int64) * BC + tl.arange(0, BC)[None, :]
    acc = _sum_splits(part_ptr + (b * n_ctiles + ct) * n_splits * KW * BC, KW * BC, offsets,
                      k[:, None] < KW, n_splits, SPLITS_IN_FLIGHT)
    tl.store(v_ptr + (b * K + k[:, None]) * C + c[None, :],
             (acc * alpha).to(v_ptr.dtype.element_ty),
             mask=(k[:, None] < K) & (c[None, :] < C))


@triton.jit
def _features_kernel(f_ptr, a_ptr, s_ptr, gv_ptr, gf_ptr, gw_ptr,
                     C, K, N, KW, NW, alpha,
                     s_fb, s_fc, s_fn, s_gfb, s_gfc, s_gfn, s_ab, s_ak, s_an,
                     n_chunks, n_splits, tiles_per_split, n_ctiles,
                     WRITE_GF: tl.constexpr, KG: tl.constexpr, BC: tl.constexpr,
                     BN: tl.constexpr, STAGES: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Grid (B x pixel chunks x channel splits, map groups): the one pass over the features for
    one pixel chunk and the split's channel tiles: gf = alpha gv^T w (WRITE_GF: one map group)
    and the split's share of gw = alpha gv f, into gw_ptr[b, split] (summed by "epilogue" or
    "gather"; rows past K are not stored).
    w: the chunk's [KG, BN] tile computed once from the logits and the saved importance (no w
    scratch, no launch to write one)."""
    pid = tl.program_id(0)
    split = pid % n_splits
    chunk = pid // n_splits % n_chunks
    b = (pid // (n_splits * n_chunks)).to(tl.int64)
    k = tl.program_id(1) * KG + tl.arange(0, KG)
    n = chunk * BN + tl.arange(0, BN)
    f_b = f_ptr + b * s_fb
    gf_b = gf_ptr + b * s_gfb
    w = _recalibrated_maps(a_ptr + b * s_ab, s_ptr, b, k, n, K, N, s_ak, s_an)
    w = w.to(f_ptr.dtype.element_ty)
    gw = tl.zeros([KG, BN], tl.float32)
    t_begin = split * tiles_per_split
    t_end = tl.minimum(t_begin + tiles_per_split, n_ctiles)
    for ct in tl.range(t_begin, t_end, num_stages=STAGES):
        c = ct * BC + tl.arange(0, BC)
        fc_mask = (c[:, None] < C) & (n[None, :] < N)
        f = tl.load(f_b + c[:, None].to(tl.int64) * s_fc + n[None, :].to(tl.int64) * s_fn,
                    mask=fc_mask, other=0.0)
        gv = tl.load(gv_ptr + (b * K + k[:, None]) * C + c[None, :],
                     mask=(k[:, None] < K) & (c[None, :] < C), other=0.0)
        gw = _dot(gv, f, gw, DOT_PRECISION, INTERPRETED)
        if WRITE_GF:
            gf = _dot(tl.trans(gv), w, tl.zeros([BC, BN], tl.float32), DOT_PRECISION,
                      INTERPRETED)
            tl.store(gf_b + c[:, None].to(tl.int64) * s_gfc + n[None, :].to(tl.int64) * s_gfn,
                     (gf * alpha).to(gf_ptr.dtype.element_ty), mask=fc_mask)
    rows = (b * n_splits + split) * KW + k
    tl.store(gw_ptr + rows[:, None] * NW + n[None, :], gw * alpha, mask=k[:, None] < K)


@triton.jit
def _grad_features_kernel(w_ptr, gv_ptr, gf_ptr, C, K, N, KW, NW, alpha,
                          s_gfb, s_gfc, s_gfn, n_chunks, n_ctiles,
                          KG: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
                          DOT_PRECISION: tl.constexpr):
    """Grid (B x pixel chunks x channel tiles): gf = alpha sum over the map groups of
    gv_g^T w_g, for calls with several map groups."""
    pid = tl.program_id(0)
    ct = pid % n_ctiles
    chunk = pid // n_ctiles % n_chunks
    b = (pid // (n_ctiles * n_chunks)).to(tl.int64)
    n = chunk * BN + tl.arange(0, BN)
    c = ct * BC + tl.arange(0, BC)
    acc = tl.zeros([BC, BN], tl.float32)
    for k0 in range(0, K, KG):
        k = k0 + tl.arange(0, KG)
        w = tl.load(w_ptr + (b * KW + k[:, None]) * NW + n[None, :])
        gv = tl.load(gv_ptr + (b * K + k[:, None]) * C + c[None, :],
                     mask=(k[:, None] < K) & (c[None, :] < C), other=0.0)
        acc = _dot(tl.trans(gv), w, acc, DOT_PRECISION, INTERPRETED)
    tl.store(gf_ptr + b * s_gfb + c[:, None].to(tl.int64) * s_gfc + n[None, :].to(tl.int64) * s_gfn,
             (acc * alpha).to(gf_ptr.dtype.element_ty),
             mask=(c[:, None] < C) & (n[None, :] < N))


@triton.jit
def _tile_winner(a, mask, s, lse, k):
    """Per pixel of a tile of maps k: the largest candidate s p (the forward's, bit for bit; -1
    outside the maps) and the lowest map attaining it (torch.max's tie rule)."""
    cand = tl.where(mask, s[:, None] * tl.exp(a - lse[:, None]), -1.0)
    best = tl.max(cand, axis=0)
    return best, tl.min(tl.where(cand == best[None, :], k[:, None], 2147483647), axis=0)


@triton.jit
def _diversity_gradient(p, s, k, winner, gd, won):
    """The diversity's part of the spec's grad_logits on a tile: p (gp - sum_m p gp), where
    gp = -gd s at the map that wins the pixel (its p summed over the pixels it wins: won)."""
    gp = tl.where(k[:, None] == winner[None, :], -gd * s[:, None], 0.0)
    return p * (gp - (-gd * s * won)[:, None])


@triton.jit
def _winners(a_b, s_ptr, lse_ptr, b, n, K, N, s_ak, s_an, KS: tl.constexpr, BP: tl.constexpr):
    """Per pixel, the lowest map k attaining max_k s[k] p[k, n] (the forward's candidates, bit
    for bit, and torch.max's tie rule), the maps scanned KS at a time in ascending order."""
    best = tl.full([BP], -1.0, tl.float32)
    winner = tl.zeros([BP], tl.int32)
    for k0 in range(0, K, KS):
        k = k0 + tl.arange(0, KS)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
        lse = tl.load(lse_ptr + b * K + k, mask=k < K, other=0.0)
        tile_best, tile_winner = _tile_winner(a, mask, s, lse, k)
        replace = tile_best > best  # strictly: an earlier map keeps a tie
        best = tl.where(replace, tile_best, best)
        winner = tl.where(replace, tile_winner, winner)
    return winner


@triton.jit
def _gather_kernel(a_ptr, s_ptr, lse_ptr, gw_ptr, sums_ptr,
                   K, N, KW, NW, n_splits, n_ptiles, s_ab, s_ak, s_an,
                   HAS_GD: tl.constexpr, KS: tl.constexpr, BP: tl.constexpr,
                   SPLITS_IN_FLIGHT: tl.constexpr):
    """Grid (B x pixel tiles): gw summed over the channel splits in split order (into split 0's
    slot where there are several), and per map this tile's sum_n gw sig and the probability
    mass of the pixels the map wins (sums[b, tile, 0 / 1, k])."""
    pid = tl.program_id(0)
    tile = pid % n_ptiles
    b = (pid // n_ptiles).to(tl.int64)
    a_b = a_ptr + b * s_ab
    n = tile * BP + tl.arange(0, BP)
    if HAS_GD:
        winner = _winners(a_b, s_ptr, lse_ptr, b, n, K, N, s_ak, s_an, KS, BP)
    sums_b = sums_ptr + (b * n_ptiles + tile) * 2 * KW
    for k0 in range(0, K, KS):
        k = k0 + tl.arange(0, KS)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        rows = k[:, None].to(tl.int64) * NW + n[None, :]
        gw = _sum_splits(gw_ptr + b * n_splits * KW * NW, KW * NW, rows, mask, n_splits,
                         SPLITS_IN_FLIGHT)
        if n_splits > 1:  # the sum, for "logits", in split 0's slot
            tl.store(gw_ptr + b * n_splits * KW * NW + rows, gw, mask=mask)
        tl.store(sums_b + k, tl.sum(tl.where(mask, gw * _sigmoid(a), 0.0), axis=1), mask=k < K)
        won = tl.zeros([KS], tl.float32)
        if HAS_GD:
            lse = tl.load(lse_ptr + b * K + k, mask=k < K, other=0.0)
            p = tl.where(mask, tl.exp(a - lse[:, None]), 0.0)
            won = tl.sum(tl.where(k[:, None] == winner[None, :], p, 0.0), axis=1)
        tl.store(sums_b + KW + k, won, mask=k < K)


@triton.jit
def _gs_total(sums_b, gs_ptr, b, k, K, KW, n_ptiles, gd):
    """gs_tot = gs + sum_n gw sig - gd sum_{n won by k} p over all pixel tiles (in tile order),
    and the won mass."""
    gw_sig = tl.zeros(k.shape, tl.float32)
    won = tl.zeros(k.shape, tl.float32)
    for t in range(0, n_ptiles):
        gw_sig += tl.load(sums_b + t * 2 * KW + k, mask=k < K, other=0.0)
        won += tl.load(sums_b + t * 2 * KW + KW + k, mask=k < K, other=0.0)
    gs = tl.load(gs_ptr + b * K + k, mask=k < K, other=0.0)
    return gs + gw_sig - gd * won, won


@triton.jit
def _logits_kernel(a_ptr, s_ptr, lse_ptr, gs_ptr, gd_ptr, gw_ptr, sums_ptr, ga_ptr,
                   K, N, KW, NW, n_splits, n_ptiles,
                   s_ab, s_ak, s_an, s_gab, s_gak, s_gan,
                   HAS_GD: tl.constexpr, KS: tl.constexpr, BP: tl.constexpr):
    """Grid (B x pixel tiles), the spec's epilogue:
    gs_tot = gs + sum_n gw sig - gd sum_{n won by k} p;  gg = s (gs_tot - sum_j s_j gs_tot_j)
    ga = (s gw + gg / N) sig (1 - sig) + p (gp - sum_m p gp),  gp = -gd s where k wins."""
    pid = tl.program_id(0)
    tile = pid % n_ptiles
    b = (pid // n_ptiles).to(tl.int64)
    a_b = a_ptr + b * s_ab
    ga_b = ga_ptr + b * s_gab
    sums_b = sums_ptr + b * n_ptiles * 2 * KW
    gd = tl.zeros((), tl.float32)
    if HAS_GD:
        gd = tl.load(gd_ptr + b)
    weighted = tl.zeros((), tl.float32)
    for k0 in range(0, K, KS):
        k = k0 + tl.arange(0, KS)
        gs_tot, won = _gs_total(sums_b, gs_ptr, b, k, K, KW, n_ptiles, gd)
        s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
        weighted += tl.sum(s * gs_tot, axis=0)
    n = tile * BP + tl.arange(0, BP)
    if HAS_GD:
        winner = _winners(a_b, s_ptr, lse_ptr, b, n, K, N, s_ak, s_an, KS, BP)
    for k0 in range(0, K, KS):
        k = k0 + tl.arange(0, KS)
        gs_tot, won = _gs_total(sums_b, gs_ptr, b, k, K, KW, n_ptiles, gd)
        s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
        gg = s * (gs_tot - weighted)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        gw = tl.load(gw_ptr + b * n_splits * KW * NW + k[:, None].to(tl.int64) * NW + n[None, :],
                     mask=mask, other=0.0)
        sig = _sigmoid(a)
        ga = (s[:, None] * gw + gg[:, None] / N) * sig * (1.0 - sig)
        if HAS_GD:
            lse = tl.load(lse_ptr + b * K + k, mask=k < K, other=0.0)
            p = tl.where(mask, tl.exp(a - lse[:, None]), 0.0)
            ga += _diversity_gradient(p, s, k, winner, gd, won)
        tl.store(ga_b + k[:, None].to(tl.int64) * s_gak + n[None, :].to(tl.int64) * s_gan,
                 ga.to(ga_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _epilogue_kernel(a_ptr, s_ptr, lse_ptr, gs_ptr, gd_ptr, gw_ptr, ga_ptr,
                     K, N, KW, NW, n_splits, s_ab, s_ak, s_an, s_gab, s_gak, s_gan,
                     HAS_GD: tl.constexpr, KS: tl.constexpr, BS: tl.constexpr,
                     SPLITS_IN_FLIGHT: tl.constexpr):
    """One program per sample whose logits are one [KS, BS] tile (KS >= K, BS >= N): "gather"
    and "logits" in one launch, every pass over registers. gw is summed over the channel
    splits in split order; the per-map sums over the sample's pixels are whole-tile sums."""
    b = tl.program_id(0).to(tl.int64)
    k = tl.arange(0, KS)
    n = tl.arange(0, BS)
    a, mask = _load_logits(a_ptr + b * s_ab, s_ak, s_an, k, n, K, N)
    rows = k[:, None].to(tl.int64) * NW + n[None, :]
    gw = _sum_splits(gw_ptr + b * n_splits * KW * NW, KW * NW, rows, mask, n_splits,
                     SPLITS_IN_FLIGHT)
    s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
    lse = tl.load(lse_ptr + b * K + k, mask=k < K, other=0.0)
    sig = _sigmoid(a)
    gs_tot = tl.load(gs_ptr + b * K + k, mask=k < K, other=0.0) + \
        tl.sum(tl.where(mask, gw * sig, 0.0), axis=1)
    if HAS_GD:
        gd = tl.load(gd_ptr + b)
        _, winner = _tile_winner(a, mask, s, lse, k)
        p = tl.where(mask, tl.exp(a - lse[:, None]), 0.0)
        won = tl.sum(tl.where(k[:, None] == winner[None, :], p, 0.0), axis=1)
        gs_tot -= gd * won
    gg = s * (gs_tot - tl.sum(s * gs_tot, axis=0))
    ga = (s[:, None] * gw + gg[:, None] / N) * sig * (1.0 - sig)
    if HAS_GD:
        ga += _diversity_gradient(p, s, k, winner, gd, won)
    ga_b = ga_ptr + b * s_gab
    tl.store(ga_b + k[:, None].to(tl.int64) * s_gak + n[None, :].to(tl.int64) * s_gan,
             ga.to(ga_ptr.dtype.element_ty), mask=mask)


# ------------------------------------------------------------------------------ launch plans


def tiles(C: int, K: int, N: int, dtype: torch.dtype) -> dict:
    """Tile sizes by a fixed rule (no autotuning: no recompilation per batch size, nothing to
    tune under torch.compile). KG: maps per group (tl.dot's k or m, >= 16, at most 64); BC x BN:
    the feature tile (32 x 32 for float32, whose exact dot runs on FMA units); KS x BS: the
    logits tiles of the backward's "maps" (KS also "gather"'s and "logits"' maps per step);
    BP: pixels per "gather" and "logits" program. ("stats" and the one-launch "epilogue" size
    their own: stats_config, epilogue_config.)"""
    KG = min(MAX_GROUP_MAPS, max(16, triton.next_power_of_2(K)))
    wide = dtype != torch.float32
    BN = 64 if wide else 32
    BC = 64 if wide else 32
    KS = min(32, max(2, triton.next_power_of_2(K)))
    BS = max(16, min(triton.next_power_of_2(N), 4096 // KS))
    BP = max(16, min(512, triton.next_power_of_2(N), 4096 // KS))
    return dict(KG=KG, BC=BC, BN=BN, KS=KS, BS=BS, BP=BP)


# A config forced by `python -m fusedattn tune` while it times candidates (ops/.../tuning.py).
_forced: Optional[dict] = None


def shape_class(B: int, C: int, K: int, N: int) -> str:
    """The tuning cache's class of a call: sizes bucketed by powers of 4."""
    def bucket(x):
        b = 1
        while b < x:
            b *= 4
        return b
    return f"B{bucket(B)}-C{bucket(C)}-K{bucket(K)}-N{bucket(N)}"


def launch_config(B: int, C: int, K: int, N: int, dtype: torch.dtype, device,
                  programs: Optional[int] = None) -> dict:
    """tiles() and the warps and pipeline stages, with what `python -m fusedattn tune` found
    best on this GPU for this class of shapes (or the config being timed) in their place.
    Where the feature tiles give fewer than half of `programs` (one per SM: a small batch),
    the pixel tile is narrowed until they do (down to 16 pixels), with half the warps each time
    so that every thread still moves 16-byte vectors of the smaller tiles. (num_warps is the
    streaming kernels'; "stats" and "epilogue" take theirs from stats_config and
    epilogue_config, the other small kernels run NUM_WARPS.)"""
    config = dict(tiles(C, K, N, dtype), num_warps=NUM_WARPS, stages=NUM_STAGES)
    programs = programs or _programs_wanted(device)
    tile_count = lambda bn: (B * triton.cdiv(C, config["BC"]) * triton.cdiv(N, bn)
                             * triton.cdiv(K, config["KG"]))
    while config["BN"] > 16 and tile_count(config["BN"]) < programs // 2:
        config["BN"] //= 2
        config["num_warps"] = max(1, config["num_warps"] // 2)
    tuned = _forced if _forced is not None else tuning.lookup(
        "attention_pool", "triton", device, dtype, shape_class(B, C, K, N))
    if tuned:
        config.update(tuned)
    return config


# The most logits elements a program of the forward's "stats" loads at once: 32 per thread at
# 16 warps (more would spill).
STATS_TILE_ELEMENTS = 16 * 32 * 32
STATS_WARPS = 16
# Where the maps are one tile, its passes over pixel tiles are software-pipelined: Triton gives
# the loop's cp.async copies STATS_STAGES - 1 shared buffers, so two tiles are in flight, the
# next pair's copies issued as each tile is read out of its buffer.
STATS_STAGES = tl.constexpr(3)


def stats_config(K: int, N: int, NW: int) -> dict:
    """The forward's per-sample "stats" launch: the whole sample as one register-resident
    [KS, BS] tile (KS >= K, BS >= NW) where it fits in STATS_TILE_ELEMENTS, with the warps that
    hold 32 elements per thread: one round trip to memory, and a second for w's stores to
    drain before the launch ends; else tiles of STATS_TILE_ELEMENTS
    looped over in two passes (the statistics; the diversity and w): with one map tile (K <= 32)
    each pass software-pipelined (STATS_STAGES: cp.async into two shared buffers, two tiles in
    flight: a pass of T tiles waits about ceil(T / 2) round trips), else each tile a round
    trip, plus three round trips through memory for the softmax between them."""
    KS, BS = triton.next_power_of_2(K), triton.next_power_of_2(NW)
    if KS * BS <= STATS_TILE_ELEMENTS:
        return dict(whole=True, KS=KS, BS=BS, rounds=2, tiles_in_flight=1,
                    num_warps=min(STATS_WARPS, max(NUM_WARPS, KS * BS // (32 * 32))))
    KS = min(KS, 32)
    BS = STATS_TILE_ELEMENTS // KS
    if K <= KS:  # (each pass's tiles copied two at a time: STATS_STAGES - 1 buffers)
        rounds = sum(triton.cdiv(triton.cdiv(n, BS), STATS_STAGES.value - 1) for n in (N, NW))
    else:
        rounds = triton.cdiv(K, KS) * (triton.cdiv(N, BS) + triton.cdiv(NW, BS)) + 3
    return dict(whole=False, KS=KS, BS=BS, num_warps=STATS_WARPS, rounds=rounds,
                tiles_in_flight=STATS_STAGES.value - 1 if K <= KS else 1)


# The most logits elements the backward's one-launch "epilogue" holds for a whole sample: 8 per
# thread at 16 warps (it keeps several tiles live: logits, gw, sigmoid, probabilities).
EPILOGUE_TILE_ELEMENTS = 16 * 32 * 8


def epilogue_config(K: int, N: int) -> Optional[dict]:
    """The backward's one-launch "epilogue" where a sample's logits fit one [KS, BS] tile of at
    most EPILOGUE_TILE_ELEMENTS (8 per thread), else None: "gather" and "logits" per pixel
    tile."""
    KS, BS = triton.next_power_of_2(K), triton.next_power_of_2(N)
    if KS * BS > EPILOGUE_TILE_ELEMENTS:
        return None
    return dict(KS=KS, BS=BS, num_warps=min(16, max(NUM_WARPS, KS * BS // (32 * 8))))


def _programs_wanted(device) -> int:
    """Programs a call should have to fill the GPU: two per SM."""
    return 2 * _triton.sm_count(device.index or 0) if device.type == "cuda" else 4


# Feature bytes each SM should keep in flight to cover memory latency (as the CUDA plan's
# kInFlightPerSm: about 4 TB/s x 1 us / 132 SMs).
IN_FLIGHT_PER_SM = 32 * 1024


def _programs_in_flight(programs: int, in_flight_bytes: int) -> int:
    """How many streaming programs a call wants: one per SM (programs // 2), or more where each
    keeps too few bytes in flight for IN_FLIGHT_PER_SM. (Splitting further only adds partial
    sums to write and reduce.)"""
    sms = programs // 2
    return max(sms, triton.cdiv(sms * IN_FLIGHT_PER_SM, max(in_flight_bytes, 1)))


def _split(units: int, pieces: int, wanted: int) -> Tuple[int, int]:
    """(splits, pieces per split): `pieces` split so that units x splits reaches `wanted`,
    none empty."""
    pieces = max(pieces, 1)
    splits = max(1, min(pieces, triton.cdiv(wanted, max(units, 1))))
    per = triton.cdiv(pieces, splits)
    return triton.cdiv(pieces, per), per


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs: exact fp32 products (no TF32), as the float32 tolerance of the tests requires.
    return "ieee" if dtype == torch.float32 else "tf32"


def forward_launches(features, logits, pooled, importance, logsumexp, diversity,
                     pool: str, compute_diversity: bool, programs: Optional[int] = None) -> list:
    """The forward's launches (fusedattn._triton.Launch), with their scratch allocated.
    programs: how many programs fill the GPU (default: from the features' device)."""
    B, C, N = features.shape
    K = logits.shape[1]
    programs = programs or _programs_wanted(features.device)
    t = launch_config(B, C, K, N, features.dtype, features.device, programs)
    KG, BC, BN, warps, stages = t["KG"], t["BC"], t["BN"], t["num_warps"], t["stages"]
    groups = triton.cdiv(K, KG)
    KW, n_chunks = groups * KG, triton.cdiv(N, BN)
    NW, n_ctiles = n_chunks * BN, triton.cdiv(C, BC)
    e = features.element_size()
    alpha = 1.0 / N if pool == "mean" else 1.0
    F, A, V, W = B * C * N * e, B * K * N * e, B * K * C * e, B * K * NW * e
    S = B * (2 * K + 1) * 4  # importance, log-sum-exp, diversity
    precision = _dot_precision(features.dtype)
    div = diversity if compute_diversity else importance  # (a pointer never written)
    # Maps of one pixel chunk and one map group, with channels: "pool" computes each sample's
    # statistics and w itself (no "stats" launch, no w scratch); its programs stream channel
    # tiles, so a sample's few programs each recompute its K x N maps, against C x N features.
    own_stats = n_chunks == 1 and groups == 1 and C > 0
    w = features if own_stats else features.new_empty((B, K, NW))  # (own_stats: unread)
    launches = []
    if not own_stats:
        stats = stats_config(K, N, NW)
        launches.append(_triton.Launch("stats", _stats_kernel, (B,), (
            logits, importance, logsumexp, div, w, K, N, NW, *logits.stride()),
            dict(WHOLE=stats["whole"], HAS_DIV=compute_diversity, KS=stats["KS"],
                 BS=stats["BS"], num_warps=stats["num_warps"]),
            bytes=A + W + S, in_flight_bytes=min(K * N, stats["tiles_in_flight"] * min(
                stats["KS"], K) * min(stats["BS"], N)) * e,
            steps=stats["rounds"], rounds=stats["rounds"]))
    if n_chunks == 1:  # few pixels: programs stream channel tiles
        in_flight = (stages - 1) * BC * min(BN, N) * e
        splits, per_split = _split(B * groups, n_ctiles, _programs_in_flight(programs, in_flight))
        launches.append(_triton.Launch("pool", _pool_tiles_kernel, (
            B * splits if C else 0, groups), (
            features, w, logits, importance, logsumexp, div, pooled, C, K, N, NW, alpha,
            *features.stride(), *logits.stride(), n_ctiles, splits, per_split),
            dict(STATS=own_stats, HAS_DIV=compute_diversity, KG=KG, BC=BC, BN=BN,
                 STAGES=stages, DOT_PRECISION=precision, num_warps=warps),
            # (its logits are a round trip before any feature load, all programs at once)
            bytes=F + V + ((A * splits + S) if own_stats else W * splits),
            in_flight_bytes=in_flight, steps=per_split, serial_rounds=int(own_stats),
            streams_features=True, variant=f"maps{KG}/tiles" + ("/stats" if own_stats else "")))
        return launches
    in_flight = (stages - 1) * (min(KG, K) + BC) * BN * e  # (w's rows past K are not loaded)
    splits, per_split = _split(B * n_ctiles * groups, n_chunks,
                               _programs_in_flight(programs, in_flight))
    part = features.new_empty((B * n_ctiles * splits * KW * BC if splits > 1 else 0,),
                              dtype=torch.float32)
    launches.append(
        _triton.Launch("pool", _pool_kernel, (B * n_ctiles * splits if C else 0, groups), (
            features, w, pooled, part, C, K, N, KW, NW, alpha, *features.stride(),
            n_ctiles, splits, per_split),
            dict(SPLIT=splits > 1, KG=KG, BC=BC, BN=BN, STAGES=stages,
                 DOT_PRECISION=precision, num_warps=warps),
            bytes=F + W + (part.numel() * 4 if splits > 1 else V), in_flight_bytes=in_flight,
            steps=per_split, streams_features=True, variant=f"maps{KG}"))
    if splits > 1 and C:
        # (8 splits' [KG, BC] tiles in flight at 8 elements a thread, fewer for larger tiles)
        unroll = min(SPLITS_IN_FLIGHT, max(1, SPLITS_IN_FLIGHT * 8 * 32 * NUM_WARPS // (KG * BC)))
        launches.append(_triton.Launch("reduce", _reduce_kernel, (B * n_ctiles, groups), (
            part, pooled, C, K, KW, alpha, n_ctiles, splits),
            dict(KG=KG, BC=BC, SPLITS_IN_FLIGHT=unroll, num_warps=NUM_WARPS),
            bytes=part.numel() * 4 + V, in_flight_bytes=min(splits, unroll) * KG * BC * 4,
            steps=triton.cdiv(splits, unroll), rounds=triton.cdiv(splits, unroll)))
    return launches


def backward_launches(grad_pooled, grad_importance, grad_diversity, features, logits,
                      importance, logsumexp, grad_features, grad_logits, pool: str,
                      programs: Optional[int] = None) -> list:
    """The backward's launches (fusedattn._triton.Launch), with their scratch allocated.
    grad_pooled: (B, K, C) contiguous in the features' dtype."""
    B, C, N = features.shape
    K = logits.shape[1]
    programs = programs or _programs_wanted(features.device)
    t = launch_config(B, C, K, N, features.dtype, features.device, programs)
    KG, BC, BN, KS, BP = t["KG"], t["BC"], t["BN"], t["KS"], t["BP"]
    warps, stages = t["num_warps"], t["stages"]
    groups = triton.cdiv(K, KG)
    KW, n_chunks = groups * KG, triton.cdiv(N, BN)
    NW, n_ctiles = n_chunks * BN, triton.cdiv(C, BC)
    n_ptiles = triton.cdiv(N, BP)
    e = features.element_size()
    features_in_flight = (stages - 1) * (min(KG, K) + BN) * BC * e  # (gv: K rows loaded)
    splits, per_split = _split(B * n_chunks * groups, n_ctiles,
                               _programs_in_flight(programs, features_in_flight))
    gw = features.new_empty((B, splits, KW, NW), dtype=torch.float32)
    alpha = 1.0 / N if pool == "mean" else 1.0
    has_gd = grad_diversity is not None
    precision = _dot_precision(features.dtype)
    F, A, V, W = B * C * N * e, B * K * N * e, B * K * C * e, B * KW * NW * e
    GW = B * splits * K * NW * 4  # (gw's rows of padding past K are never touched)
    # The small kernels' loop iterations, each waiting for its loads.
    gather_steps = triton.cdiv(K, KS) * (triton.cdiv(splits, GATHER_SPLITS_IN_FLIGHT) + 2)
    logits_steps = triton.cdiv(K, KS) * 3
    launches = [
        # (with no channels it still runs: its gw is zero)
        _triton.Launch("features", _features_kernel, (B * n_chunks * splits, groups), (
            features, logits, importance, grad_pooled, grad_features, gw, C, K, N, KW, NW,
            alpha, *features.stride(), *grad_features.stride(), *logits.stride(), n_chunks,
            splits, per_split, n_ctiles),
            dict(WRITE_GF=groups == 1, KG=KG, BC=BC, BN=BN, STAGES=stages,
                 DOT_PRECISION=precision, num_warps=warps),
            bytes=F + A * splits + V + GW + (F if groups == 1 else 0),
            in_flight_bytes=features_in_flight, steps=per_split,
            streams_features=True, variant=f"maps{KG}"),
    ]
    if groups > 1 and C:
        # grad_features sums over the map groups: w from a scratch, written in parallel tiles
        w = features.new_empty((B, KW, NW))
        n_tiles = triton.cdiv(NW, t["BS"])
        launches.append(_triton.Launch("maps", _maps_kernel, (B * n_tiles, triton.cdiv(KW, KS)), (
            logits, importance, w, K, N, KW, NW, *logits.stride(), n_tiles),
            dict(KS=KS, BS=t["BS"], num_warps=NUM_WARPS),
            bytes=A + W, in_flight_bytes=KS * t["BS"] * e, steps=1, rounds=1))
        launches.append(_triton.Launch("grad_features", _grad_features_kernel,
                                       (B * n_chunks * n_ctiles,), (
            w, grad_pooled, grad_features, C, K, N, KW, NW, alpha, *grad_features.stride(),
            n_chunks, n_ctiles),
            dict(KG=KG, BC=BC, BN=BN, DOT_PRECISION=precision, num_warps=warps),
            bytes=W + V + F, in_flight_bytes=(KG * BN + KG * BC) * e, steps=groups,
            streams_features=True, variant=f"maps{KG}"))
    gd = grad_diversity.contiguous() if has_gd else importance
    epilogue = epilogue_config(K, N)
    if epilogue is not None:
        launches.append(_triton.Launch("epilogue", _epilogue_kernel, (B,), (
            logits, importance, logsumexp, grad_importance.contiguous(), gd, gw, grad_logits,
            K, N, KW, NW, splits, *logits.stride(), *grad_logits.stride()),
            dict(HAS_GD=has_gd, KS=epilogue["KS"], BS=epilogue["BS"],
                 SPLITS_IN_FLIGHT=SPLITS_IN_FLIGHT, num_warps=epilogue["num_warps"]),
            bytes=2 * A + B * splits * K * N * 4,
            in_flight_bytes=min(splits, SPLITS_IN_FLIGHT) * K * N * 4,
            steps=triton.cdiv(splits, SPLITS_IN_FLIGHT) + 1,
            rounds=triton.cdiv(splits, SPLITS_IN_FLIGHT) + 1))
        return launches
    sums = features.new_empty((B, n_ptiles, 2, KW), dtype=torch.float32)
    S = sums.numel() * 4
    launches += [
        _triton.Launch("gather", _gather_kernel, (B * n_ptiles,), (
            logits, importance, logsumexp, gw, sums, K, N, KW, NW, splits, n_ptiles,
            *logits.stride()),
            dict(HAS_GD=has_gd, KS=KS, BP=BP, SPLITS_IN_FLIGHT=GATHER_SPLITS_IN_FLIGHT,
                 num_warps=NUM_WARPS),
            bytes=A + GW + (B * K * N * 4 if splits > 1 else 0) + S,
            in_flight_bytes=min(splits, GATHER_SPLITS_IN_FLIGHT) * min(KS, K) * min(BP, N) * 4,
            steps=gather_steps, rounds=gather_steps),
        _triton.Launch("logits", _logits_kernel, (B * n_ptiles,), (
            logits, importance, logsumexp, grad_importance.contiguous(), gd, gw, sums,
            grad_logits, K, N, KW, NW, splits, n_ptiles, *logits.stride(),
            *grad_logits.stride()),
            dict(HAS_GD=has_gd, KS=KS, BP=BP, num_warps=NUM_WARPS),
            bytes=2 * A + B * K * N * 4 + S, in_flight_bytes=min(KS, K) * min(BP, N) * e,
            steps=logits_steps, rounds=logits_steps),
    ]
    return launches


# ---------------------------------------------------------------------------- the custom ops


@torch.library.custom_op("fusedattn::triton_attention_pool_fwd", mutates_args=())
def attention_pool_fwd(features: torch.Tensor, logits: torch.Tensor, pool: str,
                       compute_diversity: bool
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    pooled, importance, diversity, logsumexp = autograd.forward_fake(
        features, logits, pool, compute_diversity)  # allocation only: the same outputs
    if features.shape[0] == 0:
        return pooled, importance, diversity, logsumexp
    with _triton.on_device(features):
        _triton.run(forward_launches(features, logits, pooled, importance, logsumexp, diversity,
                                     pool, compute_diversity))
    return pooled, importance, diversity, logsumexp


@torch.library.custom_op("fusedattn::triton_attention_pool_bwd", mutates_args=())
def attention_pool_bwd(grad_pooled: torch.Tensor, grad_importance: torch.Tensor,
                       grad_diversity: Optional[torch.Tensor], features: torch.Tensor,
                       logits: torch.Tensor, importance: torch.Tensor, logsumexp: torch.Tensor,
                       pool: str) -> Tuple[torch.Tensor, torch.Tensor]:
    grad_features, grad_logits = autograd.backward_fake(
        grad_pooled, grad_importance, grad_diversity, features, logits, importance, logsumexp,
        pool)
    if features.shape[0] == 0:
        return grad_features, grad_logits
    grad_pooled = grad_pooled.to(features.dtype).contiguous()  # tl.dot wants equal dtypes
    with _triton.on_device(features):
        _triton.run(backward_launches(grad_pooled, grad_importance, grad_diversity, features,
                                      logits, importance, logsumexp, grad_features, grad_logits,
                                      pool))
    return grad_features, grad_logits


_run = autograd.register(attention_pool_fwd, attention_pool_bwd)


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    return _run(features.flatten(2), logits.flatten(2), pool, compute_diversity)
