// Prints the CUDA launch plans (plan.h) of a channel_attention call, forward and backward, as
// JSON, one line:
//
//   plan_dump B C N R element_size weight_size sb sc sn sm_count l2_cache_bytes
//
// (x's strides in elements; x, grad_y and grad_x alike, as the op arranges them, at 16-byte
// aligned addresses as the caching allocator gives them.) The static SASS report (python -m
// fusedattn sass-report) builds this with the host compiler so that it models exactly the
// launches the op makes. (A .cc file: setup.py builds every .cpp of csrc/ into the extension,
// and this is a program of its own.)
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "plan.h"

namespace ca = fusedattn::channel_attention::cuda;

namespace {

// The variants' names, as fusedattn/ops/channel_attention/sass_report.py names compiled kernels.
const char* squeeze_name(const ca::Plan& p) {
  switch (ca::squeeze_variant(p)) {
    case ca::kSqueezePixelRows: return "pixel_rows";
    case ca::kSqueezePixelRowsMisaligned: return "pixel_rows_misaligned";
    case ca::kSqueezeChannelVectors: return "channel_vectors";
    default: return "channels";
  }
}
const char* excite_name(ca::ExciteVariant v) {
  return v == ca::kExciteNchwVectors ? "nchw_vectors"
         : v == ca::kExciteChannelsLastVectors ? "channels_last_vectors" : "strided";
}

void plan(const char* name, const ca::Plan& p, ca::ExciteVariant excite,
          const std::vector<ca::PlannedLaunch>& launches, bool comma) {
  std::printf("\"%s\": {\"chunk\": %lld, \"splits\": %lld, \"pixels_per_split\": %lld, "
              "\"row_lanes\": %lld, \"slab_in_l2\": %s, \"squeeze_variant\": \"%s\", "
              "\"excite_variant\": \"%s\", \"launches\": [",
              name, static_cast<long long>(p.chunk), static_cast<long long>(p.splits),
              static_cast<long long>(p.pixels_per_split), static_cast<long long>(p.row_lanes),
              p.slab_in_l2 ? "true" : "false", squeeze_name(p), excite_name(excite));
  for (size_t i = 0; i < launches.size(); ++i) {
    std::printf("{");
    fusedattn::cuda::print_launch_json(launches[i].kernel, launches[i].geometry);
    std::printf("}%s", i + 1 < launches.size() ? ", " : "");
  }
  std::printf("]}%s", comma ? ", " : "");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 12) {
    std::fprintf(stderr,
                 "usage: %s B C N R element_size weight_size sb sc sn sm_count l2_cache_bytes\n",
                 argv[0]);
    return 2;
  }
  long long v[11];
  for (int i = 0; i < 11; ++i) v[i] = std::atoll(argv[i + 1]);
  const int64_t B = v[0], C = v[1], N = v[2], R = v[3], e = v[4], w = v[5];
  const fusedattn::channel_attention::Strides s{v[6], v[7], v[8]};
  const ca::DeviceLimits device{static_cast<int>(v[9]), static_cast<size_t>(v[10])};
  const uintptr_t address = 256;  // any 16-byte aligned address
  // Forward: the squeeze of x; backward: of grad_y * x, grad_y laid out as x.
  const ca::SqueezeLayout fl = ca::squeeze_layout(s, address, nullptr, 0, C, N, e);
  const ca::SqueezeLayout bl = ca::squeeze_layout(s, address, &s, address, C, N, e);
  const ca::Plan fp = ca::make_plan(B, C, N, e, 1, fl, device);
  const ca::Plan bp = ca::make_plan(B, C, N, e, 2, bl, device);
  // (y and grad_x laid out as x, grad_y too)
  const ca::ExciteVariant ex = ca::excite_variant(s, address, s, address, B, C, N, e);
  std::printf("{");
  plan("forward", fp, ex, ca::planned_launches(fp, false, B, C, N, R, e, w, ex), true);
  plan("backward", bp, ex, ca::planned_launches(bp, true, B, C, N, R, e, w, ex), false);
  std::printf("}\n");
  return 0;
}
