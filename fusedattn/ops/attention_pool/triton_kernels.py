"""attention_pool's Triton backend (docs/attention_pool.md): kernels, launchers and the
torch.library custom ops (with the op's shared fakes and autograd), in one file.

Forward: ONE launch over (sample, 1 + channel splits). Every program recomputes its sample's
K x N statistics from the logits (small and cache-resident) instead of waiting on a separate
pass; program 0 of a sample writes the importance, the per-map log-sum-exp the backward needs
and the diversity loss, the others read their channels of the feature map exactly once:
v = alpha * w @ f^T on tensor cores (tl.dot, K padded to >= 16).

Backward: one pass over the features that reads f and writes gf = alpha * gv^T @ w while
accumulating gw = alpha * gv @ f for its channel split (tl.dot both), then a small epilogue
launch per sample that sums the splits' gw and applies the spec's recalibration, importance-
softmax and diversity gradients. Deterministic: no atomics, fixed reduction order.

Layouts: features are addressed through their strides; Triton specializes unit strides, so
NCHW (unit pixel stride) and channels_last (unit channel stride) tiles are both loaded
coalesced, with no copy. Offsets are int64.
"""

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ... import _triton
from . import autograd

INTERPRETED = tl.constexpr(_triton.interpreted())


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
    """The [KP, BN] tile of one sample's logits at maps k and pixels n, in float32; -inf where
    (k, n) is outside the maps, so that it vanishes from maxima and exponentials."""
    mask = (k[:, None] < K) & (n[None, :] < N)
    ptrs = a_ptr + k[:, None].to(tl.int64) * s_ak + n[None, :].to(tl.int64) * s_an
    return tl.load(ptrs, mask=mask, other=float("-inf")).to(tl.float32), mask


