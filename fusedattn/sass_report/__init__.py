"""The static performance report: `python -m fusedattn sass-report [--json FILE] [--check]`.

No GPU needed. Every op's CUDA kernels are compiled for sm_90 by nvcc (the code-generating
flags of setup.py) and its Triton kernels by Triton for sm_90, each with the specialization its
real launches get; the SASS is read with cuobjdump and nvdisasm. Per kernel, dtype and variant the report
gives: backend, op, kernel, dtype, variant, streams_features (it reads or writes the op's big
tensors), registers, spill_bytes, shared_bytes, threads, blocks_per_sm, in_flight_bytes_per_sm,
hot_loop_global_access_bits (the widths of the global accesses inside its loops),
hot_loop_instructions, tensor_core_instructions (HMMA/HGMMA), and per spec shape and layout
the launch's ctas and its estimate_pct_copy_bw from the model (model.py,
docs/performance_model.md). Per op, shape, layout, dtype and mode it estimates the time and the
share of copy bandwidth the floor's bytes stand for; the model is checked on a plain
vectorized copy kernel, which it must put near 100%. --check fails on a spill, on a global
access narrower than 128 bits in a loop of an aligned streaming kernel, on a 16-bit streaming
kernel without tensor-core instructions, on less than 32 KB in flight per SM, on fewer than
132 CTAs at B = 1, and on modelled targets missed (bf16, B >= 64: forward 85%,
forward+backward 75%).
"""
