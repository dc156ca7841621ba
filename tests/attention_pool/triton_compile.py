"""Compiles every Triton kernel of fusedattn for a GPU architecture without a GPU (Triton's
bundled ptxas), so CI catches what the interpreter cannot: type errors in the lowering, tl.dot
shapes, register spills. Run in a process without TRITON_INTERPRET:

    python tests/attention_pool/triton_compile.py 90 80      # prints one line per compiled variant
"""

import json
import os
import subprocess
import sys
import tempfile

assert os.environ.get("TRITON_INTERPRET") != "1", "compile checks need the real Triton compiler"

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import fusedattn.ops.attention_pool.triton_kernels as fap  # noqa: E402
from fusedattn import _triton  # noqa: E402

TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def variants():
    """(name, kernel, signature, constexprs) for each kernel x dtype x layout x shape class."""
    for dtype, t in TYPES.items():
        precision = "ieee" if t == "fp32" else "tf32"
        for layout in ("nchw", "channels_last"):
            # Triton specializes unit strides into constants: that is what picks the layout.
            unit = {"s_fn": 1} if layout == "nchw" else {"s_fc": 1}
            for K, N, C in ((8, 400, 1024), (33, 49, 2048), (1, 3136, 256)):
                cfg = fap.launch_config(256, C, K, N, getattr(torch, dtype), _FakeDevice())
                f_strides = {"s_fb": "i64", "s_fc": "i64", "s_fn": "i64"}
                for name in unit:
                    f_strides[name] = "constexpr"
                tag = f"{dtype}/{layout}/K{K}N{N}"
                yield (f"fwd {tag}", fap._attention_pool_fwd_kernel, {
                    "f_ptr": f"*{t}", "a_ptr": f"*{t}", "v_ptr": f"*{t}", "s_ptr": "*fp32",
                    "lse_ptr": "*fp32", "div_ptr": "*fp32", "C": "i32", "K": "i32", "N": "i32",
                    "alpha": "fp32", **f_strides, "s_ab": "i64", "s_ak": "i64", "s_an": "i32",
                    "HAS_DIV": "constexpr", "KP": "constexpr", "BC": "constexpr",
                    "BN": "constexpr", "BNS": "constexpr", "DOT_PRECISION": "constexpr"},
                    {**unit, "s_an": 1, "HAS_DIV": True, "KP": cfg["KP"], "BC": cfg["BC"],
                     "BN": cfg["BN"], "BNS": cfg["BNS"], "DOT_PRECISION": precision},
                    cfg["num_warps"])
                gf_unit = {("s_gf" + k[3:]): v for k, v in unit.items()}
                gf_strides = {"s_gfb": "i64", "s_gfc": "i64", "s_gfn": "i64"}
                for name in gf_unit:
                    gf_strides[name] = "constexpr"
                yield (f"bwd-features {tag}", fap._attention_pool_bwd_features_kernel, {
                    "f_ptr": f"*{t}", "a_ptr": f"*{t}", "gv_ptr": f"*{t}", "s_ptr": "*fp32",
                    "gf_ptr": f"*{t}", "gw_ptr": "*fp32", "C": "i32", "K": "i32", "N": "i32",
                    "alpha": "fp32", **f_strides, "s_ab": "i64", "s_ak": "i64", "s_an": "i32",
                    **gf_strides, "KP": "constexpr", "BC": "constexpr", "BN": "constexpr",
                    "DOT_PRECISION": "constexpr"},
                    {**unit, **gf_unit, "s_an": 1, "KP": cfg["KP"], "BC": cfg["BC"],
                     "BN": cfg["BN"], "DOT_PRECISION": precision}, cfg["num_warps"])
                yield (f"bwd-logits {tag}", fap._attention_pool_bwd_logits_kernel, {
                    "a_ptr": f"*{t}", "s_ptr": "*fp32", "lse_ptr": "*fp32", "gs_ptr": "*fp32",
                    "gd_ptr": "*fp32", "gw_ptr": "*fp32", "ga_ptr": f"*{t}", "K": "i32",
                    "N": "i32", "n_splits": "i32", "s_ab": "i64", "s_ak": "i64", "s_an": "i32",
                    "s_gab": "i64", "s_gak": "i64", "s_gan": "i32", "HAS_GD": "constexpr",
                    "KP": "constexpr", "BNS": "constexpr"},
                    {"s_an": 1, "s_gan": 1, "HAS_GD": True, "KP": cfg["KP"], "BNS": cfg["BNS"]},
                    cfg["num_warps"])


class _FakeDevice:
    """launch_config's device: a GPU with H100's 132 SMs (the heuristic only reads the count)."""
    type = "cuda"
    index = 0


def resource_usage(cubin: bytes) -> dict:
    """Registers, spill stores and shared memory of a cubin, from Triton's bundled cuobjdump."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
        fh.write(cubin)
        fh.flush()
        out = subprocess.run([tool, "-res-usage", fh.name], capture_output=True, text=True).stdout
    usage = {}
    for key, label in (("registers", "REG:"), ("spill_stores", "STACK:"), ("shared", "SHARED:")):
        if label in out:
            usage[key] = int(out.split(label)[1].split()[0])
    return usage


def main(archs):
    _triton.sm_count = lambda index: 132
    ok = True
    for arch in archs:
        target = GPUTarget("cuda", int(arch), 32)
        for name, kernel, signature, constexprs, warps in variants():
            try:
                compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=target,
                                          options={"num_warps": warps})
                ptx = compiled.asm["ptx"]
                row = {"arch": f"sm_{arch}", "kernel": name, "mma": "mma" in ptx,
                       **resource_usage(compiled.asm["cubin"])}
            except Exception as exc:  # noqa: BLE001 -- report every variant, then fail
                ok = False
                row = {"arch": f"sm_{arch}", "kernel": name, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["90"]))
