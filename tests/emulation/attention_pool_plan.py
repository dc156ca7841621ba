"""What tests/emulation/sanitize.py runs for attention_pool's CUDA kernels
(attention_pool_driver.cpp): the clean runs of each sanitizer build, and the planted mutants.

The driver's cases (kCases) take every tiled loop at least twice between them; its layouts
reach every way the kernels load features (nchw and nhwc: 16-byte cp.async rows; dense: the
flat span of small maps; rows8: element by element). Fibers are costly to create under
ThreadSanitizer (about 1.4 ms each), so its runs are a subset. FUSEDATTN_EMULATE_SM_COUNT=1
makes one block stream several pixel chunks (forward; channel tiles too where a tile's chunks
are fewer than the ring's stages, and for the flat span) and channel tiles (backward), so the
cp.async ring turns over (SM count 2: the last block's share of the tiles is short); the block
orders show any dependence on the order blocks run in.
"""

from mutant import Mutant  # tests/emulation/mutant.py (sanitize.py puts it on the path)

CASES = ["tiles", "maps33", "wide_epilogue", "maps64", "maps9", "maps70", "small_map",
         "one_pixel", "no_channels", "uncached"]
LAYOUTS = ["nchw", "nhwc", "dense", "rows8"]
ONE_SM = {"FUSEDATTN_EMULATE_SM_COUNT": "1"}

# Every case in every layout in bfloat16 (but "uncached", whose 16-bit logits fit "stats"'
# shared copy: its point is float32's); float32 (whose products are FMAs, not mma) in every
# case and two layouts, and in the flat span; float16 (bfloat16's paths with other conversions)
# in three cases. The block orders and SM counts on the cases whose blocks share work (splits,
# map groups).
CLEAN = [("asan", [case, "bfloat16", layout], None) for case in CASES if case != "uncached"
         for layout in LAYOUTS]
CLEAN += [("asan", [case, "float32", layout], None) for case in CASES
          for layout in ("nchw", "rows8")]
CLEAN += [("asan", ["small_map", "float32", "dense"], env) for env in (None, ONE_SM)]
CLEAN += [("asan", [case, "float16", layout], None) for case in ("tiles", "maps70", "small_map")
          for layout in ("nhwc", "dense")]
CLEAN += [("asan", [case, "bfloat16", layout], env) for case, layout in (
              ("tiles", "nchw"), ("small_map", "dense"), ("maps70", "nchw")) for env in (
              ONE_SM, {"FUSEDATTN_EMULATE_SM_COUNT": "7"},
              {"FUSEDATTN_EMULATE_BLOCK_ORDER": "reverse"},
              {"FUSEDATTN_EMULATE_BLOCK_ORDER": "shuffle:11"})]
CLEAN += [("asan", ["small_map", dtype, "nhwc"], env) for dtype in ("bfloat16", "float32")
          for env in (ONE_SM, {"FUSEDATTN_EMULATE_SM_COUNT": "2"})]
CLEAN += [("asan", ["stream_groups", dtype, layout], ONE_SM)
          for dtype, layout in (("bfloat16", "nhwc"), ("bfloat16", "nchw"), ("float32", "nhwc"))]
CLEAN += [("asan", [case, dtype, layout], env) for case in ("held_splits", "batched_splits")
          for dtype, layout, env in (("bfloat16", "nchw", None),
                                     ("float32", "nhwc", {"FUSEDATTN_EMULATE_SM_COUNT": "20"}))]
CLEAN += [
    ("tsan", ["tiles", "bfloat16", "nchw"], ONE_SM),
    ("tsan", ["small_map", "bfloat16", "nhwc"], ONE_SM),
    ("tsan", ["tiles", "float32", "nhwc"], None),
    ("tsan", ["small_map", "bfloat16", "dense"], ONE_SM),
    ("tsan", ["maps70", "float16", "rows8"], ONE_SM),
    ("tsan", ["maps33", "bfloat16", "nhwc"], ONE_SM),
    ("tsan", ["wide_epilogue", "bfloat16", "nchw"], ONE_SM),
    ("tsan", ["one_pixel", "float32", "nhwc"], None),
]


