"""The worked example (examples/train_partial_face.py), on its default 300 steps (~10 s): the
fused and reference backends give the same loss curve from the same seed, the diversity loss
falls, occluding the region a map attends lowers that map's importance, and the PNG is written."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import train_partial_face as example  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    return example.train("auto", steps=300, seed=0)


def test_fused_and_reference_give_the_same_loss_curve(trained):
    _, _, _, fused = trained
    _, _, _, ref = example.train("reference", steps=60, seed=0)
    cmp = example.compare_curves(fused.total[:60], ref.total)
    # Same data, same initial weights: only rounding differs, which training amplifies slowly.
    assert cmp["first_steps_max_abs"] < 1e-4, cmp
    assert cmp["smoothed_max_rel"] < 0.01, cmp


def test_training_learns_and_diversity_falls(trained):
    _, _, _, hist = trained
    first, last = sum(hist.diversity[:20]) / 20, sum(hist.diversity[-20:]) / 20
    assert last < 0.2 * first, (first, last)
    assert sum(hist.accuracy[-20:]) / 20 > 0.9


def test_occluding_a_region_lowers_the_importance_of_the_map_attending_it(trained):
    model, _, task, _ = trained
    summary = example.occlusion_summary(example.occlusion_effect(model, task))
    assert summary["mean_change"] < 0, summary
    assert summary["most_specialized_change"] < 0, summary


def test_saves_the_attention_png(trained, tmp_path):
    model, _, task, _ = trained
    path = tmp_path / "maps.png"
    example.save_attention_png(model, task, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
