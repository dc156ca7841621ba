"""Renders a `python -m fusedattn bench --json` result file as the Markdown table the README
shows, so that no number is ever typed by hand:

    python benchmarks/render.py benchmarks/results/<file>.json
"""

import argparse
import json


def render(payload: dict) -> str:
    env = payload["environment"]
    device = env.get("gpu") or f"CPU ({env.get('cpu')}, {env.get('threads')} threads)"
    lines = [f"Measured {payload['date']} on {device}; torch {env['torch']}, triton "
             f"{env.get('triton')}; copy bandwidth {payload['copy_bandwidth_bytes_per_s'] / 1e12:.3f}"
             f" TB/s (read + write). Command: `{payload['command']}`", "",
             "| op | shape | dtype | mode | impl | median | TB/s | x floor | vs eager "
             "| vs torch.compile |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["results"]:
        t = r["p50_us"]
        time = f"{t / 1000:.2f} ms" if t >= 1000 else f"{t:.1f} us"
        speed = lambda x: f"{x:.2f}x" if x is not None else "-"  # noqa: E731
        lines.append(f"| {r.get('op', 'attention_pool')} | {r['shape']} | {r['dtype']} | {r['mode']} | {r['impl']} | {time} | "
                     f"{r['tbps']:.3f} | {r['ratio_to_floor']:.2f} | {speed(r['speedup_vs_eager'])} "
                     f"| {speed(r['speedup_vs_compile'])} |")
    return "\n".join(lines) + ("\n\nEvery row group (shape, mode) was timed interleaved in one run "
                                "(fusedattn.benchmarking.time_interleaved)." if payload.get(
                                    "interleaved") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="a results file written by python -m fusedattn bench --json")
    args = parser.parse_args()
    with open(args.json) as fh:
        print(render(json.load(fh)))


if __name__ == "__main__":
    main()