TILES = ["tiles", "bfloat16", "nchw"]
MUTANTS = [
    Mutant("missing_barrier", "attention_pool/cuda/forward.cu",
           "    __syncthreads();  // this stage landed for every thread; the previous one is consumed\n",
           "", "tsan", TILES, ONE_SM, [r"ThreadSanitizer: data race"],
           "the ring's barrier deleted: a stage is read before every thread's copies landed, and "
           "refilled while other warps still read it"),
    Mutant("global_tile_bound", "attention_pool/cuda/common.cuh",
           "      copy_(ft, channels, pixels);",
           "      copy_(ft, channels, pixels + 1);", "asan",
           TILES, {}, [r"AddressSanitizer: use-after-poison"],
           "a feature tile's pixel bound one past: the copy reads the poisoned gap after a row"),
    Mutant("shared_tile_bound", "common/cuda/tile.cuh",
           "threadIdx.x + step * kThreads < kChunks;",
           "threadIdx.x + step * kThreads <= kChunks;", "asan", TILES, {},
           [r"AddressSanitizer: (heap-buffer-overflow|use-after-poison)"],
           "a tile copy's chunk bound one past: the last stage's copy lands past the block's "
           "shared memory (on the emulator's poisoned guard after it)"),
    Mutant("span_bound", "common/cuda/tile.cuh",
           "ptx::cp_async_cg_or_zero(dst + c, src + c, c < count);",
           "ptx::cp_async_cg_or_zero(dst + c, src + c, c <= count);", "asan",
           ["small_map", "bfloat16", "dense"], {},
           [r"AddressSanitizer: (use-after-poison|heap-buffer-overflow)"],
           "a flat span's copy one chunk past its count: a sample's last tile reads the "
           "poisoned run after it"),
    Mutant("tile_rewind", "attention_pool/cuda/forward.cu",
           "      if constexpr (!kOwnStats) copy_maps.advance(-rewind);\n", "", "asan",
           ["stream_groups", "bfloat16", "nhwc"], ONE_SM,
           [r"FAILED|AddressSanitizer: (use-after-poison|heap-buffer-overflow)"],
           "a block streaming channel tiles of two pixel chunks does not take its map cursor "
           "back to the first chunk: the next tile is pooled with the wrong pixels' maps"),
    Mutant("stats_span_bound", "common/cuda/tile.cuh",
           "  for (int c = threadIdx.x * kChunk<T>; c < count; c += kThreads * kChunk<T>) {",
           "  for (int c = threadIdx.x * kChunk<T>; c <= count; c += kThreads * kChunk<T>) {",
           "asan", ["small_map", "bfloat16", "dense"], {},
           [r"AddressSanitizer: (use-after-poison|heap-buffer-overflow)|"
            r"cp\.async destination: .* not inside the block's \d+ bytes of shared memory"],
           "the copy of a sample's logits as one span (here by the \"pool\" blocks that compute "
           "small maps' statistics), one chunk past it: the copy lands past the block's shared "
           "memory (and reads the poisoned run after the sample)"),
    Mutant("stats_vector_bound", "attention_pool/cuda/common.cuh",
           "          v[u] = c < chunks ? load_global_v4(row + c) : uint4{0, 0, 0, 0};",
           "          v[u] = load_global_v4(row + c);", "asan", ["maps70", "bfloat16", "nchw"], {},
           [r"AddressSanitizer: (use-after-poison|heap-buffer-overflow)"],
           "\"stats\"' 16-byte logit loads unguarded: chunks past a map's row read its poisoned "
           "gap"),
    Mutant("shuffle_exited_lanes", "attention_pool/cuda/forward.cu",
           "    const float D = block_sum<kStatsThreads>(partial, scratch);",
           "    if (threadIdx.x >= p.N) return;\n"
           "    const float D = block_sum<kStatsThreads>(partial, scratch);", "asan", TILES, {},
           [r"names exited lanes", r"reduce\.cuh:\d+"],
           "threads past the last pixel return before the block's sum: its shuffles name "
           "exited lanes"),
    Mutant("uninitialized_shared", "common/cuda/tile.cuh",
           "      ptx::cp_async_cg(dst + row_[step] * kLd + col_[step], src_[step],\n"
           "                       valid * static_cast<int>(sizeof(T)));",
           "      if (valid > 0) ptx::cp_async_cg(dst + row_[step] * kLd + col_[step], src_[step],\n"
           "                       valid * static_cast<int>(sizeof(T)));",
           "asan", TILES, {}, [r"FAILED", r"got -?nan"],
           "chunks past a tile's edge left unwritten instead of zero-filled: shared memory read "
           "back as NaN"),
    Mutant("relaxed_arrivals", "attention_pool/cuda/forward.cu",
           "ptx::atomic_add_acq_rel(arrivals, 1u)", "atomicAdd(arrivals, 1u)", "tsan",
           ["tiles", "float32", "nhwc"], {}, [r"ThreadSanitizer: data race"],
           "a split tile's blocks counted by a relaxed atomic: nothing orders the other splits' "
           "partial sums before the last block's loads of them"),
    Mutant("missing_shared_memory_optin", "common/cuda/runtime.cuh",
           "    detail::allow_large_dynamic_shared_memory(reinterpret_cast<const void*>(kernel),\n"
           "                                              stream.where);\n", "", "asan",
           ["maps64", "bfloat16", "nchw"], {}, [r"cudaFuncAttributeMaxDynamicSharedMemorySize"],
           "the > 48 KB opt-in of the launch helper deleted: the backward's launch of more than "
           "48 KB must be refused"),
]
