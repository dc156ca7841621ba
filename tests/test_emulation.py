"""The host emulation of the CUDA execution model (csrc/common/emulation) on its own.

tests/emulation/driver.cpp runs one case per process, built with g++ three ways: plain,
ThreadSanitizer, and AddressSanitizer with UBSan. Every toy kernel must compute the right result
with no report, in every build and block order; every planted bug must be reported, naming the
file:line its source marks "PLANTED: <case>". The toy kernels must also compile with nvcc for
sm_80 and sm_90, into SASS that holds the instructions the PTX wrappers stand for.

No GPU is needed. The builds are cached under build/emulation-tests, keyed by the sources,
flags and compilers.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fusedattn.sass_report import sass as sass_tools

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "tests" / "emulation"
EMULATION = ROOT / "csrc" / "common" / "emulation"
CUDA_HOME = Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda-13.0")
CACHE = ROOT / "build" / "emulation-tests"

COMMON_FLAGS = ["-std=c++17", "-O1", "-g", "-DFUSEDATTN_CUDA_EMULATION", f"-I{ROOT / 'csrc'}",
                f"-I{CUDA_HOME / 'include'}"]
SANITIZER_FLAGS = {
    "plain": [],
    "tsan": ["-fsanitize=thread"],
    "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"],
}
BUILDS = list(SANITIZER_FLAGS)
ARCHS = ["sm_80", "sm_90"]

# A report ends the process with the sanitizer's exit code; the driver's own failures exit 1.
EXIT_TSAN, EXIT_ASAN, EXIT_UBSAN = 66, 67, 68
SANITIZER_ENV = {
    "TSAN_OPTIONS": f"exitcode={EXIT_TSAN} halt_on_error=1",
    # LeakSanitizer too: a failed launch abandons its fibers, and must leak nothing doing so.
    "ASAN_OPTIONS": f"exitcode={EXIT_ASAN} halt_on_error=1",
    "UBSAN_OPTIONS": f"exitcode={EXIT_UBSAN} halt_on_error=1 print_stacktrace=1",
}
REPORTS = ("ThreadSanitizer", "AddressSanitizer", "runtime error:", "LeakSanitizer")

CLEAN = ["row_sum", "warp_ops", "transpose", "mma", "cp_async", "bulk_copy", "atomics",
         "block_order"]
ORDERS = ["forward", "reverse", "shuffle:7"]

# Planted bugs a sanitizer reports: case, build, exit code, what the report says.
RACE = "ThreadSanitizer: data race"
SANITIZER_REPORTS = [
    ("missing_barrier", "tsan", EXIT_TSAN, [RACE]),
    ("warp_exchange_missing_syncwarp", "tsan", EXIT_TSAN, [RACE]),
    ("intra_warp_race", "tsan", EXIT_TSAN, [RACE]),
    ("two_block_race", "tsan", EXIT_TSAN, [RACE]),
    # Float 300 of row 0, the first of its padding: in the middle of the 3 x 304 floats, caught
    # because PaddedRows poisons the padding.
    ("global_overread", "asan", EXIT_ASAN,
     ["AddressSanitizer: use-after-poison", "located 1200 bytes inside of 3648-byte region"]),
    ("shared_overread", "asan", EXIT_ASAN, ["AddressSanitizer: heap-buffer-overflow"]),
    ("cp_async_early_read", "asan", EXIT_ASAN, ["AddressSanitizer: use-after-poison"]),
]

# Planted bugs the emulator reports as the launch's error, in every build.
EMULATOR_ERRORS = {
    "divergent_barrier": "divergent __syncthreads",
    "barrier_after_exit": "__syncthreads reached by only part of the block",
    "shuffle_exited_lanes": "names lane 16, which exited",
    "deadlock": "deadlock in block (0,0,0)",
    "mismatched_warp_ops": "mismatched warp operations",
    "shuffle_source_outside_mask": "which is not in the mask 0x0000ffff",
    "misaligned_vector_load": "is not 16-byte aligned",
    "missing_optin": "cudaFuncAttributeMaxDynamicSharedMemorySize",
    "block_not_multiple_of_32": "not a multiple of 32",
}

# Planted bugs that show as wrong results in the plain build (the driver's check fails): no
# report names a line.
WRONG_RESULTS = {
    "uninitialized_shared": "got -nan",  # shared memory starts as 0xFF bytes, NaN as float
    "cp_async_early_read": "got -nan",   # a cp.async destination holds NaN until its wait
    "mma_lane_mapping": "mismatches",
}


def planted_sites():
    """{case: "file:line"} of the "PLANTED: <case>" markers."""
    sites = {}
    for path in (SOURCES / "planted_bugs.cuh", SOURCES / "driver.cpp"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = re.search(r"//\s*PLANTED:\s*(\w+)", line)
            if match:
                sites[match.group(1)] = f"{path.name}:{number}"
    return sites


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def build_digest(compiler_identity):
    """A digest of what the builds depend on: sources, flags, compilers."""
    digest = hashlib.sha256((compiler_identity + repr((COMMON_FLAGS, SANITIZER_FLAGS))).encode())
    paths = [*EMULATION.iterdir(), ROOT / "csrc/common/cuda/runtime.cuh",
             ROOT / "csrc/common/cuda/ptx.cuh", *SOURCES.iterdir()]
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def builds():
    """{build or arch: the driver executable or the nvcc object, or the compiler's complaint}.
    Everything compiles at once, in parallel."""
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found")
    if not (CUDA_HOME / "include" / "cuda_fp16.h").exists():
        pytest.skip(f"no CUDA headers under {CUDA_HOME} (set CUDA_HOME): the emulation takes "
                    "cuda_fp16.h, cuda_bf16.h and vector_types.h from them")
    nvcc = CUDA_HOME / "bin" / "nvcc"
    identity = run([cxx, "--version"]).stdout + (run([str(nvcc), "--version"]).stdout
                                                 if nvcc.exists() else "")
    out = CACHE / build_digest(identity)
    CACHE.mkdir(parents=True, exist_ok=True)
    # One build for all pytest-xdist workers: the others wait for it, then find it cached.
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in CACHE.iterdir():
            if stale.is_dir() and stale != out:
                shutil.rmtree(stale, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        return build_all(cxx, nvcc, out)


def build_all(cxx, nvcc, out):
    """The builds() fixture's work, in parallel: every build of the emulation and the driver,
    linked, and the toy kernels compiled by nvcc."""

    def compile_object(build, source):
        obj = out / f"{source.stem}.{build}.o"
        if not obj.exists():
            result = run([cxx, *COMMON_FLAGS, *SANITIZER_FLAGS[build], "-c", str(source), "-o",
                          str(obj) + ".tmp"])
            if result.returncode != 0:
                return result.stderr
            os.replace(str(obj) + ".tmp", obj)
        return obj

    def nvcc_object(arch):
        # The newest arch also compiles the host side of runtime.cuh (-c); the other, the
        # device code only (-cubin).
        kind = "-c" if arch == ARCHS[-1] else "-cubin"
        obj = out / f"nvcc_toys.{arch}{kind}"
        if not obj.exists():
            result = run([str(nvcc), "-std=c++17", f"-arch={arch}", kind, f"-I{ROOT / 'csrc'}",
                          str(SOURCES / "nvcc_toys.cu"), "-o", str(obj) + ".tmp"])
            if result.returncode != 0:
                return result.stderr
            os.replace(str(obj) + ".tmp", obj)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = {(build, source.stem): pool.submit(compile_object, build, source)
                   for build in BUILDS
                   for source in (EMULATION / "emulator.cpp", SOURCES / "driver.cpp")}
        gpu_objects = {arch: pool.submit(nvcc_object, arch) for arch in ARCHS
                       if nvcc.exists()}
        results = {}
        for build in BUILDS:
            parts = [objects[build, stem].result() for stem in ("emulator", "driver")]
            complaints = [p for p in parts if isinstance(p, str)]
            exe = out / f"driver.{build}"
            if complaints:
                results[build] = "\n".join(complaints)
            elif exe.exists():
                results[build] = exe
            else:
                link = run([cxx, *SANITIZER_FLAGS[build], *map(str, parts), "-o", str(exe)])
                results[build] = exe if link.returncode == 0 else link.stderr
        results.update({arch: f.result() for arch, f in gpu_objects.items()})
    return results


def built(builds, name):
    result = builds.get(name)
    if isinstance(result, str):
        pytest.fail(f"{name} failed to build:\n{result}")
    return result


def run_case(builds, build, case, **env):
    """Runs the driver on one case; returns (exit code, stdout + stderr)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FUSEDATTN_EMULATE_")}
    environment.update(SANITIZER_ENV)
    environment.update(env)
    result = run([str(built(builds, build)), case], env=environment, cwd=ROOT, timeout=120)
    return result.returncode, result.stdout + result.stderr


def assert_clean(code, output):
    assert code == 0 and not any(r in output for r in REPORTS), output


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("case", CLEAN)
@pytest.mark.parametrize("build", BUILDS)
def test_toy_kernel_runs_clean(builds, build, case, order):
    code, output = run_case(builds, build, case, FUSEDATTN_EMULATE_BLOCK_ORDER=order)
    assert_clean(code, output)
    assert re.search(r": ok$", output, re.MULTILINE), output


@pytest.mark.parametrize("build", BUILDS)
def test_device_attributes(builds, build):
    assert_clean(*run_case(builds, build, "device_attributes", FUSEDATTN_EMULATE_SM_COUNT="8"))


@pytest.mark.parametrize("build", BUILDS)
def test_fiber_stack_size_is_configurable(builds, build):
    # 384 KiB of locals per thread: more than the default 256 KiB stack.
    assert_clean(*run_case(builds, build, "large_stack", FUSEDATTN_EMULATE_STACK_KB="1024"))


def test_invalid_block_order_is_an_error(builds):
    code, output = run_case(builds, "plain", "row_sum", FUSEDATTN_EMULATE_BLOCK_ORDER="sideways")
    assert code == 1 and "FUSEDATTN_EMULATE_BLOCK_ORDER=sideways" in output, output


@pytest.mark.parametrize("case, build, exit_code, report", SANITIZER_REPORTS,
                         ids=[f"{c}-{b}" for c, b, _, _ in SANITIZER_REPORTS])
def test_planted_bug_sanitizer_report(builds, case, build, exit_code, report):
    code, output = run_case(builds, build, case)
    assert code == exit_code and all(text in output for text in report), output
    assert re.search(re.escape(planted_sites()[case]) + r"\b", output), output


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("case", list(EMULATOR_ERRORS))
def test_planted_bug_emulator_error(builds, case, build):
    code, output = run_case(builds, build, case)
    # Exit 1 after the driver checked that a clean launch still runs (3 if it does not).
    assert code == 1 and "launch error:" in output and EMULATOR_ERRORS[case] in output, output
    assert "warp_ops: ok" in output, output
    assert re.search(re.escape(planted_sites()[case]) + r"\b", output), output
    assert not any(r in output for r in REPORTS), output


@pytest.mark.parametrize("case", list(WRONG_RESULTS))
def test_planted_bug_wrong_result(builds, case):
    code, output = run_case(builds, "plain", case)
    assert code == 1 and WRONG_RESULTS[case] in output, output


def test_barrier_loop_speed(builds):
    code, output = run_case(builds, "plain", "bench")
    assert code == 0, output
    tiles_per_second = float(re.search(r"([\d.]+) tiles/s", output).group(1))
    # About 4000 on the 2-core dev machine; far below means the scheduler regressed.
    assert tiles_per_second > 500, output


# SASS each wrapper compiles to, per architecture.
SASS = {
    "HMMA.16816.F32": "mma m16n8k16 f16", "HMMA.16816.F32.BF16": "mma m16n8k16 bf16",
    "HMMA.1688.F32": "mma m16n8k8 f16", "HMMA.1688.F32.BF16": "mma m16n8k8 bf16",
    "LDSM.16.M88 ": "ldmatrix x1", "LDSM.16.M88.2": "ldmatrix x2", "LDSM.16.M88.4": "ldmatrix x4",
    "LDSM.16.MT88 ": "ldmatrix x1.trans", "LDSM.16.MT88.2": "ldmatrix x2.trans",
    "LDSM.16.MT88.4": "ldmatrix x4.trans",
    "LDGSTS.E ": "cp.async.ca 4 bytes", "LDGSTS.E.64": "cp.async.ca 8 bytes",
    "LDGSTS.E.BYPASS.128": "cp.async.cg 16 bytes", "LDGDEPBAR": "cp.async.commit_group",
    "STG.E.128": "store_global_v4",
}
SASS_SM90 = {
    "LDG.E.128.CONSTANT": "load_global_v4", "UBLKCP.S.G": "bulk copy global to shared",
    "SYNCS.EXCH.64": "mbarrier.init", "SYNCS.ARRIVE.TRANS64": "mbarrier.arrive.expect_tx",
    "SYNCS.PHASECHK.TRANS64.TRYWAIT": "mbarrier.try_wait.parity",
}


@pytest.mark.parametrize("arch", ARCHS)
def test_toy_kernels_compile_with_nvcc(builds, arch):
    if arch not in builds:
        pytest.skip(f"no nvcc under {CUDA_HOME}")
    obj = built(builds, arch)
    try:
        cuobjdump = sass_tools.cuobjdump()  # the toolkit's, else the one Triton ships
    except sass_tools.ToolMissing as missing:
        pytest.skip(f"no cuobjdump to read the SASS: {missing}")
    sass = run([str(cuobjdump), "-sass", str(obj)], check=True).stdout
    expected = {**SASS, **(SASS_SM90 if arch == "sm_90" else {})}
    missing = {op: what for op, what in expected.items() if op not in sass}
    assert not missing, missing
    if arch == "sm_80":  # the bulk copy and mbarrier wrappers exist from sm_90 only
        assert "UBLKCP" not in sass and "SYNCS" not in sass