@triton.jit
def _sample_statistics(a_ptr, s_ak, s_an, K, N, KP: tl.constexpr, BN: tl.constexpr):
    """One pass over a sample's logits: importance s [KP] (softmax over the maps' global
    averages of the sigmoid maps) and the per-map log-sum-exp [KP] of the pixel softmax.
    Padded maps (k >= K) get s = 0 and lse = 0."""
    k = tl.arange(0, KP)
    gap = tl.zeros([KP], tl.float32)
    m = tl.full([KP], float("-inf"), tl.float32)
    total = tl.zeros([KP], tl.float32)
    for n0 in range(0, N, BN):
        n = n0 + tl.arange(0, BN)
        a, mask = _load_logits(a_ptr, s_ak, s_an, k, n, K, N)
        gap += tl.sum(tl.where(mask, _sigmoid(a), 0.0), axis=1)
        m_new = tl.maximum(m, tl.max(a, axis=1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows of padding stay empty
        total = total * tl.exp(m - m_ref) + tl.sum(tl.exp(a - m_ref[:, None]), axis=1)
        m = m_new
    g = tl.where(k < K, gap / N, float("-inf"))
    e = tl.exp(g - tl.max(g, axis=0))
    s = e / tl.sum(e, axis=0)
    lse = tl.where(k < K, m + tl.log(tl.where(k < K, total, 1.0)), 0.0)
    return s, lse


@triton.jit
def _attention_pool_fwd_kernel(
    f_ptr, a_ptr, v_ptr, s_ptr, lse_ptr, div_ptr,
    C, K, N, alpha,
    s_fb, s_fc, s_fn, s_ab, s_ak, s_an,
    HAS_DIV: tl.constexpr, KP: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr,
    BNS: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Grid (B, 1 + splits). Program 0 of a sample writes its importance, log-sum-exp and
    diversity; programs 1.. pool one channel split each. All recompute the sample's statistics
    (K x N logits, cache-resident) so that nothing waits on another launch."""
    b = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1)
    f_b = f_ptr + b * s_fb
    a_b = a_ptr + b * s_ab
    s, lse = _sample_statistics(a_b, s_ak, s_an, K, N, KP, BNS)
    k = tl.arange(0, KP)
    if j == 0:
        tl.store(s_ptr + b * K + k, s, mask=k < K)
        tl.store(lse_ptr + b * K + k, lse, mask=k < K)
        if HAS_DIV:
            # D = sum_n max_k s[k] p[k, n], p = exp(a - lse): the weighted pixel max.
            D = tl.zeros([BNS], tl.float32)
            for n0 in range(0, N, BNS):
                n = n0 + tl.arange(0, BNS)
                a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
                cand = tl.where(mask, s[:, None] * tl.exp(a - lse[:, None]), 0.0)
                D += tl.max(cand, axis=0)
            tl.store(div_ptr + b, 1.0 - tl.sum(D, axis=0))
    else:
        # Pooling of this split's channel tiles: v[k, c] = alpha sum_n s[k] sig[k, n] f[c, n].
        n_ctiles = tl.cdiv(C, BC)
        per_split = tl.cdiv(n_ctiles, tl.num_programs(1) - 1)
        ct_begin = (j - 1) * per_split
        for ct in range(ct_begin, tl.minimum(ct_begin + per_split, n_ctiles)):
            c = ct * BC + tl.arange(0, BC)
            acc = tl.zeros([KP, BC], tl.float32)
            for n0 in range(0, N, BN):
                n = n0 + tl.arange(0, BN)
                a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
                w = tl.where(mask, s[:, None] * _sigmoid(a), 0.0)
                f = tl.load(
                    f_b + c[:, None].to(tl.int64) * s_fc + n[None, :].to(tl.int64) * s_fn,
                    mask=(c[:, None] < C) & (n[None, :] < N), other=0.0)
                acc = _dot(w.to(f.dtype), tl.trans(f), acc, DOT_PRECISION, INTERPRETED)
            tl.store(v_ptr + (b * K + k[:, None]) * C + c[None, :],
                     (acc * alpha).to(v_ptr.dtype.element_ty),
                     mask=(k[:, None] < K) & (c[None, :] < C))


@triton.jit
def _attention_pool_bwd_features_kernel(
    f_ptr, a_ptr, gv_ptr, s_ptr, gf_ptr, gw_ptr,
    C, K, N, alpha,
    s_fb, s_fc, s_fn, s_ab, s_ak, s_an, s_gfb, s_gfc, s_gfn,
    KP: tl.constexpr, BC: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """The one pass over the features: gf[c, n] = alpha sum_k gv[k, c] w[k, n] for this
    program's channels, and its share of gw[k, n] = alpha sum_c gv[k, c] f[c, n], written to
    gw_ptr[b, split] (summed over the splits by the epilogue, in a fixed order)."""
    b = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    n_splits = tl.num_programs(1)
    f_b = f_ptr + b * s_fb
    a_b = a_ptr + b * s_ab
    gf_b = gf_ptr + b * s_gfb
    k = tl.arange(0, KP)
    s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
    n_ctiles = tl.cdiv(C, BC)
    per_split = tl.cdiv(n_ctiles, n_splits)
    ct_begin = split * per_split
    ct_end = tl.minimum(ct_begin + per_split, n_ctiles)
    gw_split = gw_ptr + (b * n_splits + split) * K * N  # b is int64
    for n0 in range(0, N, BN):
        n = n0 + tl.arange(0, BN)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        w = tl.where(mask, s[:, None] * _sigmoid(a), 0.0)
        gw = tl.zeros([KP, BN], tl.float32)
        for ct in range(ct_begin, ct_end):
            c = ct * BC + tl.arange(0, BC)
            fc_mask = (c[:, None] < C) & (n[None, :] < N)
            f = tl.load(f_b + c[:, None].to(tl.int64) * s_fc + n[None, :].to(tl.int64) * s_fn,
                        mask=fc_mask, other=0.0)
            gv = tl.load(gv_ptr + (b * K + k[:, None]) * C + c[None, :],
                         mask=(k[:, None] < K) & (c[None, :] < C), other=0.0)
            gw = _dot(gv, f, gw, DOT_PRECISION, INTERPRETED)
            gf = _dot(tl.trans(gv), w.to(gv.dtype), tl.zeros([BC, BN], tl.float32), DOT_PRECISION,
                      INTERPRETED)
            tl.store(gf_b + c[:, None].to(tl.int64) * s_gfc + n[None, :].to(tl.int64) * s_gfn,
                     (gf * alpha).to(gf_ptr.dtype.element_ty), mask=fc_mask)
        tl.store(gw_split + k[:, None].to(tl.int64) * N + n[None, :], gw * alpha, mask=mask)


@triton.jit
def _winners(a, mask, s, lse, k, KP: tl.constexpr):
    """p = exp(a - lse) and, per pixel, the lowest map k attaining max_k s[k] p[k, n] (the
    forward's candidates, bit for bit, and torch.max's tie rule)."""
    p = tl.where(mask, tl.exp(a - lse[:, None]), 0.0)
    cand = tl.where(mask, s[:, None] * tl.exp(a - lse[:, None]), -1.0)
    best = tl.max(cand, axis=0)
    winner = tl.min(tl.where(cand == best[None, :], k[:, None], KP), axis=0)
    return p, winner


@triton.jit
def _sum_splits(gw_b, k, n, mask, K, N, n_splits, KP: tl.constexpr, BNS: tl.constexpr):
    """gw[k, n] of one sample: the channel splits' shares, summed in a fixed order."""
    gw = tl.zeros([KP, BNS], tl.float32)
    rows = k[:, None].to(tl.int64) * N + n[None, :]
    for i in range(0, n_splits):
        gw += tl.load(gw_b + (i * K).to(tl.int64) * N + rows, mask=mask, other=0.0)
    return gw


@triton.jit
def _attention_pool_bwd_logits_kernel(
    a_ptr, s_ptr, lse_ptr, gs_ptr, gd_ptr, gw_ptr, ga_ptr,
    K, N, n_splits,
    s_ab, s_ak, s_an, s_gab, s_gak, s_gan,
    HAS_GD: tl.constexpr, KP: tl.constexpr, BNS: tl.constexpr,
):
    """The [K, N] epilogue, one program per sample (the spec's backward):
    gs_tot = gs + sum_n gw sig - gd sum_{n won by k} p;  gg = s (gs_tot - sum_j s_j gs_tot_j)
    ga = (s gw + gg / N) sig (1 - sig) + p (gp - sum_m p gp),  gp = -gd s where k wins."""
    b = tl.program_id(0).to(tl.int64)
    a_b = a_ptr + b * s_ab
    ga_b = ga_ptr + b * s_gab
    k = tl.arange(0, KP)
    s = tl.load(s_ptr + b * K + k, mask=k < K, other=0.0)
    lse = tl.load(lse_ptr + b * K + k, mask=k < K, other=0.0)
    gs = tl.load(gs_ptr + b * K + k, mask=k < K, other=0.0)
    gd = 0.0
    if HAS_GD:
        gd = tl.load(gd_ptr + b)
    gw_b = gw_ptr + b * n_splits * K * N

    gw_dot_sig = tl.zeros([KP], tl.float32)
    won = tl.zeros([KP], tl.float32)  # sum of p[k, n] over the pixels map k wins
    for n0 in range(0, N, BNS):
        n = n0 + tl.arange(0, BNS)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        gw = _sum_splits(gw_b, k, n, mask, K, N, n_splits, KP, BNS)
        gw_dot_sig += tl.sum(tl.where(mask, gw * _sigmoid(a), 0.0), axis=1)
        if HAS_GD:
            p, winner = _winners(a, mask, s, lse, k, KP)
            won += tl.sum(tl.where(k[:, None] == winner[None, :], p, 0.0), axis=1)
    gs_tot = gs + gw_dot_sig - gd * won
    gg = s * (gs_tot - tl.sum(s * gs_tot, axis=0))
    p_dot_gp = -gd * s * won

    for n0 in range(0, N, BNS):
        n = n0 + tl.arange(0, BNS)
        a, mask = _load_logits(a_b, s_ak, s_an, k, n, K, N)
        gw = _sum_splits(gw_b, k, n, mask, K, N, n_splits, KP, BNS)
        sig = _sigmoid(a)
        ga = (s[:, None] * gw + gg[:, None] / N) * sig * (1.0 - sig)
        if HAS_GD:
            p, winner = _winners(a, mask, s, lse, k, KP)
            gp = tl.where(k[:, None] == winner[None, :], -gd * s[:, None], 0.0)
            ga += p * (gp - p_dot_gp[:, None])
        tl.store(ga_b + k[:, None].to(tl.int64) * s_gak + n[None, :].to(tl.int64) * s_gan,
                 ga.to(ga_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------- launchers


def launch_config(B: int, C: int, K: int, N: int, dtype: torch.dtype, device) -> dict:
    """Tile sizes, warps and the channel split, by a fixed heuristic (no autotuning: no
    recompilation per batch size, nothing to tune under torch.compile). The tiles were chosen
    from the compiler's resource report for sm_90 (tests/triton_compile.py): no register spills
    in any kernel for K up to 64, ~105-130 registers per thread in the feature passes.
    - KP: K padded to a power of two >= 16 (tl.dot's minimum);
    - BC x BN: 32 channels x 64 pixels per feature tile (32 x 32 for float32, whose ieee dot
      runs on FMA units), fewer pixels for tiny maps;
    - BNS: pixels per logits tile in the statistics passes, 2048 / KP (a 20x20 map is 4 tiles);
    - splits: channel tiles are spread over programs until there are ~2 programs per SM
      (B = 1..64 need it; at B >= 2 x SMs each program takes all of its sample's channels),
      with no empty split."""
    KP = max(16, triton.next_power_of_2(K))
    BN = max(16, min(32 if dtype == torch.float32 else 64, triton.next_power_of_2(N)))
    BNS = max(16, min(triton.next_power_of_2(N), 2048 // KP))
    BC = max(16, min(32, triton.next_power_of_2(max(C, 1))))
    programs_wanted = 2 * _triton.sm_count(device.index or 0) if device.type == "cuda" else 4
    n_ctiles = max(1, triton.cdiv(C, BC))
    splits = max(1, min(n_ctiles, triton.cdiv(programs_wanted, max(B, 1))))
    splits = triton.cdiv(n_ctiles, triton.cdiv(n_ctiles, splits))
    return dict(KP=KP, BN=BN, BNS=BNS, BC=BC, splits=splits, num_warps=8)


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs: exact fp32 products (no TF32), as the float32 tolerance of the tests requires.
    return "ieee" if dtype == torch.float32 else "tf32"


@torch.library.custom_op("fusedattn::triton_attention_pool_fwd", mutates_args=())
def attention_pool_fwd(features: torch.Tensor, logits: torch.Tensor, pool: str,
                       compute_diversity: bool
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    B, C, N = features.shape
    K = logits.shape[1]
    pooled, importance, diversity, logsumexp = autograd.forward_fake(
        features, logits, pool, compute_diversity)  # allocation only: the same outputs
    if B == 0:
        return pooled, importance, diversity, logsumexp
    cfg = launch_config(B, C, K, N, features.dtype, features.device)
    with _triton.on_device(features):
        _attention_pool_fwd_kernel[(B, 1 + cfg["splits"])](
            features, logits, pooled, importance, logsumexp,
            diversity if compute_diversity else importance,
            C, K, N, 1.0 / N if pool == "mean" else 1.0,
            *features.stride(), *logits.stride(),
            HAS_DIV=compute_diversity, KP=cfg["KP"], BC=cfg["BC"], BN=cfg["BN"], BNS=cfg["BNS"],
            DOT_PRECISION=_dot_precision(features.dtype), num_warps=cfg["num_warps"])
    return pooled, importance, diversity, logsumexp


@torch.library.custom_op("fusedattn::triton_attention_pool_bwd", mutates_args=())
def attention_pool_bwd(grad_pooled: torch.Tensor, grad_importance: torch.Tensor,
                       grad_diversity: Optional[torch.Tensor], features: torch.Tensor,
                       logits: torch.Tensor, importance: torch.Tensor, logsumexp: torch.Tensor,
                       pool: str) -> Tuple[torch.Tensor, torch.Tensor]:
    B, C, N = features.shape
    K = logits.shape[1]
    grad_features, grad_logits = autograd.backward_fake(
        grad_pooled, grad_importance, grad_diversity, features, logits, importance, logsumexp,
        pool)
    if B == 0:
        return grad_features, grad_logits
    cfg = launch_config(B, C, K, N, features.dtype, features.device)
    grad_pooled = grad_pooled.to(features.dtype).contiguous()  # tl.dot wants equal dtypes
    has_gd = grad_diversity is not None
    # The only [B, *, K, N] intermediate: each channel split's share of gw, in float32.
    gw_splits = features.new_empty((B, cfg["splits"], K, N), dtype=torch.float32)
    with _triton.on_device(features):
        _attention_pool_bwd_features_kernel[(B, cfg["splits"])](
            features, logits, grad_pooled, importance, grad_features, gw_splits,
            C, K, N, 1.0 / N if pool == "mean" else 1.0,
            *features.stride(), *logits.stride(), *grad_features.stride(),
            KP=cfg["KP"], BC=cfg["BC"], BN=cfg["BN"],
            DOT_PRECISION=_dot_precision(features.dtype), num_warps=cfg["num_warps"])
        _attention_pool_bwd_logits_kernel[(B,)](
            logits, importance, logsumexp, grad_importance.contiguous(),
            grad_diversity.contiguous() if has_gd else importance, gw_splits, grad_logits,
            K, N, cfg["splits"],
            *logits.stride(), *grad_logits.stride(),
            HAS_GD=has_gd, KP=cfg["KP"], BNS=cfg["BNS"], num_warps=cfg["num_warps"])
    return grad_features, grad_logits


_run = autograd.register(attention_pool_fwd, attention_pool_bwd)


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    return _run(features.flatten(2), logits.flatten(2), pool, compute_diversity)
