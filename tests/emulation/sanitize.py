"""`make emulate`: every op's CUDA kernels run on the CPU through the emulation of the CUDA
execution model (csrc/common/emulation) under ThreadSanitizer and under AddressSanitizer +
UBSan, then a self-test of planted mutants that each must be reported.

    python tests/emulation/sanitize.py            # clean runs, then the mutants
    python tests/emulation/sanitize.py --clean    # clean runs only
    python tests/emulation/sanitize.py --op channel_attention --mutant uninitialized_shared

For each op with a driver (tests/emulation/<op>_driver.cpp) and a plan (<op>_plan.py: the cases
each build runs, and the mutants), the driver is compiled with the kernels (the .cu files as
C++, unchanged) in both sanitizer builds. The clean kernels must compute right results with no
report over the plan's cases (shapes that take every tiled loop at least twice, inputs in strided
buffers with poisoned gaps, several block orders and SM counts). Each mutant is one textual
change to a copy of csrc/ (a deleted barrier, an off-by-one tile bound, ...), built and run on
its case: it must fail with the report its plan names. Exits non-zero on any report from the
clean kernels and on any mutant not caught.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "emulation"
CUDA_HOME = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda-13.0")
CACHE = ROOT / "build" / "emulation-sanitize"
FLAVORS = {
    "tsan": ["-fsanitize=thread"],
    "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"],
    # The ASan mutants' own units: no UBSan, which checks nothing they plant (each must be
    # reported by ASan or the emulator) and doubles the compile time of every translation unit a
    # mutant rebuilds (the others come from the clean "asan" build: REUSED_FLAVOR).
    "asan_mutants": ["-fsanitize=address", "-fno-omit-frame-pointer"],
}
CLEAN_FLAVORS = ("tsan", "asan")
MUTANT_FLAVORS = {"tsan": "tsan", "asan": "asan_mutants"}
# A mutant's build takes the units its change leaves alone from this clean build (the same
# preprocessed text), and links with its flags.
REUSED_FLAVOR = {"asan_mutants": "asan"}
# A report ends the process with the sanitizer's exit code; the driver's own failures exit 1.
ENV = {
    "TSAN_OPTIONS": "exitcode=66 halt_on_error=1",
    "ASAN_OPTIONS": "exitcode=67 halt_on_error=1",
    "UBSAN_OPTIONS": "exitcode=68 halt_on_error=1 print_stacktrace=1",
}
# The TSan runs are long (every emulated thread is a fiber): optimized. The ASan runs are short,
# but their builds compile 2.6x slower at -O1 than at -O0, and every ASan mutant rebuilds the
# units its change reaches.
OPTIMIZATION = {"tsan": "-O1", "asan": "-O0", "asan_mutants": "-O0"}
REPORTS = ("ThreadSanitizer", "AddressSanitizer", "runtime error:", "LeakSanitizer")


def flags(csrc: Path, flavor: str) -> list[str]:
    return ["-std=c++17", OPTIMIZATION[flavor], "-g", "-DFUSEDATTN_CUDA_EMULATION", "-Wno-unknown-pragmas",
            f"-I{csrc}", f"-I{CUDA_HOME / 'include'}", *FLAVORS[flavor]]


def _cached_object(source: Path, text: str, flavor: str) -> Path:
    digest = hashlib.sha256((text + " ".join(FLAVORS[flavor])).encode()).hexdigest()[:20]
    return CACHE / "objects" / flavor / f"{source.name}.{digest}.o"


def compile_object(source: Path, obj: Path, csrc: Path, flavor: str) -> Path:
    """The object of `source`, compiled with `csrc` on the include path: cached by the hash of
    its preprocessed text, so a mutant rebuilds only the translation units its change reaches
    (and takes the others from the clean build of REUSED_FLAVOR, where it has one)."""
    language = ["-x", "c++"] if source.suffix == ".cu" else []
    command = ["g++", *flags(csrc, flavor), *language]
    pre = subprocess.run([*command, "-E", "-P", str(source)], capture_output=True, text=True)
    if pre.returncode != 0:
        raise RuntimeError(f"preprocessing {source} ({flavor}) failed:\n{pre.stderr[-4000:]}")
    if flavor in REUSED_FLAVOR:
        clean = _cached_object(source, pre.stdout, REUSED_FLAVOR[flavor])
        if clean.exists():
            return clean
    cached = _cached_object(source, pre.stdout, flavor)
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: parallel builds (mutants) may compile the same object.
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.{threading.get_ident()}")
        proc = subprocess.run([*command, "-c", str(source), "-o", str(partial)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {source} ({flavor}) failed:\n{proc.stderr[-4000:]}")
        os.replace(partial, cached)
    return cached


def in_parallel(fn, items) -> list:
    """fn over items on every core (each run is one single-threaded process), in order."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(fn, items))


