"""Worked example: convert a torchvision model's SE blocks to the fused op, show what was
replaced, check the outputs agree, and time a training step before and after (interleaved).

    python examples/convert_squeeze_excitation.py [--model efficientnet_b0] [--batch 8] [--size 128]
"""

import argparse
import copy

import torch
import torchvision

import fusedattn.nn as fnn
from fusedattn import benchmarking as bm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    plain = getattr(torchvision.models, args.model)().to(device)
    fused = copy.deepcopy(plain)
    report = fnn.ConvertReport()
    fnn.convert(fused, report=report)
    print(report)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    plain.eval(), fused.eval()
    with torch.no_grad():
        diff = (plain(images) - fused(images)).abs().max().item()
    print(f"max |output difference| (eval mode): {diff:.2e}")
    plain.train(), fused.train()
    steps = {}
    for name, model in (("unconverted", plain), ("converted", fused)):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            model(images).square().mean().backward()
            optimizer.step()
        steps[name] = step
    times = bm.time_interleaved(steps, device, min_time_s=2.0)
    for name, t in times.items():
        print(f"training step, {name:11s}: {t['p50'] / 1000:.1f} ms (median, interleaved)")
    print(f"speedup: {times['unconverted']['p50'] / times['converted']['p50']:.2f}x on {device}")


if __name__ == "__main__":
    main()
