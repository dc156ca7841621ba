"""The static SASS report (python -m fusedattn sass-report, docs/performance_model.md): its
SASS reading and its model on known inputs, and the whole report over every op's kernels with
--check, which fails on a spill, on a narrow feature access in an aligned streaming kernel's
loops, on a 16-bit streaming kernel without tensor cores, on too few bytes in flight or CTAs,
and on a model that misjudges a plain copy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusedattn.sass_report import model, sass

ROOT = Path(__file__).resolve().parents[1]

SASS_TEXT = """
        Function : _Z6kernelv
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0020*/                   LDGSTS.E.BYPASS.128 [R3], desc[UR4][R8.64] ;
        /*0030*/                   LDG.E.U16 R6, desc[UR4][R2.64] ;
        /*0040*/                   HMMA.16816.F32.BF16 R12, R16, R40, R12 ;
        /*0050*/               @P0 BRA 0x10 ;
        /*0060*/                   EXIT ;
        /*0070*/                   STG.E desc[UR4][R2.64], R5 ;
        /*0080*/                   BRA 0x20 ;
"""


def test_reads_loops_widths_and_tensor_cores():
    (instructions,) = sass.parse_sass(SASS_TEXT).values()
    k = sass.Kernel("_Z6kernelv", "kernel", instructions=instructions)
    loops = k.loops()
    # 0x50 -> 0x10 is the loop; 0x80 -> 0x20 jumps back over the EXIT: an out-of-line return.
    assert [(lp.begin, lp.end) for lp in loops] == [(0x10, 0x50)]
    assert k.loop_global_access_bits() == [16, 128]
    assert k.hot_loop().instructions == 5
    assert k.tensor_core_instructions() == 1


NVDISASM_TEXT = """
//--------------------- .text._Z6kernelv --------------------------
        .section        .text._Z6kernelv,"ax",@progbits
_Z6kernelv:
.text._Z6kernelv:
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0020*/               @P0 BRA `(.L_x_0) ;
        /*0030*/                   BRA `(.L_x_1);
.L_x_1:
        /*0040*/                   EXIT ;
.L_x_2:
"""


def test_reads_nvdisasm_labels_as_addresses():
    (instructions,) = sass.parse_sass(NVDISASM_TEXT).values()
    assert [i.branch_target() for i in instructions] == [None, None, 0x10, 0x40, None]
    k = sass.Kernel("_Z6kernelv", "kernel", instructions=instructions)
    assert [(lp.begin, lp.end) for lp in k.loops()] == [(0x10, 0x20)]


def test_occupancy_and_waves():
    gpu = model.H200
    assert model.blocks_per_sm(gpu, 128, 64, 0) == 8            # registers: 64 x 128 = 8 K
    assert model.blocks_per_sm(gpu, 256, 32, 100 * 1024) == 2   # shared memory
    assert model.blocks_per_sm(gpu, 1024, 16, 0) == 2           # threads
    one = model.LaunchCost("k", ctas=132, threads=128, registers=32, shared_bytes=0,
                           bytes=1e9, in_flight_per_block=1e9, instructions_per_block=0)
    # Enough in flight: the copy bandwidth, plus the launch cost.
    assert model.launch_time(gpu, one) == pytest.approx(1e9 / gpu.copy_bytes_per_s + gpu.launch_s)
    starved = model.LaunchCost("k", ctas=1, threads=128, registers=32, shared_bytes=0,
                               bytes=1e6, in_flight_per_block=16e3, instructions_per_block=0)
    # One block with 16 KB in flight: Little's law, 16 KB per microsecond.
    assert model.launch_time(gpu, starved) == pytest.approx(1e6 / 16e3 * gpu.latency_s + gpu.launch_s)
    # A block that moves 1 KB keeps at most that in flight, whatever its plan's capacity: one
    # round trip for its bytes, not a fraction of one.
    small = model.LaunchCost("k", ctas=132, threads=128, registers=32, shared_bytes=0,
                             bytes=132e3, in_flight_per_block=64e3, instructions_per_block=0)
    assert model.launch_time(gpu, small) == pytest.approx(gpu.latency_s + gpu.launch_s)
    # Round trips no block's streaming hides (a first wave's wait, a last block's) count once,
    # not per wave.
    serial = model.LaunchCost("k", ctas=3 * 132 * 8, threads=128, registers=32, shared_bytes=0,
                            bytes=1e9, in_flight_per_block=1e9, instructions_per_block=0,
                            serial_rounds=2)
    assert model.launch_time(gpu, serial) == pytest.approx(
        model.launch_time(gpu, one) + 2 * gpu.latency_s)


@pytest.mark.skipif(not sass.nvcc_available(), reason="needs nvcc (CUDA_HOME)")
def test_one_disassembly_of_many_cubins_reads_each_as_alone(tmp_path):
    """sass.disassemble reads cubins' code back to back in one nvdisasm run: each function's
    instructions, addresses and branch targets must be those of its cubin read alone (the
    copy kernel twice, so that the second copy's addresses are rebased, and a cubin of two
    kernels between them)."""
    from fusedattn.sass_report.report import CACHE, CSRC
    copy = sass.compile_cuda(ROOT / "fusedattn" / "sass_report" / "copy_kernel.cu", CSRC, CACHE)
    source = tmp_path / "two.cu"
    source.write_text("""
