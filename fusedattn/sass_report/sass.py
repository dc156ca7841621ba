"""Machine code without a GPU: compile CUDA sources for sm_90 with nvcc, read every kernel's
resources and SASS with cuobjdump (the toolkit's, else the one Triton ships), and find what the
report needs in it: loops, the widths of global memory accesses inside them, tensor-core
instructions, local-memory traffic."""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# The flags of setup.py's nvcc command that change the code nvcc generates (setup.py adds
# include paths, -fPIC and -lineinfo, which do not).
NVCC_CODEGEN_FLAGS = ["-O3", "-std=c++20", "--expt-relaxed-constexpr",
                      "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                      "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]

GLOBAL_MEMORY = re.compile(r"^(LDG|STG|LDGSTS|RED|ATOM|ATOMG|UTMALDG|UTMASTG|UBLKCP)\b")
TENSOR_CORE = re.compile(r"^(HMMA|HGMMA|IMMA|QGMMA|BMMA)\b")
BRANCH = re.compile(r"^(BRA|BRX)\b")


class ToolMissing(RuntimeError):
    pass


def cuda_home() -> Path:
    return Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda")


@functools.lru_cache(maxsize=None)
def nvcc() -> Path:
    path = cuda_home() / "bin" / "nvcc"
    if not path.exists():
        raise ToolMissing(f"nvcc not found at {path} (set CUDA_HOME)")
    return path


def _binary_tool(name: str) -> Path:
    """The toolkit's `name`, else the one in Triton's package (the dev machine's toolkit has
    no cuobjdump or nvdisasm)."""
    own = cuda_home() / "bin" / name
    if own.exists():
        return own
    try:
        import triton
    except ImportError as exc:
        raise ToolMissing(f"no {name} in {own.parent} and no triton ({exc})") from exc
    shipped = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not shipped.exists():
        raise ToolMissing(f"no {name} in {own.parent} or {shipped.parent}")
    return shipped


@functools.lru_cache(maxsize=None)
def cuobjdump() -> Path:
    return _binary_tool("cuobjdump")


@functools.lru_cache(maxsize=None)
def nvdisasm() -> Path:
    return _binary_tool("nvdisasm")


@dataclass
class Instruction:
    address: int
    predicate: str
    opcode: str      # with its modifiers, e.g. "LDGSTS.E.BYPASS.LTC128B.128"
    operands: str

    @property
    def base(self) -> str:
        return self.opcode.split(".")[0]

    def access_bits(self) -> int:
        """The width of a memory access in bits, from its modifiers (32 when none is given)."""
        mods = self.opcode.split(".")[1:]
        for m in mods:
            if m in ("128", "64", "32"):
                return int(m)
            if m in ("U16", "S16"):
                return 16
            if m in ("U8", "S8"):
                return 8
        return 32

    def branch_target(self) -> Optional[int]:
        if not BRANCH.match(self.opcode):
            return None
        m = re.match(r"\s*(0x[0-9a-f]+)", self.operands)
        return int(m.group(1), 16) if m else None


@dataclass
class Loop:
    begin: int       # the address the backward branch jumps to
    end: int         # the backward branch's address
    instructions: int
    global_access_bits: list = field(default_factory=list)   # one entry per instruction


@dataclass
class Kernel:
    mangled: str
    name: str = ""          # demangled
    registers: int = 0
    stack_bytes: int = 0
    local_bytes: int = 0
    shared_static_bytes: int = 0
    instructions: list = field(default_factory=list)
    _loops: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    @property
    def spill_bytes(self) -> int:
        """Bytes of local memory: ptxas' stack frame (spills, or arrays indexed at run time)."""
        return self.stack_bytes + self.local_bytes

    def local_memory_instructions(self) -> int:
        return sum(1 for i in self.instructions if i.base in ("STL", "LDL"))

    def tensor_core_instructions(self) -> int:
        return sum(1 for i in self.instructions if TENSOR_CORE.match(i.opcode))

    def loops(self) -> list[Loop]:
        """Backward branches and the code they repeat. A backward branch over an EXIT is not a
        loop: it is the return of an out-of-line block (a slow path ptxas put after the main
        code) into it. (Found once: the report asks for every launch of the kernel.)"""
        if self._loops is None or self._loops[0] is not self.instructions:
            loops = []
            for i in self.instructions:
                target = i.branch_target()
                if target is None or target > i.address:
                    continue
                body = [j for j in self.instructions if target <= j.address <= i.address]
                if any(j.base == "EXIT" for j in body):
                    continue
                loops.append(Loop(target, i.address, len(body), [
                    j.access_bits() for j in body if GLOBAL_MEMORY.match(j.opcode)]))
            self._loops = (self.instructions, loops)
        return self._loops[1]

    def hot_loop(self) -> Optional[Loop]:
        """The loop with the most global memory instructions (the largest of equals, so that
        a main loop wins over a prologue's copy loop): a streaming kernel's main loop."""
        loops = [lp for lp in self.loops() if lp.global_access_bits]
        if not loops:
            return None
        return max(loops, key=lambda lp: (len(lp.global_access_bits), lp.instructions))

    def loop_global_access_bits(self) -> list[int]:
        """Every distinct width of the global accesses inside any loop."""
        return sorted({b for lp in self.loops() for b in lp.global_access_bits})


