"""`python -m fusedattn`: the environment, a correctness self-check of every backend of every op
against its reference, and a benchmark table against eager PyTorch, torch.compile and the byte
floor.

    python -m fusedattn                  # all three, for the GPU if there is one, else the CPU
    python -m fusedattn env              # versions, build contents, backends and why not
    python -m fusedattn check            # every available backend of every op
    python -m fusedattn bench --op attention_pool --shapes spec --dtype bfloat16 --json r.json
    python -m fusedattn sass-report --json report.json   # static: sm_90 SASS + bandwidth model
    python -m fusedattn tune             # on a GPU: time launch configs, cache the winners
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time

import torch

from . import _library, backends, benchmarking as bm

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "float64": torch.float64}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cmd_env(args) -> int:
    env = bm.environment(args.device)
    info = _library.build_info()
    print("== environment")
    for k, v in env.items():
        print(f"  {k:14s} {v}")
    print("== build (fusedattn.build_info())")
    for k in ("version", "torch", "torch_min", "torch_cuda", "cuda_built", "cuda_reason",
              "cuda_archs_sass", "cuda_archs_ptx", "nvcc", "cxx", "git_revision"):
        print(f"  {k:16s} {info.get(k)}")
    mismatch = _library.torch_mismatch(info)
    if info.get("torch_min"):
        print(f"  {'torch matches':16s} " + (f"no: {mismatch}" if mismatch else
              f"yes (stable ABI: torch >= {info['torch_min']}; running {torch.__version__})"))
    load_error = _library.load_error()
    print(f"  {'extension':16s} {'loaded' if load_error is None else load_error}")
    if env.get("gpu_arch") and info.get("cuda_built"):
        why = _library.cuda_arch_unsupported(torch.cuda.get_device_capability(args.device),
                                           info["cuda_archs_sass"], info["cuda_archs_ptx"])
        print(f"  {'GPU arch':16s} {env['gpu_arch']}: {'supported' if why is None else why}")
    for op in backends.ops():
        for device in dict.fromkeys(["cpu", str(args.device)]):
            print(f"== {op} backends for {device} tensors (fastest first)")
            for name, why in backends.backend_status(device, op).items():
                print(f"  {name:10s} {'available' if why is None else 'unavailable: ' + why}")
    return 0


def cmd_check(args) -> int:
    """Each available backend of each op against its float64 reference, forward and backward."""
    print(f"== correctness self-check on {args.device} (against the float64 reference)")
    failures = 0
    dtypes = [torch.float32, torch.bfloat16] + ([torch.float64] if args.device.type == "cpu" else [])
    for op in backends.ops():
        testing = importlib.import_module(f"fusedattn.ops.{op}.testing")
        for backend in backends.available_backends(args.device, op):
            for dtype in dtypes:
                name = str(dtype).replace("torch.", "")
                skip = backends.unavailable_reason(op, backend, args.device, dtype)
                if skip is not None:
                    print(f"  {op:15s} {backend:10s} {name:9s} not supported: {skip}")
                    continue
                why = None
                try:
                    testing.self_check(backend, dtype, args.device)
                except Exception as exc:  # noqa: BLE001 -- reported; the exit status says so
                    why = f"{type(exc).__name__}: {exc}"
                    failures += 1
                status = "ok" if why is None else "FAILED " + why
                print(f"  {op:15s} {backend:10s} {name:9s} {status}")
    return 1 if failures else 0


def _progress(items, desc):
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _shapes(harness, spec: str, device: torch.device):
    if spec == "default":
        spec = "spec" if device.type == "cuda" else "cpu"
    if spec in harness.SHAPE_SETS:
        return harness.SHAPE_SETS[spec]
    return tuple(harness.Shape.parse(s) for s in spec.split(";"))


def format_table(results) -> str:
    head = ("| shape | mode | impl | p50 us | p20-p80 us | TB/s | % of copy | x floor "
            "| vs eager | vs compile |")
    lines = [head, "|" + "---|" * 10]
    for r in results:
        sp = lambda x: f"{x:.2f}x" if x is not None else "-"  # noqa: E731
        lines.append(f"| {r.shape} | {r.mode} | {r.impl} | {r.p50_us:.1f} | "
                     f"{r.p20_us:.1f}-{r.p80_us:.1f} | {r.tbps:.3f} | {r.pct_of_copy:.1f} | "
                     f"{r.ratio_to_floor:.2f} | {sp(r.speedup_vs_eager)} | "
                     f"{sp(r.speedup_vs_compile)} |")
    return "\n".join(lines)


def cmd_bench(args) -> int:
    device = args.device
    dtype = DTYPES[args.dtype]
    harness = bm.suite(args.op)
    shapes = _shapes(harness, args.shapes, device)
    impls = args.impls.split(",") if args.impls else harness.implementations(device)
    modes = args.modes.split(",")
    print(f"== {args.op} benchmark on {device}, {args.dtype}, {args.layout}: {', '.join(impls)}"
          " (timed interleaved)")
    if device.type != "cuda":
        print("   (CPU-sized shapes; GPU numbers need a GPU: see README, Performance)")
    copy_bps = bm.copy_bandwidth(device)
    print(f"   measured copy bandwidth (read + write): {copy_bps / 1e12:.3f} TB/s")
    results = []
    for shape, mode in _progress([(s, m) for s in shapes for m in modes], "benchmark"):
        def failed(impl, exc, label=shape.label, mode=mode):
            print(f"   {impl} on {label} {mode}: FAILED {type(exc).__name__}: {exc}")
        results += bm.measure_group(args.op, shape, dtype, device, mode, args.layout, impls,
                                    copy_bps, args.min_time, on_error=failed)
    print(format_table(results))
    if args.json:
        payload = {"environment": bm.environment(device), "build": _library.build_info(),
                   "copy_bandwidth_bytes_per_s": copy_bps,
                   "command": "python -m fusedattn " + shlex.join(args.argv),
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "interleaved": True,
                   "results": [r.to_dict() for r in results]}
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1)
        print(f"   wrote {args.json}")
    if args.plot:
        plot(results, copy_bps, args.plot,
             f"{args.op}, {bm.environment(device).get('gpu', 'CPU')}, {args.dtype}")
        print(f"   wrote {args.plot}")
    return 0


def cmd_tune(args) -> int:
    from . import tuning
    if not torch.cuda.is_available():
        print("tune: no CUDA GPU here. The tuner times kernels on the GPU it runs on; "
              "nothing was tuned.", file=sys.stderr)
        return 2
    tuning.tune(args.ops.split(",") if args.ops else None, args.shape_set,
                [DTYPES[d] for d in args.dtypes.split(",")])
    return 0


def cmd_sass_report(args) -> int:
    from .sass_report import report
    from pathlib import Path
    result = report.run(jobs=args.jobs, with_triton=not args.no_triton,
                        library=Path(args.library) if args.library else None,
                        dtypes=tuple(args.dtypes.split(",")))
    print(report.format_tables(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")
    return 1 if args.check and result["violations"] else 0


def plot(results, copy_bps, path, title) -> None:
    """Time per implementation per shape (forward+backward, or the first mode), and achieved
    bandwidth against the measured copy ceiling."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r.mode for r in results))
    if not modes:
        return  # nothing was measured
    mode = "forward+backward" if "forward+backward" in modes else modes[0]
    rows = [r for r in results if r.mode == mode]
    shapes = list(dict.fromkeys(r.shape for r in rows))
    impls = list(dict.fromkeys(r.impl for r in rows))
    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / max(len(impls), 1)
    for j, impl in enumerate(impls):
        xs, ts, bw = [], [], []
        for i, shape in enumerate(shapes):
            r = next((r for r in rows if r.shape == shape and r.impl == impl), None)
            if r is not None:
                xs.append(i + j * width)
                ts.append(r.p50_us)
                bw.append(r.tbps)
        ax_t.bar(xs, ts, width, label=impl)
        ax_b.bar(xs, bw, width, label=impl)
    for ax in (ax_t, ax_b):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shapes))])
        ax.set_xticklabels(shapes, rotation=20, fontsize=8)
        ax.set_xlabel("shape")
    ax_t.set_yscale("log")
    ax_t.set_ylabel(f"{mode} time, median (us, log)")
    ax_b.axhline(copy_bps / 1e12, color="k", linestyle="--", label="device copy")
    ax_b.set_ylabel("effective bandwidth: floor bytes / time (TB/s)")
    ax_t.legend(fontsize=8)
    ax_b.legend(fontsize=8)
    fig.suptitle(f"fusedattn {mode}: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedattn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("env", help="versions, build contents, backends and why not")
    sub.add_parser("check", help="every available backend against the reference")
    bench_parsers = [parser, sub.add_parser("bench", help="the benchmark table")]
    for p in bench_parsers:
        # The subcommand's copies default to SUPPRESS: options given before `bench` stand.
        default = (lambda value: value) if p is parser else (lambda value: argparse.SUPPRESS)
        p.add_argument("--op", default=default("attention_pool"), choices=list(backends.ops()),
                       help="the op to benchmark (default: attention_pool)")
        p.add_argument("--shapes", default=default("default"),
                       help="a shape set of the op ('spec': its spec's table, 'cpu', 'quick', "
                            "'overhead') or shapes such as 'B,C,HxW,K;...' "
                            "(default: spec on a GPU, cpu on the CPU)")
        p.add_argument("--dtype", default=default(None), choices=list(DTYPES),
                       help="default: bfloat16 on a GPU, float32 on the CPU")
        p.add_argument("--modes", default=default("forward,forward+backward"),
                       help=f"comma-separated of {', '.join(bm.MODES)}")
        p.add_argument("--layout", default=default("contiguous"),
                       choices=["contiguous", "channels_last"])
        p.add_argument("--impls", default=default(None),
                       help="comma-separated backends/baselines (default: every available fused "
                            "backend, eager and torch.compile)")
        p.add_argument("--min-time", type=float, default=default(0.2),
                       help="seconds per measurement")
        p.add_argument("--json", default=default(None), help="write the results as JSON here")
        p.add_argument("--plot", default=default(None), help="write a PNG plot here")
    report = sub.add_parser("sass-report", help="static performance report of every kernel "
                            "(sm_90 SASS and a bandwidth model; no GPU needed)")
    report.add_argument("--json", default=None, help="write the report as JSON here")
    report.add_argument("--check", action="store_true",
                        help="exit non-zero on a violated structural or modelled target")
    report.add_argument("--no-triton", action="store_true", help="CUDA kernels only")
    report.add_argument("--jobs", type=int, default=2, help="nvcc threads")
    report.add_argument("--library", default=None,
                        help="read the CUDA kernels' sm_90 code from this built library "
                             "(e.g. fusedattn/_C.abi3.so) instead of compiling csrc/")
    report.add_argument("--dtypes", default="bfloat16,float16,float32",
                        help="comma-separated dtypes to model")
    tune = sub.add_parser("tune", help="time candidate launch configs on this GPU and cache the "
                          "winners (needs a CUDA GPU)")
    tune.add_argument("--ops", default=None, help="comma-separated ops (default: all)")
    tune.add_argument("--shape-set", default="spec", help="the ops' shape set to tune on")
    tune.add_argument("--dtypes", default="bfloat16", help="comma-separated dtypes")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command == "sass-report":
        return cmd_sass_report(args)
    if args.command == "tune":
        return cmd_tune(args)
    args.device = torch.device(args.device) if args.device else default_device()
    if getattr(args, "dtype", None) is None:
        args.dtype = "bfloat16" if args.device.type == "cuda" else "float32"
    if args.command == "env":
        return cmd_env(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "bench":
        return cmd_bench(args)
    status = cmd_env(args)
    status |= cmd_check(args)
    status |= cmd_bench(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
