// One kernel launch as an op's launch plan describes it: host-only, torch- and CUDA-free, so
// that the op's host code, its sanitizer driver and the static SASS report (python -m fusedattn
// sass-report, through the op's plan_dump.cc built by the host compiler alone) read the same
// geometry. print_launch_json writes it for the report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace fusedattn {
namespace cuda {

// Shared memory a block gets without the kernel's opt-in
// (cudaFuncAttributeMaxDynamicSharedMemorySize).
constexpr size_t kDefaultSharedMemoryPerBlock = 48 * 1024;

struct LaunchSpec {
  int64_t grid_x = 0, grid_y = 1;  // grid_x 0: the launch is skipped
  int threads = 0;
  size_t shared_bytes = 0;
  // For the static performance model only (docs/performance_model.md): the DRAM bytes the
  // launch moves (each buffer once, read + write), the bytes a block keeps in flight in its
  // main loop, that loop's iterations per block, the round trips to memory a block waits
  // for one after another (the small kernels' latency), and those the launch waits for once,
  // which no block's streaming hides (a last block's, after all the launch's work; a first
  // wave's, before any feature load: once per launch, not per wave).
  int64_t bytes = 0;
  int64_t in_flight_bytes = 0;
  int64_t steps = 1;
  int64_t rounds = 0;
  int64_t serial_rounds = 0;
};

// The launch's fields as JSON members ("kernel": ..., "grid": [x, y], ...), without braces, so
// that a plan_dump adds its own.
inline void print_launch_json(const char* kernel, const LaunchSpec& l) {
  std::printf("\"kernel\": \"%s\", \"grid\": [%lld, %lld], \"threads\": %d, "
              "\"shared_bytes\": %zu, \"bytes\": %lld, \"in_flight_bytes\": %lld, "
              "\"steps\": %lld, \"rounds\": %lld, \"serial_rounds\": %lld",
              kernel, static_cast<long long>(l.grid_x), static_cast<long long>(l.grid_y),
              l.threads, l.shared_bytes, static_cast<long long>(l.bytes),
              static_cast<long long>(l.in_flight_bytes), static_cast<long long>(l.steps),
              static_cast<long long>(l.rounds), static_cast<long long>(l.serial_rounds));
}

}  // namespace cuda
}  // namespace fusedattn