__global__ void scale(float* x, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] *= 2.f;
}
__global__ void fill(float* x, int n) { if (threadIdx.x < n) x[threadIdx.x] = 1.f; }
""")
    other = sass.compile_cuda(source, CSRC, tmp_path)
    together = sass.disassemble([copy, other, copy])
    for cubin, functions in zip([copy, other, copy], together):
        alone = sass.parse_sass(subprocess.run(
            [str(sass.nvdisasm()), "--no-dataflow", "--print-code", str(cubin)],
            capture_output=True, text=True, check=True).stdout)
        assert functions.keys() == alone.keys()
        for name, instructions in alone.items():
            assert [(i.address, i.predicate, i.opcode, i.branch_target())
                    for i in functions[name]] == [
                (i.address, i.predicate, i.opcode, i.branch_target()) for i in instructions]
    assert len(together[1]) == 2  # scale and fill
    (rebased,) = together[2].values()  # the copy kernel's loop branches back, rebased
    assert any(i.branch_target() is not None for i in rebased)


def _library():
    """The built extension's path when it holds sm_90 code (make test builds it), else None."""
    import fusedattn
    for so in Path(fusedattn.__file__).parent.glob("_C.*so"):
        try:
            if sass.holds_arch(so, "sm_90"):
                return so
        except sass.ToolMissing:
            return None
    return None


@pytest.mark.long
@pytest.mark.skipif(not sass.nvcc_available(), reason="needs nvcc (CUDA_HOME)")
def test_the_report_meets_the_structural_targets(tmp_path):
    """The whole report, bf16, in a process without TRITON_INTERPRET: no violation, the model
    puts the plain copy near 100%, every 16-bit streaming kernel uses tensor cores, and each
    backend's fields are there for every spec shape."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "report.json"
    library = _library()
    cmd = [sys.executable, "-m", "fusedattn", "sass-report", "--check", "--dtypes", "bfloat16",
           "--json", str(out), *(["--library", str(library)] if library else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert proc.returncode == 0, "\n".join(report["violations"]) or proc.stderr[-3000:]
    assert 95 <= report["calibration"]["estimate_pct_copy_bw"] <= 100.5
    kernels = report["kernels"]
    assert {k["backend"] for k in kernels} == {"cuda", "triton"}
    assert {k["op"] for k in kernels} == {"attention_pool", "channel_attention"}
    from fusedattn.sass_report.report import op_reports
    needs = {op: getattr(r, "TENSOR_CORE_KERNELS", None) for op, r in op_reports().items()}
    for k in kernels:
        if k["streams_features"] and k["dtype"] == "bfloat16" and (
                needs[k["op"]] is None or k["kernel"] in needs[k["op"]]):
            assert k["tensor_core_instructions"] > 0, k
    estimates = [e for e in report["estimates"] if e["op"] == "attention_pool"]
    assert {(e["backend"], e["mode"]) for e in estimates} == {
        (b, m) for b in ("cuda", "triton") for m in ("forward", "forward+backward")}
    assert all(e["estimate_us"] > e["floor_us"] > 0 for e in estimates)
