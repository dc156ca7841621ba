// Prints the CUDA launch plans (plan.h) of an attention_pool call as JSON, one line:
//
//   plan_dump B C K N element_size sb sc sn sm_count    (the features' strides in elements)
//
// The static SASS report (python -m fusedattn sass-report) builds this with the host compiler
// so that it models exactly the grids real launches get. (A .cc file: setup.py builds every
// .cpp of csrc/ into the extension, and this is a program of its own.)
#include <cstdio>
#include <cstdlib>

#include "plan.h"

namespace ap = fusedattn::attention_pool::cuda;

namespace {

// One launch: its name, its kernel function, whether that is templated on the plan's map tiles
// and feature load (else on the dtype alone), and the plan's numbers.
void launch(const char* name, const char* kernel, bool tiled, const ap::Launch& l, bool comma) {
  std::printf("{\"name\": \"%s\", \"tiled\": %s, ", name, tiled ? "true" : "false");
  fusedattn::cuda::print_launch_json(kernel, l);
  std::printf("}%s", comma ? ", " : "");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 10) {
    std::fprintf(stderr, "usage: %s B C K N element_size sb sc sn sm_count\n", argv[0]);
    return 2;
  }
  long long v[9];
  for (int i = 0; i < 9; ++i) v[i] = std::atoll(argv[i + 1]);
  // Features at a 16-byte aligned address (as the caching allocator gives them).
  const auto load = ap::choose_feature_load(static_cast<int>(v[4]), 0, v[5], v[6], v[7], v[1],
                                            v[3]);
  const ap::ForwardPlan f = ap::plan_forward(v[0], v[1], v[2], v[3], static_cast<int>(v[4]), load,
                                             static_cast<int>(v[8]));
  // The gradient laid out as the features (as the op allocates it); grad_pooled aligned.
  const auto bload = ap::choose_backward_load(load, static_cast<int>(v[4]), 0, v[5], v[6], v[7],
                                              v[1], v[3]);
  const ap::BackwardPlan b = ap::plan_backward(v[0], v[1], v[2], v[3], static_cast<int>(v[4]),
                                               bload, 0, static_cast<int>(v[8]));
  std::printf("{\"load\": \"%s\", \"backward_load\": \"%s\", \"map_tiles\": %d, \"map_groups\": %lld, "
              "\"pixel_splits\": %lld, \"channel_splits\": %lld, \"pool_streams_tiles\": %s, "
              "\"pool_own_stats\": %s, \"epilogue_held_maps\": %s, \"forward\": [",
              ap::feature_load_name(load), ap::feature_load_name(bload), f.map_tiles, static_cast<long long>(f.map_groups),
              static_cast<long long>(f.pixel_splits), static_cast<long long>(b.channel_splits),
              f.stream_tiles ? "true" : "false", f.own_stats ? "true" : "false",
              b.held_maps ? "true" : "false");
  launch("stats", "stats_kernel", false, f.stats, true);
  launch("pool", "pool_kernel", true, f.pool, true);
  launch("reduce", "reduce_kernel", false, f.reduce, false);
  std::printf("], \"backward\": [");
  launch("pad_gv", "pad_gv_kernel", false, b.pad_gv, true);
  launch("features", "features_kernel", true, b.features, true);
  launch("grad_features", "grad_features_kernel", true, b.grad_features, true);
  launch("gather", "gather_kernel", false, b.gather, true);
  launch("logits", "logits_kernel", false, b.logits, true);
  launch("epilogue", "epilogue_kernel", false, b.epilogue, false);
  std::printf("]}\n");
  return 0;
}
