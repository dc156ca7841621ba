"""`python -m fusedattn sass-report`: every op's kernels compiled for sm_90 as real launches
build them, read from their SASS, and run through the performance model at the op's shapes.
See fusedattn/sass_report/__init__.py for the fields and docs/performance_model.md for the
model."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .. import backends
from . import model, sass

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
CACHE = ROOT / "build" / "sass-report"
ARCH = "sm_90"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# The structural targets (issue: kernels at the memory-bandwidth floor).
MIN_IN_FLIGHT_PER_SM = 32 * 1024
MIN_CTAS_AT_B1 = 132
TARGET_PCT = {"forward": 85.0, "forward+backward": 75.0}
TARGET_MIN_BATCH = 64


def feature_strides(shape, layout: str) -> tuple[int, int, int]:
    """(sb, sc, sn), in elements, of a dense (B, C, H, W) tensor of `shape` in `layout`
    ("contiguous" or "channels_last"), viewed as (B, C, N)."""
    C, N = shape.C, shape.N
    if layout == "channels_last":
        return C * N, 1, C
    return C * N, N, 1


@dataclass
class Compiled:
    """One compiled kernel (one dtype and variant) and what the report says of it."""
    backend: str
    op: str
    kernel: str
    dtype: str
    variant: str
    streams_features: bool
    aligned: Optional[bool]
    sass: sass.Kernel
    # The launch the record describes: the last of the spec shapes' launches (threads, which the
    # CUDA epilogue's follow N, shared memory and in-flight bytes all from that one launch).
    threads: int = 0
    shared_bytes: int = 0          # dynamic
    in_flight_bytes_per_block: int = 0
    ctas: dict = field(default_factory=dict)
    estimate_pct_copy_bw: dict = field(default_factory=dict)

    def key(self):
        return (self.backend, self.op, self.kernel, self.dtype, self.variant)

    def blocks_per_sm(self, gpu: model.Gpu, threads: int, shared_bytes: int) -> int:
        return model.blocks_per_sm(gpu, threads, self.sass.registers,
                                   shared_bytes + self.sass.shared_static_bytes)

    def describe(self, launch: dict) -> None:
        self.threads, self.shared_bytes, self.in_flight_bytes_per_block = (
            launch["threads"], launch["shared_bytes"], launch["in_flight_bytes"])

    def record(self, gpu: model.Gpu) -> dict:
        hot = self.sass.hot_loop()
        per_sm = self.blocks_per_sm(gpu, self.threads, self.shared_bytes) if self.threads else None
        return {
            "backend": self.backend, "op": self.op, "kernel": self.kernel, "dtype": self.dtype,
            "variant": self.variant, "streams_features": self.streams_features,
            "aligned": self.aligned, "registers": self.sass.registers,
            "spill_bytes": self.sass.spill_bytes,
            "local_memory_instructions": self.sass.local_memory_instructions(),
            "shared_bytes": self.shared_bytes, "threads": self.threads,
            "blocks_per_sm": per_sm,
            "in_flight_bytes_per_sm": (per_sm * self.in_flight_bytes_per_block
                                       if per_sm is not None else None),
            "hot_loop_global_access_bits": self.sass.loop_global_access_bits(),
            "hot_loop_instructions": hot.instructions if hot else 0,
            "tensor_core_instructions": self.sass.tensor_core_instructions(),
            "ctas": self.ctas, "estimate_pct_copy_bw": self.estimate_pct_copy_bw,
            "symbol": self.sass.mangled,
        }


def op_reports() -> dict:
    """op name -> its fusedattn.ops.<op>.sass_report module."""
    out = {}
    for op in backends.ops():
        try:
            out[op] = importlib.import_module(f"fusedattn.ops.{op}.sass_report")
        except ModuleNotFoundError:
            continue
    return out


def _cached_program(sources: list[Path], name: str) -> Path:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    exe = CACHE / f"{name}.{digest}"
    if not exe.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        headers = {p.parent for p in sources}
        subprocess.run(["g++", "-std=c++17", "-O1", f"-I{CSRC}", *(f"-I{h}" for h in headers),
                        *map(str, (s for s in sources if s.suffix != ".h")), "-o", str(exe)],
                       check=True, capture_output=True, text=True)
    return exe


def plan_program(report) -> Path:
    sources = [CSRC / s for s in report.PLAN_PROGRAM]
    headers = sorted({*CSRC.joinpath("common", "cuda").glob("*.h"),
                      *sources[0].parent.glob("*.h")})
    return _cached_program([*sources, *headers], f"{report.OP}_plan_dump")


def cuda_plan(report, program: Path, shape, layout: str, dtype: torch.dtype,
              gpu: model.Gpu) -> dict:
    """The op's plan at a shape, as its plan program prints it (JSON)."""
    e = torch.empty((), dtype=dtype).element_size()
    args = report.plan_arguments(shape, layout, e, gpu.sms)
    out = subprocess.run([str(program), *map(str, args)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


@functools.lru_cache(maxsize=None)
def _library_kernels(library: Path) -> list:
    """A built library's sm_90 kernels, read once for every op."""
    return sass.read_library(library, ARCH)


def compile_cuda_kernels(report, jobs: int, library: Optional[Path] = None) -> list[Compiled]:
    """The op's CUDA kernels: compiled from csrc/ for sm_90, or read from a built library's
    sm_90 code (what `make test` just built: no second compile)."""
    if library is not None:
        kernels = _library_kernels(library)
        if not kernels:
            raise RuntimeError(f"{library} holds no {ARCH} code (build with "
                               f"FUSEDATTN_CUDA_ARCHS including 9.0)")
    else:
        cubins = [sass.compile_cuda(CSRC / source, CSRC, CACHE, ARCH, jobs)
                  for source in report.CUDA_SOURCES]
        kernels = [k for per_cubin in sass.read_cubins(cubins, ARCH) for k in per_cubin]
    found = []
    for k in kernels:
            ident = report.identify_cuda(k.name)
            if ident is None:
                continue
            found.append(Compiled("cuda", report.OP, ident["kernel"], ident["dtype"],
                                  ident["variant"], ident["streams_features"], ident["aligned"], k))
    return found


def _cost(c: Compiled, launch: dict) -> model.LaunchCost:
    """A launch's cost. Instructions (streaming kernels only; the small kernels are modelled by
    their round trips): the main loop's static count per iteration plus every instruction
    outside it once, per warp: an upper bound, since both paths of a branch are counted."""
    hot = c.sass.hot_loop()
    warps = -(-launch["threads"] // 32)
    per_iteration = hot.instructions if hot else 0
    outside = len(c.sass.instructions) - per_iteration
    instructions = warps * (launch["steps"] * per_iteration + outside) if c.streams_features else 0
    return model.LaunchCost(
        kernel=c.kernel, ctas=launch["ctas"], threads=launch["threads"],
        registers=c.sass.registers,
        shared_bytes=launch["shared_bytes"] + c.sass.shared_static_bytes,
        bytes=launch["bytes"], in_flight_per_block=launch["in_flight_bytes"],
        instructions_per_block=instructions, rounds=launch.get("rounds", 0),
        serial_rounds=launch.get("serial_rounds", 0))


def copy_calibration(gpu: model.Gpu, jobs: int) -> dict:
    """The model applied to a plain vectorized copy of 1 GiB (copy_kernel.cu): near 100%."""
    cubin = sass.compile_cuda(Path(__file__).with_name("copy_kernel.cu"), CSRC, CACHE, ARCH, jobs)
    (k,) = sass.read_cubin(cubin)
    threads, unroll, n_bytes = 256, 4, 1 << 30
    per_sm = model.blocks_per_sm(gpu, threads, k.registers, 0)
    ctas = per_sm * gpu.sms
    steps = -(-n_bytes // (ctas * threads * unroll * 16))
    hot = k.hot_loop()
    cost = model.LaunchCost("copy_kernel", ctas, threads, k.registers, 0, 2 * n_bytes,
                            threads * unroll * 16, threads // 32 * steps * hot.instructions)
    seconds = model.launch_time(gpu, cost)
    return {"kernel": "copy_kernel", "bytes": 2 * n_bytes, "registers": k.registers,
            "blocks_per_sm": per_sm, "hot_loop_global_access_bits": k.loop_global_access_bits(),
            "estimate_us": seconds * 1e6,
            "estimate_pct_copy_bw": model.pct_of_copy(gpu, 2 * n_bytes, seconds)}


def run(gpu: model.Gpu = model.H200, jobs: int = 2, with_triton: bool = True,
        library: Optional[Path] = None, dtypes=tuple(DTYPES), progress=None) -> dict:
    """The whole report as a dict (what --json writes). library: read the CUDA kernels from
    this built library instead of compiling them; dtypes: the dtypes to model."""
    compiled: list[Compiled] = []
    estimates = []
    for op, report in op_reports().items():
        kernels = (compile_cuda_kernels(report, jobs, library)
                   if library is not None or sass.nvcc_available() else [])
        by_key = {c.key(): c for c in kernels}
        compiled += kernels
        program = plan_program(report) if kernels else None
        triton = (triton_kernels(report, dtypes, gpu, compiled)
                  if with_triton and hasattr(report, "triton_launches") else None)
        for shape in report.SHAPES:
            for layout in report.LAYOUTS:
                for dtype_name in dtypes:
                    dtype = DTYPES[dtype_name]
                    per_backend = {}
                    if program is not None:
                        plan = cuda_plan(report, program, shape, layout, dtype, gpu)
                        per_backend["cuda"] = {
                            # (a launch may name its own dtype: float32 weight sums)
                            part: [(by_key.get(("cuda", op, l["kernel"], l.get("dtype", dtype_name),
                                                l["variant"])), l)
                                   for l in report.cuda_launches(plan, part, dtype_name)]
                            for part in ("forward", "backward")}
                    if triton is not None:
                        per_backend["triton"] = {
                            part: triton[(shape.label, layout, dtype_name, part)]
                            for part in ("forward", "backward")}
                    for backend, parts in per_backend.items():
                        times = {}
                        for part, launches in parts.items():
                            total = 0.0
                            for c, launch in launches:
                                if c is None:
                                    raise RuntimeError(f"{backend} {op}: no compiled kernel for "
                                                       f"{launch['kernel']} {dtype_name} "
                                                       f"{launch['variant']}")
                                cost = _cost(c, launch)
                                seconds = model.launch_time(gpu, cost)
                                total += seconds
                                label = f"{shape.label}/{layout}"
                                c.describe(launch)
                                c.ctas[label] = launch["ctas"]
                                c.estimate_pct_copy_bw[label] = round(
                                    model.pct_of_copy(gpu, launch["bytes"], seconds), 1)
                            times[part] = total
                        for mode, parts_of_mode in report.MODES.items():
                            seconds = sum(times[p] for p in parts_of_mode)
                            floor = report.floor(shape, dtype, mode)
                            estimates.append({
                                "backend": backend, "op": op, "dtype": dtype_name,
                                "shape": shape.label, "B": shape.B, "layout": layout,
                                "mode": mode, "estimate_us": round(seconds * 1e6, 2),
                                "floor_us": round(floor / gpu.copy_bytes_per_s * 1e6, 2),
                                "estimate_pct_copy_bw": round(
                                    model.pct_of_copy(gpu, floor, seconds), 1)})
                    if progress:
                        progress()
    records = [c.record(gpu) for c in compiled]
    result = {
        "arch": ARCH, "gpu_model": gpu.__dict__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": versions(),
        "calibration": copy_calibration(gpu, jobs) if sass.nvcc_available() else None,
        "kernels": records, "estimates": estimates,
    }
    result["violations"] = violations(result, gpu)
    result["missed_targets"] = missed_targets(result)
    return result


def triton_kernels(report, dtypes, gpu, compiled) -> dict:
    """{(shape label, layout, dtype, part): [(Compiled, launch dict)]}: every Triton launch of
    the op at its shapes, each specialization compiled once and all disassembled together (one
    nvdisasm run: sass.disassemble)."""
    from . import triton_aot
    pending, launches = {}, {}
    for shape in report.SHAPES:
        for layout in report.LAYOUTS:
            for dtype_name in dtypes:
                for part in ("forward", "backward"):
                    calls = launches[(shape.label, layout, dtype_name, part)] = []
                    for launch in report.triton_launches(shape, layout, DTYPES[dtype_name], part,
                                                         gpu.sms):
                        if launch.grid[0] == 0:
                            continue
                        key, packed = triton_aot.specialize(launch)
                        calls.append((key, launch))
                        if key not in pending:
                            cubin, meta = triton_aot.compile_specialized(key, packed, CACHE)
                            aligned = (report.triton_aligned(shape, layout)
                                       if launch.streams_features else None)
                            variant = "/".join(v for v in (launch.variant,
                                                           layout if launch.streams_features
                                                           else "", key[1][:6]) if v)
                            pending[key] = (cubin, meta, dtype_name, variant,
                                            launch.streams_features, aligned)
    kernels = sass.read_cubins([cubin for cubin, *_ in pending.values()], ARCH)
    by_key = {}
    for (key, (_, meta, dtype_name, variant, streams, aligned)), (kernel,) in zip(
            pending.items(), kernels):
        by_key[key] = Compiled("triton", report.OP, key[0].lstrip("_"), dtype_name, variant,
                               streams, aligned, kernel, threads=meta["threads"],
                               shared_bytes=meta["shared_bytes"])
        compiled.append(by_key[key])
    out = {}
    for call, calls in launches.items():
        out[call] = []
        for key, launch in calls:
            c = by_key[key]
            ctas = 1
            for g in launch.grid:
                ctas *= g
            out[call].append((c, {"kernel": c.kernel, "variant": c.variant, "ctas": ctas,
                                  "threads": c.threads, "shared_bytes": c.shared_bytes,
                                  "bytes": launch.bytes, "in_flight_bytes": launch.in_flight_bytes,
                                  "steps": launch.steps, "rounds": launch.rounds,
                                  "serial_rounds": launch.serial_rounds}))
    return out


def versions() -> dict:
    out = {"torch": torch.__version__}
    try:
        import triton
        out["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        out["nvcc"] = subprocess.run([str(sass.nvcc()), "--version"], capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1]
    except sass.ToolMissing:
        pass
    return out


def violations(result: dict, gpu: model.Gpu) -> list[str]:
    """What breaks the structural and modelled targets."""
    # Ops whose streaming kernels have no matrix product name the kernels that must use tensor
    # cores (TENSOR_CORE_KERNELS; default: all of them).
    needs_tensor_cores = {op: getattr(r, "TENSOR_CORE_KERNELS", None)
                          for op, r in op_reports().items()}
    out = []
    for k in result["kernels"]:
        name = f"{k['backend']} {k['op']} {k['kernel']} {k['dtype']} {k['variant']}".rstrip()
        if k["spill_bytes"] or k["local_memory_instructions"]:
            out.append(f"{name}: {k['spill_bytes']} bytes of local memory "
                       f"({k['local_memory_instructions']} LDL/STL)")
        if not k["streams_features"]:
            continue
        if k["aligned"] and any(b < 128 for b in k["hot_loop_global_access_bits"]):
            out.append(f"{name}: global accesses narrower than 128 bits in its loops "
                       f"({k['hot_loop_global_access_bits']})")
        needs = needs_tensor_cores.get(k["op"])
        if k["dtype"] in ("bfloat16", "float16") and k["tensor_core_instructions"] == 0 and \
                (needs is None or k["kernel"] in needs):
            out.append(f"{name}: a 16-bit streaming kernel with no tensor-core instruction")
        if k["in_flight_bytes_per_sm"] is not None and k["ctas"] and \
                k["in_flight_bytes_per_sm"] < MIN_IN_FLIGHT_PER_SM:
            out.append(f"{name}: {k['in_flight_bytes_per_sm']} bytes in flight per SM "
                       f"(< {MIN_IN_FLIGHT_PER_SM})")
    b1_shapes = {op: getattr(r, "B1_SHAPE", None) for op, r in op_reports().items()}
    for k in result["kernels"]:
        b1 = b1_shapes.get(k["op"])
        label = next((lbl for lbl in k["ctas"] if b1 and lbl.startswith(f"{b1}/contiguous")),
                     None)
        if k["streams_features"] and label and k["ctas"][label] < MIN_CTAS_AT_B1:
            out.append(f"{k['backend']} {k['op']} {k['kernel']} {k['dtype']}: "
                       f"{k['ctas'][label]} CTAs at B = 1 ({label}; < {MIN_CTAS_AT_B1})")
    calibration = result.get("calibration")
    if calibration and not 95.0 <= calibration["estimate_pct_copy_bw"] <= 100.5:
        out.append(f"the model puts the plain copy kernel at "
                   f"{calibration['estimate_pct_copy_bw']:.1f}% (want ~100%)")
    return out


def missed_targets(result: dict) -> list[str]:
    """The modelled targets not met (bf16, B >= 64): reported, not (yet) a CI failure."""
    return [f"{e['backend']} {e['op']} {e['mode']} {e['shape']} {e['layout']} bf16: modelled "
            f"{e['estimate_pct_copy_bw']}% of copy bandwidth (target {TARGET_PCT[e['mode']]}%)"
            for e in result["estimates"]
            if e["dtype"] == "bfloat16" and e["B"] >= TARGET_MIN_BATCH
            and e["estimate_pct_copy_bw"] < TARGET_PCT[e["mode"]]]


def format_tables(result: dict) -> str:
    lines = ["== kernels (sm_90 SASS; the variants the spec shapes launch)",
             "| backend | op | kernel | dtype | variant | regs | spill | smem B | blocks/SM "
             "| in flight/SM KB | loop access bits | HMMA | hot-loop instr |",
             "|" + "---|" * 13]
    for k in result["kernels"]:
        if not k["ctas"]:
            continue
        inflight = k["in_flight_bytes_per_sm"]
        lines.append(
            f"| {k['backend']} | {k['op']} | {k['kernel']} | {k['dtype']} | {k['variant']} | "
            f"{k['registers']} | {k['spill_bytes']} | {k['shared_bytes']} | {k['blocks_per_sm']} | "
            f"{inflight / 1024 if inflight is not None else 0:.1f} | "
            f"{','.join(map(str, k['hot_loop_global_access_bits']))} | "
            f"{k['tensor_core_instructions']} | {k['hot_loop_instructions']} |")
    lines += ["", "== modelled time per call, bfloat16 (estimates, not measurements)",
              "| backend | op | shape | layout | mode | estimate us | floor us | % of copy bw |",
              "|" + "---|" * 8]
    for e in result["estimates"]:
        if e["dtype"] != "bfloat16":
            continue
        lines.append(f"| {e['backend']} | {e['op']} | {e['shape']} | {e['layout']} | {e['mode']} "
                     f"| {e['estimate_us']:.1f} | {e['floor_us']:.1f} | "
                     f"{e['estimate_pct_copy_bw']:.1f} |")
    cal = result.get("calibration")
    if cal:
        lines += ["", f"model check: a plain 16-byte copy kernel of 1 GiB is put at "
                      f"{cal['estimate_pct_copy_bw']:.1f}% of copy bandwidth"]
    lines += ["", f"violations (--check fails on these): {len(result['violations'])}"] + \
             [f"  - {v}" for v in result["violations"]]
    lines += ["", f"missed modelled targets: {len(result['missed_targets'])}"] + \
             [f"  - {v}" for v in result["missed_targets"]]
    return "\n".join(lines)