_INSTRUCTION = re.compile(
    r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


_LABEL = re.compile(r"^(\.L\w+):\s*$")
_LABEL_OPERAND = re.compile(r"`\((\.L\w+)\)")
_ADDRESS_OPERAND = re.compile(r"0x[0-9a-f]+\b")


def parse_sass(text: str) -> dict[str, list[Instruction]]:
    """cuobjdump -sass or nvdisasm output: mangled kernel name -> its instructions (nvdisasm's
    branch labels replaced by the addresses they stand for, as cuobjdump prints them)."""
    kernels: dict[str, list[Instruction]] = {}
    labels: dict[str, int] = {}
    pending: list[str] = []
    current = None
    for line in text.splitlines():
        m = re.match(r"\s*Function : (\S+)", line) or re.match(r"\.text\.(\S+):\s*$", line)
        if m:
            current = kernels.setdefault(m.group(1), [])
            continue
        if current is None:
            continue
        m = _LABEL.match(line)
        if m:
            pending.append(m.group(1))
            continue
        m = _INSTRUCTION.search(line)
        if m:
            address = int(m.group(1), 16)
            labels.update((label, address) for label in pending)
            pending.clear()
            current.append(Instruction(address, (m.group(2) or "").strip(), m.group(3),
                                       m.group(4).strip()))
    if labels:
        for instructions in kernels.values():
            for i in instructions:
                if "`(" in i.operands:
                    i.operands = _LABEL_OPERAND.sub(
                        lambda m: hex(labels[m.group(1)]) if m.group(1) in labels else m.group(0),
                        i.operands)
    return kernels


def parse_resources(text: str) -> dict[str, dict]:
    """cuobjdump -res-usage output: mangled kernel name -> REG, STACK, SHARED, LOCAL."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            current = m.group(1)
            continue
        if current and "REG:" in line:
            fields = dict(re.findall(r"(\w+):(\d+)", line))
            out[current] = {k: int(v) for k, v in fields.items()}
            current = None
    return out


def demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("c++filt")
    if tool is None or not names:
        return {n: n for n in names}
    proc = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True,
                          check=True)
    return dict(zip(names, proc.stdout.splitlines()))


def _elf_code(data: bytes) -> dict[str, bytes]:
    """The machine code of each function of a cubin (an ELF64 file): its `.text.<mangled
    name>` section."""
    if data[:5] != b"\x7fELF\x02":
        raise ValueError("not an ELF64 file (a cubin)")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * entry_size)
                for i in range(count)]
    names_at = sections[names_index][4]
    code = {}
    for name_at, _, _, _, offset, size, *_ in sections:
        start = names_at + name_at
        name = data[start:data.index(b"\0", start)].decode()
        if name.startswith(".text."):
            code[name[len(".text."):]] = data[offset:offset + size]
    return code


def disassemble(cubins: list[Path], arch: str = "sm_90") -> list[dict[str, list[Instruction]]]:
    """Each cubin's functions and their instructions, from one nvdisasm run over all their code
    back to back as one raw binary (-b SM90). nvdisasm takes half a second to start whatever it
    reads: one run per cubin was most of the report's time (200 Triton cubins). Addresses and
    branch targets are made relative to each function's start, as for the cubin alone."""
    blob, spans = bytearray(), []  # (start, end, cubin index, function)
    out: list[dict[str, list[Instruction]]] = [{} for _ in cubins]
    for index, cubin in enumerate(cubins):
        try:
            functions = _elf_code(Path(cubin).read_bytes())
        except ValueError as exc:
            raise ValueError(f"{cubin}: {exc}") from exc
        for name, code in functions.items():
            out[index][name] = []
            if code:
                spans.append((len(blob), len(blob) + len(code), index, name))
                blob += code
    if not blob:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "code.bin"
        raw.write_bytes(bytes(blob))
        text = subprocess.run([str(nvdisasm()), "-b", arch.replace("sm_", "SM"), str(raw)],
                              capture_output=True, text=True, check=True).stdout
    starts = [start for start, *_ in spans]
    for line in text.splitlines():
        m = _INSTRUCTION.search(line)
        if not m:
            continue
        address = int(m.group(1), 16)
        start, end, index, name = spans[bisect.bisect_right(starts, address) - 1]
        opcode, operands = m.group(3), m.group(4).strip()
        target = _ADDRESS_OPERAND.match(operands) if BRANCH.match(opcode) else None
        if target:  # (what Instruction.branch_target reads)
            to = int(target.group(0), 16)
            if not start <= to <= end:
                raise RuntimeError(f"{cubins[index]}: {name}: a branch at {address - start:#x} "
                                   f"leaves the function ({operands})")
            operands = hex(to - start) + operands[target.end():]
        out[index][name].append(Instruction(address - start, (m.group(2) or "").strip(),
                                            opcode, operands))
    return out


def read_cubins(cubins: list[Path], arch: str = "sm_90") -> list[list[Kernel]]:
    """The kernels of each cubin (one nvdisasm run for all: disassemble)."""
    code = disassemble(cubins, arch)
    kernels = []
    for cubin, functions in zip(cubins, code):
        res = subprocess.run([str(cuobjdump()), "-res-usage", str(cubin)], capture_output=True,
                             text=True, check=True)
        kernels.append(_kernels(functions, parse_resources(res.stdout)))
    return kernels


def _kernels(code: dict[str, list[Instruction]], resources: dict[str, dict]) -> list[Kernel]:
    names = demangle(sorted(code))
    kernels = []
    for mangled, instructions in sorted(code.items()):
        r = resources.get(mangled, {})
        kernels.append(Kernel(mangled, names[mangled], r.get("REG", 0), r.get("STACK", 0),
                              r.get("LOCAL", 0), r.get("SHARED", 0), instructions))
    return kernels


def read_cubin(cubin: Path, arch: str = "sm_90") -> list[Kernel]:
    return read_cubins([cubin], arch)[0]


def read_library(library: Path, arch: str) -> list[Kernel]:
    """The kernels of a library's device code for `arch` (e.g. the built fusedattn/_C*.so),
    disassembled by cuobjdump."""
    sass = subprocess.run([str(cuobjdump()), "-arch", arch, "-sass", str(library)],
                          capture_output=True, text=True, check=True)
    res = subprocess.run([str(cuobjdump()), "-arch", arch, "-res-usage", str(library)],
                         capture_output=True, text=True, check=True)
    return _kernels(parse_sass(sass.stdout), parse_resources(res.stdout))


def holds_arch(library: Path, arch: str) -> bool:
    """Whether a library's device code has a cubin for `arch` (without disassembling it)."""
    listing = subprocess.run([str(cuobjdump()), "-lelf", str(library)], capture_output=True,
                             text=True)
    return listing.returncode == 0 and f".{arch}." in listing.stdout


def compile_cuda(source: Path, include: Path, cache: Path, arch: str = "sm_90",
                 jobs: int = 1) -> Path:
    """`source` compiled to a cubin for `arch`, cached by the hash of its preprocessed text."""
    common = [str(nvcc()), *NVCC_CODEGEN_FLAGS, f"-I{include}", f"-arch={arch}"]
    pre = subprocess.run([*common, "-E", "-Xcompiler", "-P", str(source)], capture_output=True,
                         text=True)
    if pre.returncode != 0:
        raise RuntimeError(f"preprocessing {source} failed:\n{pre.stderr[-3000:]}")
    digest = hashlib.sha256((pre.stdout + " ".join(common[1:])).encode()).hexdigest()[:20]
    cubin = cache / f"{source.stem}.{arch}.{digest}.cubin"
    if not cubin.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cubin.with_suffix(".tmp")
        proc = subprocess.run([*common, "-cubin", f"--threads={jobs}", str(source), "-o", str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {source} failed:\n{proc.stderr[-3000:]}")
        tmp.rename(cubin)
    return cubin


def nvcc_available() -> bool:
    try:
        nvcc()
        return True
    except ToolMissing:
        return False
