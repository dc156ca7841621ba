"""Triton-specific checks beyond the backend-parametrized suite: other tile configurations and
splits, any number of maps, int64 offsets, opcheck of the Triton ops, determinism. (Native
compilation for sm_90, what the interpreter cannot check, is the SASS report's:
tests/test_sass_report.py.)"""

import pytest
import torch

import fusedattn
from fusedattn.ops.attention_pool.testing import check_against_reference, make_inputs
from helpers import require_backend


@pytest.fixture
def fap():
    require_backend("triton", torch.float32)
    import fusedattn.ops.attention_pool.triton_kernels as module
    return module


@pytest.mark.parametrize("override, programs", [
    (dict(KG=16, BC=16, BN=16, KS=2, BS=16, BP=16), 1),     # small tiles, no split
    (dict(KG=16, BC=16, BN=16, KS=4, BS=32, BP=32), 1000),  # pixel and channel splits
    (dict(KG=32, BC=32, BN=32, KS=8, BS=64, BP=64), 7),
])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_tile_configurations(fap, monkeypatch, override, programs, layout):
    """Other tiles and split counts than the defaults: every tiled loop runs several times,
    map groups (K = 40 > KG), pixel splits summed by "reduce", channel splits by "gather" (the
    per-pixel-tile epilogue: "gather" and "logits", not the one-launch "epilogue")."""
    monkeypatch.setattr(fap, "tiles", lambda *args: dict(override))
    monkeypatch.setattr(fap, "EPILOGUE_TILE_ELEMENTS", 0)
    monkeypatch.setattr(fap, "_programs_wanted", lambda device: programs)
    device = require_backend("triton", torch.bfloat16)
    for dtype, K in ((torch.float32, 5), (torch.bfloat16, 40)):
        f, a = make_inputs(2, 50, 7, 9, K, dtype=dtype, layout=layout, device=device)
        check_against_reference("triton", f, a)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_per_sample_kernels_over_tiles(fap, monkeypatch, layout):
    """Where a sample's logits exceed one register-resident tile: the forward's "stats" loops
    its passes over several map tiles (K = 40 > 32) and pixel tiles, and the backward's
    epilogue runs per pixel tile ("gather", "logits"). By default the suite's shapes, small
    for the interpreter, run a whole sample as one tile."""
    monkeypatch.setattr(fap, "STATS_TILE_ELEMENTS", 256)
    monkeypatch.setattr(fap, "EPILOGUE_TILE_ELEMENTS", 0)
    device = require_backend("triton", torch.bfloat16)
    for dtype, K in ((torch.float32, 5), (torch.bfloat16, 40)):
        # (9x9: two pixel chunks, so "pool" does not compute the statistics itself)
        f, a = make_inputs(2, 18, 9, 9, K, dtype=dtype, layout=layout, device=device)
        f3, a3 = f.flatten(2), a.flatten(2)
        pooled, s, d, lse = fap.autograd.forward_fake(f3, a3, "sum", True)
        (stats,) = [launch for launch in fap.forward_launches(f3, a3, pooled, s, lse, d, "sum",
                                                              True) if launch.name == "stats"]
        assert not stats.kwargs["WHOLE"] and fap.epilogue_config(K, 81) is None
        check_against_reference("triton", f, a)


@pytest.mark.parametrize("epilogue_elements", [None, 0])
def test_many_splits(fap, monkeypatch, epilogue_elements):
    """More splits than one round of _sum_splits loads: 9 pixel splits summed by "reduce" and
    10 channel splits by "epilogue" (8 a round) or "gather" (4 a round), the last round short."""
    monkeypatch.setattr(fap, "tiles", lambda *args: dict(KG=16, BC=16, BN=16, KS=8, BS=64,
                                                         BP=64))
    monkeypatch.setattr(fap, "_programs_wanted", lambda device: 4000)
    if epilogue_elements is not None:
        monkeypatch.setattr(fap, "EPILOGUE_TILE_ELEMENTS", epilogue_elements)
    device = require_backend("triton", torch.float32)
    f, a = make_inputs(1, 150, 12, 12, 5, device=device)
    check_against_reference("triton", f, a)
    f3, a3 = f.flatten(2), a.flatten(2)
    pooled, s, d, lse = fap.autograd.forward_fake(f3, a3, "sum", True)
    (reduce,) = [l for l in fap.forward_launches(f3, a3, pooled, s, lse, d, "sum", True,
                                                 programs=4000) if l.name == "reduce"]
    assert reduce.args[-1] == 9  # pixel splits
    gf, ga = fap.autograd.backward_fake(pooled, s, d, f3, a3, s, lse, "sum")
    (features,) = [l for l in fap.backward_launches(pooled, s, d, f3, a3, s, lse, gf, ga, "sum",
                                                    programs=4000) if l.name == "features"]
    assert features.grid[0] == 10 * 9  # channel splits x pixel chunks


