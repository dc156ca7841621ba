"""What tests/emulation/sanitize.py runs for channel_attention's CUDA kernels
(channel_attention_driver.cpp): the clean runs of each sanitizer build, and the planted mutants.

The cases (the driver's kCases) take every loop at least twice (see there; long_rows, the aligned
pixel rows' main loop over several steps, runs with one SM so that no split shortens its rows;
tiles reads its pixel rows as the misaligned variant does); ThreadSanitizer
runs only launches of at most 8000 threads (fibers cost ~1.4 ms each): the "small" case, the
one-pixel case and batch chunks, with a small SM count so that no split multiplies the grid.
"""

from mutant import Mutant  # tests/emulation/mutant.py (sanitize.py puts it on the path)

CASES = ["tiles", "wide", "chunks", "one_pixel", "small", "big_mlp"]  # (+ long_rows below)
DTYPES = ["float32", "bfloat16", "float16"]
LAYOUTS = ["nchw", "nhwc"]

ONE_SM = {"FUSEDATTN_EMULATE_SM_COUNT": "1"}
CLEAN = [("asan", [case, dtype, layout], None)
         for case in CASES for dtype in DTYPES for layout in LAYOUTS]
CLEAN += [("asan", ["long_rows", dtype, "nchw"], ONE_SM) for dtype in ("float32", "bfloat16")]
CLEAN += [("asan", ["tiles", "float32", layout], env) for layout in LAYOUTS for env in (
    {"FUSEDATTN_EMULATE_SM_COUNT": "1"}, {"FUSEDATTN_EMULATE_BLOCK_ORDER": "reverse"},
    {"FUSEDATTN_EMULATE_BLOCK_ORDER": "shuffle:5"})]
# Dense tensors: the excite's and squeeze's vector variants for rows back to back (vectors that
# span rows; the aligned pixel-rows squeeze on misaligned row starts).
CLEAN += [("asan", [case, dtype, layout], None) for case in ("tiles", "wide", "one_pixel")
          for dtype in ("float32", "bfloat16") for layout in ("nchw_dense", "nhwc_dense")]
CLEAN += [("asan", ["long_rows", "float16", "nchw_dense"], ONE_SM)]
SMALL_GRIDS = {"FUSEDATTN_EMULATE_SM_COUNT": "2"}
CLEAN += [("tsan", ["small", dtype, layout], SMALL_GRIDS)
          for dtype, layout in (("float32", "nchw"), ("bfloat16", "nhwc"), ("float16", "nhwc"))]
CLEAN += [("tsan", ["one_pixel", "float32", "nhwc"], SMALL_GRIDS),
          ("tsan", ["small", "bfloat16", "nchw_dense"], SMALL_GRIDS),
          ("tsan", ["chunks", "bfloat16", "nchw"], SMALL_GRIDS)]


STREAMING = "channel_attention/cuda/streaming.cu"
MLP = "channel_attention/cuda/mlp.cu"
MUTANTS = [
    Mutant("missing_barrier", STREAMING,
           "  __syncthreads();\n  if (phase == 0 && unit < p.units) {",
           "  if (phase == 0 && unit < p.units) {", "tsan", ["small", "float32", "nhwc"],
           SMALL_GRIDS, [r"ThreadSanitizer: data race", r"streaming\.cu"],
           "the barrier between the phases' partial sums and their reduction deleted"),
    Mutant("global_tile_bound", STREAMING,
           "  for (int64_t i = head + n_vec * kVec<T> + lane; i < len; i += 32) {",
           "  for (int64_t i = head + n_vec * kVec<T> + lane; i <= len; i += 32) {", "asan",
           ["tiles", "float32", "nchw"], {}, [r"AddressSanitizer", r"streaming\.cu"],
           "a pixel row's tail loop one past the row: reads its poisoned padding"),
    Mutant("shared_tile_bound", STREAMING,
           "    for (int64_t q = 1; q < phases; ++q) {",
           "    for (int64_t q = 1; q <= phases; ++q) {", "asan", ["small", "float32", "nhwc"], {},
           [r"AddressSanitizer: heap-buffer-overflow", r"streaming\.cu"],
           "the phase reduction one past the block's shared memory"),
    Mutant("aligned_tail_bound", STREAMING,
           "    if (tail + i < len) acc +=",
           "    if (tail + i <= len) acc +=", "asan",
           ["long_rows", "float32", "nchw"], ONE_SM, [r"AddressSanitizer", r"streaming\.cu"],
           "an aligned pixel row's tail one past the row: reads its poisoned padding"),
    Mutant("excite_vector_bound", STREAMING,
           "  const int64_t n_vec = p.samples * p.C * p.N / kVec<T>;",
           "  const int64_t n_vec = (p.samples * p.C * p.N + kVec<T>) / kVec<T>;",
           "asan", ["tiles", "float32", "nchw_dense"], {},
           [r"AddressSanitizer: heap-buffer-overflow"],
           "the dense excite's vector count one past: a vector read past the tensor's end"),
    Mutant("shuffle_exited_lanes", STREAMING,
           "  acc = group_sum(acc, lanes);\n  if (lane == 0 && c < p.C) p.partials",
           "  if (lane >= len) return;\n  acc = group_sum(acc, lanes);\n"
           "  if (lane == 0 && c < p.C) p.partials",
           "asan", ["one_pixel", "float32", "nchw"], {},
           [r"names lane \d+, which exited", r"streaming\.cu:\d+"],
           "lanes past a short row return before their group's sum: its shuffles name exited "
           "lanes"),
    Mutant("uninitialized_shared", MLP,
           "    s[i] = mean;\n",
           "    if (c != 0) s[i] = mean;\n",
           "asan", ["tiles", "float32", "nchw"], {},
           [r"tiles nchw: FAILED"],
           "the MLP's squeezed channel 0 left unwritten: its NaN fill (ReLU makes it 0) gives "
           "wrong y and gradients"),
    Mutant("missing_shared_memory_optin", "common/cuda/runtime.cuh",
           "    detail::allow_large_dynamic_shared_memory(reinterpret_cast<const void*>(kernel),\n"
           "                                              stream.where);\n", "", "asan",
           ["big_mlp", "float32", "nchw"], {}, [r"cudaFuncAttributeMaxDynamicSharedMemorySize"],
           "the > 48 KB opt-in of the launch helper deleted: the MLP's 51 KB launch must be refused"),
]
