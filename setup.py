"""Build of fusedattn's compiled extension, fusedattn._C.

Install with `pip install --no-build-isolation -e .` (this file imports the torch it builds against).

Knobs (environment variables):
  FUSEDATTN_SKIP_CUDA_BUILD=1   build the CPU-only extension even where nvcc is found
  FUSEDATTN_BUILD_EMULATION=1   also build fusedattn._C_emulated: the CUDA kernels and their host
                                code compiled as C++ against the CPU emulation of the CUDA
                                execution model (csrc/common/emulation), which runs them on CPU
                                tensors (FUSEDATTN_CUDA_EMULATE=1); needs the CUDA headers only.
                                For development and CI (`make` sets it); wheels leave it out
  FORCE_CUDA=1                  build the CUDA kernels even with no GPU present (needs nvcc)
  FUSEDATTN_CUDA_ARCHS          GPU architectures, e.g. "8.0;9.0" or "9.0+PTX"; overrides
                                TORCH_CUDA_ARCH_LIST; default DEFAULT_CUDA_ARCHS below
  MAX_JOBS, NVCC_THREADS        parallel compile jobs and nvcc threads per job; when unset, capped
                                by cores and free memory so a build never exhausts RAM
  CUDA_HOME                     the CUDA toolkit (on the dev machine: /usr/local/cuda-13.0)
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import find_packages, setup

import torch
from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parent
DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"
# The extension uses only torch's stable ABI (torch/csrc/stable) as of torch 2.10.
STABLE_ABI_MIN_TORCH = (2, 10)
STABLE_ABI_TARGET = "0x020a000000000000"
# Peak resident memory of one nvcc thread on these kernels, with margin (measured peak ~0.5 GB).
NVCC_GB_PER_THREAD = 1.5
CXX_GB_PER_JOB = 1.0


def env_flag(name):
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def available_memory_gb():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


def want_cuda():
    if env_flag("FUSEDATTN_SKIP_CUDA_BUILD"):
        return False, "FUSEDATTN_SKIP_CUDA_BUILD=1"
    if torch.version.cuda is None:
        if env_flag("FORCE_CUDA"):
            sys.exit("fusedattn: FORCE_CUDA=1 but this torch has no CUDA support")
        return False, "this torch build has no CUDA"
    if cpp_extension.CUDA_HOME is None:
        if env_flag("FORCE_CUDA"):
            sys.exit("fusedattn: FORCE_CUDA=1 but no CUDA toolkit found (set CUDA_HOME)")
        return False, "no CUDA toolkit found (set CUDA_HOME)"
    return True, "nvcc found at " + cpp_extension.CUDA_HOME


def cuda_archs():
    archs = os.environ.get("FUSEDATTN_CUDA_ARCHS") or os.environ.get("TORCH_CUDA_ARCH_LIST")
    archs = (archs or DEFAULT_CUDA_ARCHS).replace(",", ";").replace(" ", ";")
    # torch's build reads this variable: without it, it would target every arch of its own build.
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    return [a for a in archs.split(";") if a]


def parallelism(use_cuda, n_archs):
    """MAX_JOBS and NVCC_THREADS: the user's values, else capped by cores and free memory."""
    cores = os.cpu_count() or 1
    mem = available_memory_gb()
    threads = int(os.environ.get("NVCC_THREADS") or max(1, min(n_archs, 4, cores)))
    per_job = NVCC_GB_PER_THREAD * threads if use_cuda else CXX_GB_PER_JOB
    jobs = int(os.environ.get("MAX_JOBS") or max(1, min(cores, int(mem // per_job))))
    os.environ["MAX_JOBS"] = str(jobs)
    return jobs, threads


def git_revision():
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def compiler_version(cmd):
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True, check=True).stdout
        return out.strip().splitlines()[-1 if "nvcc" in cmd else 0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def torch_release():
    return tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])


def local_version(use_cuda):
    """+cu130torch2.14 (or +cputorch2.14): what the wheel's compiled code was built with."""
    cuda = "cu" + torch.version.cuda.replace(".", "") if use_cuda else "cpu"
    return f"{cuda}torch{'.'.join(map(str, torch_release()))}"


def get_extensions():
    """The extensions to build: fusedattn._C (and, for development, fusedattn._C_emulated)."""
    if torch_release() < STABLE_ABI_MIN_TORCH:
        print(f"fusedattn: torch {torch.__version__} is older than "
              f"{'.'.join(map(str, STABLE_ABI_MIN_TORCH))}: building no extension "
              "(the reference and triton backends still work)", flush=True)
        BUILD_INFO.update(build_info(False, "torch older than 2.10 (the extension needs its "
                                     "stable ABI)", [], {}, built=False))
        return []
    if not shutil.which("ninja"):
        sys.exit("fusedattn: the build needs ninja (pip install ninja)")
    use_cuda, why = want_cuda()
    archs = cuda_archs() if use_cuda else []
    jobs, nvcc_threads = parallelism(use_cuda, len(archs))
    debug = env_flag("DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # (No debug info in a release build: Python's own CFLAGS ask for -g, which costs a fifth of
    # the host compiler's time on the kernels' templates and ships unused DWARF in the wheel.)
    host_opt = opt if debug else opt + ["-g0"]
    # The extension uses only torch/library.h and a bare Python module: the limited API suffices.
    # torch's stable ABI, 2.10 subset: one build loads into any torch >= 2.10.
    stable_abi = [f"-DTORCH_TARGET_VERSION={STABLE_ABI_TARGET}"]
    # Hidden visibility: the module init is the only symbol to export (and torch's stable types
    # are hidden, so our host structs holding them must be too).
    # -fno-math-errno: no libm call in a kernel loop may set errno (we never read it), which
    # lets the loops of the CPU kernels' exp and sigmoid vectorize; IEEE semantics are kept.
    cxx = host_opt + ["-fopenmp", "-fno-math-errno", "-fvisibility=hidden"] + stable_abi
    sources = extension_sources(use_cuda)
    kwargs = {}
    if use_cuda:
        cxx.append("-DUSE_CUDA")  # torch's shim declares its CUDA functions under USE_CUDA
        nvcc = opt + stable_abi + ["-lineinfo", f"--threads={nvcc_threads}",
                      "--expt-relaxed-constexpr", "-Xptxas=-warn-spills"]
        kwargs["extra_compile_args"] = {"cxx": cxx, "nvcc": nvcc}
        ext_cls = cpp_extension.CUDAExtension
    else:
        kwargs["extra_compile_args"] = {"cxx": cxx}
        ext_cls = cpp_extension.CppExtension
    print(f"fusedattn: CUDA {'on' if use_cuda else 'off'} ({why}); archs {archs or '-'}; "
          f"MAX_JOBS={jobs} NVCC_THREADS={nvcc_threads}", flush=True)
    BUILD_INFO.update(build_info(use_cuda, why, archs, kwargs["extra_compile_args"]))
    extensions = [ext_cls("fusedattn._C", sources, extra_link_args=["-fopenmp"],
                          py_limited_api=True, **kwargs)]
    if env_flag("FUSEDATTN_BUILD_EMULATION"):
        extensions.append(emulation_extension(host_opt + stable_abi))
    return extensions


def cuda_include_dir():
    """The CUDA toolkit's headers (cuda_fp16.h, ...), which the emulation build needs."""
    home = cpp_extension.CUDA_HOME or os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    include = Path(home) / "include"
    return include if (include / "cuda_fp16.h").exists() else None


def emulation_extension(flags):
    """fusedattn._C_emulated: the CUDA ops of every op (csrc/<op>/cuda/: host code and kernels)
    built as C++ against csrc/common/emulation and registered as torch.ops.fusedattn_emulated.*
    for CPU tensors. Every source is compiled unchanged, through a generated one-line wrapper
    (a .cu is not C++ to setuptools, and shared sources need objects apart from fusedattn._C's)."""
    include = cuda_include_dir()
    if include is None:
        sys.exit("fusedattn: FUSEDATTN_BUILD_EMULATION=1 needs the CUDA headers (set CUDA_HOME)")
    csrc = ROOT / "csrc"
    sources = [csrc / "module.cpp", *sorted(csrc.glob("common/*.cpp")),
               csrc / "common" / "emulation" / "emulator.cpp"]
    for op_dir in sorted(p for p in csrc.iterdir() if (p / "cuda").is_dir() and p.name != "common"):
        sources += sorted(op_dir.glob("*.cpp")) + sorted((op_dir / "cuda").glob("*.cpp"))
        sources += sorted((op_dir / "cuda").glob("*.cu"))
    wrappers = []
    for source in sources:
        relative = source.relative_to(csrc)
        wrapper = ROOT / "build" / "emulation-sources" / relative.with_name(relative.name + ".cpp")
        text = f'// Generated by setup.py: csrc/{relative} for the CUDA emulation.\n#include "{source}"\n'
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        if not wrapper.exists() or wrapper.read_text() != text:
            wrapper.write_text(text)
        wrappers.append(str(wrapper.relative_to(ROOT)))
    # (#pragma unroll is nvcc's: the host compiler ignores it, and would say so at every loop.)
    cxx = flags + ["-fvisibility=hidden", "-Wno-unknown-pragmas", "-DFUSEDATTN_CUDA_EMULATION",
                   f"-I{include}"]
    return cpp_extension.CppExtension("fusedattn._C_emulated", wrappers,
                                      extra_compile_args={"cxx": cxx}, py_limited_api=True)


def extension_sources(use_cuda):
    """Every source of fusedattn._C, found, not listed: csrc/module.cpp, csrc/common/ and one
    directory per op (csrc/<op>/). Files under a `cuda/` directory are built only with CUDA; the
    emulation of the CUDA execution model (csrc/common/emulation/) only into its own module."""
    found = []
    for path in sorted((ROOT / "csrc").rglob("*")):
        parts = path.relative_to(ROOT / "csrc").parts
        if path.suffix not in (".cpp", ".cu") or "emulation" in parts:
            continue
        if ("cuda" in parts or path.suffix == ".cu") and not use_cuda:
            continue
        found.append(str(path.relative_to(ROOT)))
    return found


def build_info(use_cuda, why, archs, flags, built=True):
    """What this build contains; fusedattn.build_info() reads it back."""
    sass = sorted({a.replace("+PTX", "") for a in archs})
    ptx = sorted(a.replace("+PTX", "") for a in archs if a.endswith("+PTX"))
    info = {
        "version": f"{VERSION}+{local_version(use_cuda)}",
        "extension_built": built,
        "torch": torch.__version__.split("+")[0],
        "torch_min": ".".join(map(str, STABLE_ABI_MIN_TORCH)),  # the stable ABI's floor
        "torch_full": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_built": use_cuda,
        "cuda_reason": why,
        "cuda_home": cpp_extension.CUDA_HOME if use_cuda else None,
        "nvcc": compiler_version(os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc"))
        if use_cuda else None,
        "cuda_archs_sass": sass,
        "cuda_archs_ptx": ptx,
        "cxx": compiler_version(os.environ.get("CXX", "c++")),
        "flags": flags,
        "python_limited_api": "cp310",
        "git_revision": git_revision(),
    }
    return info



BUILD_INFO = {}


class BuildExtensionWithInfo(cpp_extension.BuildExtension):
    """build_ext that also stamps BUILD_INFO into the package it builds: beside the sources
    for in-place (editable) builds, into the build tree for wheels. Only a real build writes
    it, so `setup.py sdist` and metadata queries leave an existing stamp alone."""

    def finalize_options(self):
        super().finalize_options()
        # One object tree for editable installs (pip gives those a fresh temporary one),
        # `setup.py build_ext` and `pip wheel`: ninja recompiles only what changed, and CI's
        # wheel check reuses the objects `make test` just compiled.
        self.build_temp = str(ROOT / "build" / "temp")

    def run(self):
        super().run()
        package = ROOT / "fusedattn" if self.inplace else Path(self.build_lib) / "fusedattn"
        package.mkdir(parents=True, exist_ok=True)
        (package / "_build_info.json").write_text(json.dumps(BUILD_INFO, indent=2) + "\n")


VERSION = "0.1.0"
EXTENSIONS = get_extensions()

setup(
    name="fusedattn",
    version=f"{VERSION}+{local_version(bool(EXTENSIONS) and 'nvcc' in EXTENSIONS[0].extra_compile_args)}",
    description="Fused CUDA/Triton/CPU kernels for recalibrated attention pooling "
                "with a weighted diversity loss",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fusedattn", "fusedattn.*"]),
    package_data={"fusedattn": ["_build_info.json"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.6"],
    extras_require={"models": ["torchvision"], "bench": ["pytest-benchmark", "matplotlib", "tqdm"]},
    ext_modules=EXTENSIONS,
    cmdclass={"build_ext": BuildExtensionWithInfo.with_options(use_ninja=True)},
    # The extension uses Python's limited API (torch builds it for 3.10+): one wheel per
    # platform serves every CPython from 3.10 on.
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if EXTENSIONS else {},
)