@pytest.mark.parametrize("K, own_stats", [(1, True), (16, True), (17, False)])
def test_pool_computes_statistics_for_one_chunk_of_maps(fap, monkeypatch, K, own_stats):
    """Maps of one pixel chunk and one map group (K <= KG): no "stats" launch; every program of
    "pool" computes its sample's w from the logits and split 0 of the sample's 3 channel splits
    stores the statistics. Two map groups keep "stats"."""
    monkeypatch.setattr(fap, "tiles", lambda *args: dict(KG=16, BC=16, BN=64, KS=8, BS=64,
                                                         BP=64))
    monkeypatch.setattr(fap, "_programs_wanted", lambda device: 6)
    device = require_backend("triton", torch.bfloat16)
    for dtype, layout in ((torch.bfloat16, "contiguous"), (torch.float32, "channels_last")):
        f, a = make_inputs(2, 40, 7, 7, K, dtype=dtype, layout=layout, device=device,
                           logit_scale=8.0)
        f3, a3 = f.flatten(2), a.flatten(2)
        for compute_diversity in (True, False):
            pooled, s, d, lse = fap.autograd.forward_fake(f3, a3, "mean", compute_diversity)
            launches = fap.forward_launches(f3, a3, pooled, s, lse, d, "mean", compute_diversity)
            names = [launch.name for launch in launches]
            assert names == (["pool"] if own_stats else ["stats", "pool"])
            assert launches[-1].kwargs["STATS"] == own_stats and launches[-1].grid[0] == 2 * 3
            check_against_reference("triton", f, a, pool="mean",
                                    compute_diversity=compute_diversity)


@pytest.mark.parametrize("units, pieces, wanted", [(1, 13, 264), (17, 3, 264), (600, 7, 264),
                                                   (5, 1, 264), (1, 100, 7)])
def test_splits_cover_every_piece_once(fap, units, pieces, wanted):
    splits, per = fap._split(units, pieces, wanted)
    assert 1 <= splits <= pieces and (splits - 1) * per < pieces <= splits * per


def test_any_number_of_maps(fap):
    """Maps tiled in groups of at most 64: K = 65 and 130 (three groups) against the
    reference, forward and backward."""
    device = require_backend("triton", torch.float32)
    for K in (65, 130):
        f, a = make_inputs(1, 18, 3, 5, K, device=device)
        check_against_reference("triton", f, a)


def test_int64_offsets_on_a_huge_strided_view():
    """A batch stride above 2^31 elements: every offset must be computed in int64. The view
    spans 4.3 GB of address space but touches a few pages (torch.empty is not initialized)."""
    device = require_backend("triton", torch.float16)
    if device.type != "cpu":
        pytest.skip("the interpreter variant of this test; GPUs run test_int64_offsets_gpu")
    B, C, N, K = 2, 5, 12, 3
    batch_stride = 2**31 + 64
    storage = torch.empty(batch_stride + C * N, dtype=torch.float16)
    f = storage.as_strided((B, C, N), (batch_stride, N, 1))
    dense_f, a = make_inputs(B, C, 3, 4, K, dtype=torch.float16, layout="3d")
    f.copy_(dense_f)
    a_storage = torch.empty(batch_stride + K * N, dtype=torch.float16)
    a_huge = a_storage.as_strided((B, K, N), (batch_stride, N, 1))
    a_huge.copy_(a)
    check_against_reference("triton", f, a_huge)


def test_opcheck_triton_ops(fap):
    device = require_backend("triton", torch.float32)
    for layout in ("3d", "channels_last"):
        f, a = make_inputs(2, 7, 3, 5, 3, layout=layout, device=device)
        f, a = f.flatten(2), a.flatten(2)
        args = (f.requires_grad_(), a.requires_grad_(), "sum", True)
        torch.library.opcheck(fap.attention_pool_fwd, args)
        pooled, s, d, lse = fap.attention_pool_fwd(f.detach(), a.detach(), "sum", True)
        torch.library.opcheck(fap.attention_pool_bwd, (
            torch.randn_like(pooled), torch.randn_like(s), torch.randn_like(d), f.detach(),
            a.detach(), s, lse, "mean"))


def test_backward_is_deterministic(fap):
    device = require_backend("triton", torch.float32)
    f, a = make_inputs(2, 70, 5, 5, 4, device=device)
    runs = []
    for _ in range(2):
        fr, ar = f.clone().requires_grad_(), a.clone().requires_grad_()
        out = fusedattn.attention_pool(fr, ar, backend="triton")
        (out.pooled.square().sum() + out.diversity.sum()).backward()
        runs.append((fr.grad, ar.grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
