"""channel_attention in the pytest-benchmark suite: every backend beside the SE block in eager
PyTorch and under torch.compile, per (shape, dtype, layout, mode) group, with the byte floor and
the group's interleaved ratios in extra_info (see conftest.py); and a model-level group: a
training step of a torchvision model with its SE blocks converted, against the unconverted one.

    pytest benchmarks/test_channel_attention.py --benchmark-only --fa-shapes cpu
"""

import copy

import pytest
import torch

from conftest import run_benchmark
from fusedattn import benchmarking as bm

OP = "channel_attention"
# The model-level step: (model, batch, image size) on a GPU, and a CPU-sized one.
MODEL_STEP = {"cuda": ("efficientnet_b0", 32, 224), "cpu": ("efficientnet_b0", 4, 96)}
STEP_RATIOS = {}


def test_channel_attention(benchmark, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                           environment, interleaved):
    run_benchmark(benchmark, OP, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                  environment, interleaved)


def _training_steps(device, quick):
    torchvision = pytest.importorskip("torchvision")
    import fusedattn.nn as fnn

    name, batch, size = MODEL_STEP[device.type]
    if quick:
        batch, size = 2, 32
    torch.manual_seed(0)
    plain = getattr(torchvision.models, name)().to(device)
    fused = fnn.convert(copy.deepcopy(plain))
    images = torch.randn(batch, 3, size, size, device=device)
    steps = {}
    for label, model in (("unconverted", plain), ("converted", fused)):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            model(images).float().square().mean().backward()
            optimizer.step()
        steps[label] = step
    return f"{name} B={batch} {size}x{size}", steps


@pytest.mark.parametrize("variant", ["unconverted", "converted"])
def test_model_training_step(benchmark, variant, device, environment, request):
    """A training step (forward, backward, SGD) of efficientnet_b0 with its 16 SE blocks
    converted to the fused op, against the unconverted model, timed interleaved once."""
    quick = request.config.getoption("--fa-shapes") == "quick"
    label, steps = _training_steps(device, quick)
    benchmark.group = f"{OP} model training step {label} ({device})"
    benchmark(steps[variant])
    if benchmark.stats is None:
        return
    if label not in STEP_RATIOS:
        times = bm.time_interleaved(steps, device, min_time_s=0.2 if quick else 2.0)
        STEP_RATIOS[label] = times["unconverted"]["p50"] / times["converted"]["p50"]
    benchmark.extra_info.update(op=OP, model_step=label, variant=variant,
                                interleaved_speedup_converted_vs_unconverted=STEP_RATIOS[label],
                                **environment)
