"""The op-neutral benchmark plumbing (fusedattn.benchmarking): implementations timed
interleaved, modes run as training runs them, and every mode of every baseline able to run."""

import pytest
import torch

from fusedattn import benchmarking as bm
from fusedattn.ops.attention_pool import benchmarks as apb


def test_implementations_are_timed_interleaved():
    """Rounds alternate between the implementations (rotating who goes first), so load that
    comes and goes lands on all of them: the order of blocks is recorded here."""
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    bm.time_interleaved(fns, "cpu", min_time_s=0.0, block_s=1e-12)  # blocks of one call
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up and sizing, one at a time
    assert order[6:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c", "b", "c", "a"]


def test_forward_backward_accumulates_into_grad_as_training_does():
    """Gradients land in .grad through backward() (as loss.backward() does), so a baseline's
    layout copy of a gradient is counted; torch.autograd.grad would hand the reference's
    feature gradient back as a transposed view and skip it."""
    f = torch.randn(2, 6, 3, 3, requires_grad=True)
    a = torch.randn(2, 2, 3, 3, requires_grad=True)
    run = bm.make_case(apb.call_for("eager"), [(f, a)], "forward+backward")
    run()
    assert f.grad is not None and a.grad is not None
    assert f.grad.is_contiguous()  # AccumulateGrad's layout, not bmm's transposed view
    first = f.grad
    run()
    assert f.grad is not first  # reset to None before each step, as zero_grad(set_to_none) does


@pytest.mark.parametrize("mode", bm.MODES)
def test_every_mode_of_every_baseline_runs(mode):
    """torch.compile's backward keeps its saved buffers: with donated buffers, mode "backward"
    (which retains the graph to time the backward alone) failed with "This backward function
    was compiled with non-empty donated buffers"."""
    shape = apb.SHAPE_SETS["quick"][0]
    results = bm.measure_group("attention_pool", shape, torch.float32, "cpu", mode, "contiguous",
                               ["cpu", "eager", "torch.compile"], copy_bps=1e10, min_time_s=0.0)
    assert {r.impl for r in results} == {"cpu", "eager", "torch.compile"}
    for r in results:
        assert r.p50_us > 0 and r.speedup_vs_eager is not None
