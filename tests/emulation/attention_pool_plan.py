"""What tests/emulation/sanitize.py runs for attention_pool's CUDA kernels
(attention_pool_driver.cpp): the clean runs of each sanitizer build, and the planted mutants.

The cases (attention_pool_driver.cpp's kCases) take every tiled loop at least twice; fibers
are costly to create under ThreadSanitizer (about 1.4 ms each), so its runs are a subset.
FUSEDATTN_EMULATE_SM_COUNT=2 makes a channel split hold several channel tiles, and the block
orders show any dependence on the order blocks run in.
"""

from typing import NamedTuple

CASES = ["tiles", "maps33", "maps64", "maps9", "one_pixel", "no_channels"]
DTYPES = ["float32", "bfloat16", "float16"]
LAYOUTS = ["nchw", "nhwc"]

CLEAN = [("asan", [case, dtype, layout], None)
         for case in CASES for dtype in DTYPES for layout in LAYOUTS]
CLEAN += [("asan", ["tiles", "float32", layout], env) for layout in LAYOUTS for env in (
    {"FUSEDATTN_EMULATE_SM_COUNT": "2"}, {"FUSEDATTN_EMULATE_SM_COUNT": "1"},
    {"FUSEDATTN_EMULATE_BLOCK_ORDER": "reverse"},
    {"FUSEDATTN_EMULATE_BLOCK_ORDER": "shuffle:11"})]
CLEAN += [
    ("tsan", ["tiles", "float32", "nchw"], None),
    ("tsan", ["tiles", "bfloat16", "nhwc"], {"FUSEDATTN_EMULATE_SM_COUNT": "2"}),
    ("tsan", ["maps33", "bfloat16", "nhwc"], None),
    ("tsan", ["maps64", "float16", "nchw"], None),
    ("tsan", ["one_pixel", "float32", "nhwc"], None),
]


class Mutant(NamedTuple):
    name: str
    file: str           # under csrc/
    old: str            # must occur exactly once
    new: str
    flavor: str         # the sanitizer build it runs in
    args: list
    env: dict
    expect: list        # regexes the failing run's output must all match
    why: str


TILES = ["tiles", "float32", "nchw"]
MUTANTS = [
    Mutant("missing_barrier", "attention_pool/cuda/forward.cu",
           "      __syncthreads();  // the previous tile is consumed\n", "", "tsan", TILES, {},
           [r"ThreadSanitizer: data race", r"forward\.cu"],
           "the tile loop's 'tile consumed' barrier deleted: the next tile's loads race the "
           "previous tile's reads"),
    Mutant("global_tile_bound", "attention_pool/cuda/kernel_common.cuh",
           "(gc < C && gn < N) ? to_float(", "(gc <= C && gn < N) ? to_float(", "asan", TILES,
           {}, [r"AddressSanitizer: use-after-poison", r"kernel_common\.cuh"],
           "a channel tile's bound one past the features: reads the poisoned gap after a sample"),
    Mutant("shared_tile_bound", "attention_pool/cuda/kernel_common.cuh",
           "  for (int i = threadIdx.x; i < kChannelTile * kPixelTile; i += kThreads) {\n"
           "    const int c = channels_fast ? i % kChannelTile : i / kPixelTile;\n"
           "    const int n = channels_fast ? i / kChannelTile : i % kPixelTile;\n"
           "    const int64_t gc = c0 + c, gn = n0 + n;\n    tile[",
           "  for (int i = threadIdx.x; i <= kChannelTile * kPixelTile; i += kThreads) {\n"
           "    const int c = channels_fast ? i % kChannelTile : i / kPixelTile;\n"
           "    const int n = channels_fast ? i / kChannelTile : i % kPixelTile;\n"
           "    const int64_t gc = c0 + c, gn = n0 + n;\n    tile[", "asan", TILES, {},
           [r"AddressSanitizer: heap-buffer-overflow", r"kernel_common\.cuh"],
           "the shared tile load's loop bound one past: its last store lands past the block's "
           "shared memory"),
    Mutant("shuffle_exited_lanes", "attention_pool/cuda/forward.cu",
           "      const float D = block_sum<kThreads>(partial, scratch);",
           "      if (threadIdx.x >= p.N) return;\n"
           "      const float D = block_sum<kThreads>(partial, scratch);", "asan", TILES, {},
           [r"names exited lanes", r"reduce\.cuh:\d+"],
           "threads past the last pixel return before the block's sum: its shuffles name "
           "exited lanes"),
    Mutant("uninitialized_shared", "attention_pool/cuda/kernel_common.cuh",
           "tile[c * kTileStride + n] = (gc < C && gn < N) ? to_float(src[gc * sc + gn * sn]) : 0.f;",
           "if (gc < C && gn < N) tile[c * kTileStride + n] = to_float(src[gc * sc + gn * sn]);",
           "asan", TILES, {}, [r"FAILED", r"got -?nan"],
           "a partial tile's padding left unwritten: shared memory read back as NaN"),
    Mutant("missing_shared_memory_optin", "common/cuda/runtime.cuh",
           "    detail::allow_large_dynamic_shared_memory(reinterpret_cast<const void*>(kernel),\n"
           "                                              stream.where);\n", "", "asan", TILES, {},
           [r"cudaFuncAttributeMaxDynamicSharedMemorySize"],
           "the > 48 KB opt-in of the launch helper deleted: the backward's 49.7 KB launch "
           "must be refused"),
]