def build(op: str, csrc: Path, flavor: str, out: Path) -> Path:
    """The op's driver linked with its kernels from `csrc` (the repository's, or a mutated
    copy) and the emulator, in one sanitizer flavor."""
    sources = [csrc / "common" / "emulation" / "emulator.cpp", HERE / f"{op}_driver.cpp",
               *sorted((csrc / op / "cuda").glob("*.cu")),
               *sorted((csrc / op / "cuda").glob("*.cpp"))]
    # (The op's torch host code, ops_*.cpp, is not the kernels': the driver stands in for it.)
    sources = [s for s in sources if not s.name.startswith("ops_")]
    objects = in_parallel(lambda s: compile_object(s, None, csrc, flavor), sources)
    exe = out / flavor / f"{op}_driver"
    exe.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["g++", *FLAVORS[REUSED_FLAVOR.get(flavor, flavor)], *map(str, objects),
                    "-o", str(exe)], check=True)
    return exe


def run(exe: Path, args: list[str], env: dict | None = None) -> tuple[int, str, float]:
    """(exit code, output, seconds) of one run of a driver."""
    start = time.time()
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True,
                          env={**os.environ, **ENV, **(env or {})}, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr, time.time() - start


def load_plan(op: str):
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # the plans import mutant.py
    spec = importlib.util.spec_from_file_location(f"{op}_plan", HERE / f"{op}_plan.py")
    plan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plan)
    return plan


def clean_runs(op: str, plan, exes: dict) -> int:
    failures = 0
    results = in_parallel(lambda c: run(exes[c[0]], c[1], c[2]), plan.CLEAN)
    for (flavor, args, env), (code, output, seconds) in zip(plan.CLEAN, results):
        reported = any(r in output for r in REPORTS)
        ok = code == 0 and not reported
        failures += not ok
        setting = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        print(f"  {'ok    ' if ok else 'FAILED'} {seconds:5.1f} s {flavor} {' '.join(args)} "
              f"{setting}".rstrip())
        if not ok:
            print(output[-3000:])
    return failures


def mutant_run(op: str, mutant, work: Path) -> tuple[bool, str]:
    """(caught, what to print) for one mutant, built from its own copy of csrc/."""
    copy = work / mutant.name / "csrc"
    if copy.exists():
        shutil.rmtree(copy.parent)
    shutil.copytree(ROOT / "csrc", copy)
    target = copy / mutant.file
    text = target.read_text()
    if text.count(mutant.old) != 1:
        return False, (f"  MUTANT NOT PLANTED {mutant.name}: {mutant.file} holds its text "
                       f"{text.count(mutant.old)} times (update {op}_plan.py to the kernels)")
    target.write_text(text.replace(mutant.old, mutant.new))
    exe = build(op, copy, MUTANT_FLAVORS[mutant.flavor], copy.parent)
    code, output, _ = run(exe, mutant.args, mutant.env)
    caught = code != 0 and all(re.search(p, output) for p in mutant.expect)
    line = (f"  {'caught  ' if caught else 'SURVIVED'} {mutant.name} "
            f"({MUTANT_FLAVORS[mutant.flavor]}, "
            f"exit {code}): {mutant.why}")
    return caught, line if caught else line + "\n" + output[-3000:]


def mutant_runs(op: str, plan, work: Path) -> int:
    # (The units a mutant leaves alone come from the clean builds' cache, not compiled again by
    # each of the mutants running in parallel.)
    results = in_parallel(lambda m: mutant_run(op, m, work), plan.MUTANTS)
    for _, line in results:
        print(line)
    return sum(not caught for caught, _ in results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="clean runs only, no mutants")
    parser.add_argument("--op", action="append", help="only this op (repeatable)")
    parser.add_argument("--mutant", action="append", help="only this mutant (repeatable)")
    args = parser.parse_args(argv)
    if shutil.which("g++") is None or not (CUDA_HOME / "include" / "cuda_fp16.h").exists():
        print(f"needs g++ and the CUDA headers (CUDA_HOME={CUDA_HOME})")
        return 1
    status = 0
    for driver in sorted(HERE.glob("*_driver.cpp")):
        op = driver.name[: -len("_driver.cpp")]
        if args.op and op not in args.op:
            continue
        plan = load_plan(op)
        if args.mutant:
            plan.MUTANTS = [m for m in plan.MUTANTS if m.name in args.mutant]
        start = time.time()
        print(f"== {op}: clean kernels under ThreadSanitizer and AddressSanitizer + UBSan")
        exes = {flavor: build(op, ROOT / "csrc", flavor, CACHE / op) for flavor in CLEAN_FLAVORS}
        if not args.mutant:
            status |= clean_runs(op, plan, exes) != 0
        if not args.clean:
            print(f"== {op}: planted mutants, each must be reported")
            with tempfile.TemporaryDirectory(prefix=f"mutants-{op}-") as work:
                status |= mutant_runs(op, plan, Path(work)) != 0
        print(f"   {op}: {time.time() - start:.0f} s")
    print("emulate: " + ("FAILED" if status else "ok"))
    return status


if __name__ == "__main__":
    sys.exit(main())
