// The emulator: fibers and the block scheduler, __syncthreads and the warp collectives, the
// deferred copies of cp.async and of the bulk copy, and the sanitizer annotations that make
// ThreadSanitizer see CUDA's ordering and nothing else. README.md states the semantics.
#include "emulator.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define FUSEDATTN_EMULATION_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FUSEDATTN_EMULATION_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUSEDATTN_EMULATION_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define FUSEDATTN_EMULATION_TSAN 1
#endif
#endif

#if FUSEDATTN_EMULATION_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if FUSEDATTN_EMULATION_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace fusedattn {
namespace emulation {
namespace {

using detail::Shuffle;

// ---------------------------------------------------------------------------------------------
// Sanitizer annotations.

// ThreadSanitizer. Each emulated thread is a TSan fiber, switched to without synchronization, so
// the emulator's scheduling orders nothing. The emulator's own bookkeeping (queues, counters,
// operands handed between lanes) runs with TSan's memory accesses ignored; kernel code and the
// emulated memory effects of PTX (UserAccess) are seen. Only CUDA's ordering is published, as
// release on arrival and acquire on departure (README: the sanitizer model).
//
// Ignoring is a per-fiber count in TSan, which must be 0 when a fiber is destroyed. So it is
// kept at exactly 1 outside kernel code: a fiber starts in emulator code with it at 1, every
// entry point from kernel code (and the host's launch) takes one Bookkeeping scope, never
// nested, and kernel code and user-visible memory effects run inside UserAccess scopes.
//
// A waiting thread's acquire is made when the operation completes, on its behalf: were it made
// when the thread resumes, it would also pick up what faster threads released since, for the
// next barrier.
//
// Every thread of a launch has a fiber of its own, alive until the launch ends: TSan gives a
// destroyed fiber's thread id to the next, whose accesses would then look ordered after the
// old owner's. Later launches reuse them (creating one costs about a millisecond), which hides
// nothing, since launches are ordered through the host.
namespace tsan {
#if FUSEDATTN_EMULATION_TSAN
constexpr bool kEnabled = true;
// Fibers a launch may create, within the thread ids TSan tracks at once (8192).
constexpr uint64_t kMaxFibers = 8000;
void* current_fiber() { return __tsan_get_current_fiber(); }
void switch_to(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
void release(const void* token) { __tsan_release(const_cast<void*>(token)); }
void acquire(const void* token) { __tsan_acquire(const_cast<void*>(token)); }
// These act as another fiber without switching stacks: they call the runtime directly, so that
// no function entry or exit lands on that fiber's shadow stack.
void* create_fiber() {
  void* const self = __tsan_get_current_fiber();
  void* const fiber = __tsan_create_fiber(0);
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
  __tsan_ignore_thread_begin();
  __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
  return fiber;
}
void acquire_as(void* fiber, const void* token) {
  void* const self = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
  __tsan_acquire(const_cast<void*>(token));
  __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
}
void release_as(void* fiber, const void* token) {
  void* const self = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
  __tsan_release(const_cast<void*>(token));
  __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
}
void destroy_fiber(void* fiber) {
  void* const self = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
  __tsan_ignore_thread_end();
  __tsan_switch_to_fiber(self, __tsan_switch_to_fiber_no_sync);
  __tsan_destroy_fiber(fiber);
}
struct Bookkeeping {
  Bookkeeping() { __tsan_ignore_thread_begin(); }
  ~Bookkeeping() { __tsan_ignore_thread_end(); }
};
struct UserAccess {
  UserAccess() { __tsan_ignore_thread_end(); }
  ~UserAccess() { __tsan_ignore_thread_begin(); }
};
#else
constexpr bool kEnabled = false;
constexpr uint64_t kMaxFibers = UINT64_MAX;
void* current_fiber() { return nullptr; }
void switch_to(void*) {}
void release(const void*) {}
void acquire(const void*) {}
void* create_fiber() { return nullptr; }
void acquire_as(void*, const void*) {}
void release_as(void*, const void*) {}
void destroy_fiber(void*) {}
struct Bookkeeping {
  Bookkeeping() {}
};
struct UserAccess {
  UserAccess() {}
};
#endif
}  // namespace tsan

// AddressSanitizer: fiber switches are announced, so that ASan knows which stack is live.
namespace asan {
#if FUSEDATTN_EMULATION_ASAN
constexpr bool kEnabled = true;
void start_switch(void** fake_stack, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
void finish_switch(void* fake_stack, const void** from_bottom, size_t* from_size) {
  __sanitizer_finish_switch_fiber(fake_stack, from_bottom, from_size);
}
void poison(const void* address, size_t bytes) { ASAN_POISON_MEMORY_REGION(address, bytes); }
void unpoison(const void* address, size_t bytes) { ASAN_UNPOISON_MEMORY_REGION(address, bytes); }
#else
constexpr bool kEnabled = false;
void start_switch(void**, const void*, size_t) {}
void finish_switch(void*, const void**, size_t*) {}
void poison(const void*, size_t) {}
void unpoison(const void*, size_t) {}
#endif
}  // namespace asan

// ---------------------------------------------------------------------------------------------
// Messages.

std::string vformat(const char* fmt, va_list args) {
  va_list measure;
  va_copy(measure, args);
  const int size = std::vsnprintf(nullptr, 0, fmt, measure);
  va_end(measure);
  std::string out(static_cast<size_t>(size), '\0');
  std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  return out;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::string out = vformat(fmt, args);
  va_end(args);
  return out;
}

std::string text(const uint3& v) { return format("(%u,%u,%u)", v.x, v.y, v.z); }
std::string text(const dim3& v) { return format("(%u,%u,%u)", v.x, v.y, v.z); }
std::string text(SourceLocation where) { return format("%s:%d", where.file, where.line); }

bool same_site(SourceLocation a, SourceLocation b) {
  return a.line == b.line && std::strcmp(a.file, b.file) == 0;
}

// "0-15, 32, 40-47" for a sorted list of thread indices.
std::string index_ranges(const std::vector<unsigned>& indices) {
  std::string out;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + (i == j ? format("%u", indices[i])
                                               : format("%u-%u", indices[i], indices[j]));
    i = j + 1;
  }
  return out;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fusedattn emulation: %s\n", what);
  std::abort();
}

bool aligned(const void* address, size_t alignment) {
  return reinterpret_cast<uintptr_t>(address) % alignment == 0;
}

// ---------------------------------------------------------------------------------------------
// Settings.

struct Settings {
  DeviceAttributes device;
  BlockOrder order = BlockOrder::kForward;
  uint64_t shuffle_seed = 0;
  size_t stack_size = 256 * 1024;
  std::unordered_map<const void*, size_t> max_dynamic_shared_memory;  // per kernel
};

// What one launch needs of the settings, copied when it starts.
struct LaunchSettings {
  DeviceAttributes device;
  BlockOrder order;
  uint64_t shuffle_seed;
  size_t stack_size;
  size_t max_dynamic_shared_memory;  // the kernel's attribute; 0 when never set
};

uint64_t parse_unsigned(const char* name, const char* value) {
  char* end = nullptr;
  const unsigned long long parsed = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0' || parsed == 0) {
    throw std::invalid_argument(
        format("fusedattn emulation: %s=%s: expected a positive integer", name, value));
  }
  return parsed;
}

Settings settings_from_environment() {
  Settings s;
  if (const char* v = std::getenv("FUSEDATTN_EMULATE_SM_COUNT")) {
    s.device.sm_count = static_cast<int>(parse_unsigned("FUSEDATTN_EMULATE_SM_COUNT", v));
  }
  if (const char* v = std::getenv("FUSEDATTN_EMULATE_STACK_KB")) {
    s.stack_size = parse_unsigned("FUSEDATTN_EMULATE_STACK_KB", v) * 1024;
  }
  if (const char* v = std::getenv("FUSEDATTN_EMULATE_BLOCK_ORDER")) {
    const std::string order = v;
    if (order == "forward") {
      s.order = BlockOrder::kForward;
    } else if (order == "reverse") {
      s.order = BlockOrder::kReverse;
    } else if (order == "shuffle") {
      s.order = BlockOrder::kShuffle;
    } else if (order.rfind("shuffle:", 0) == 0) {
      s.order = BlockOrder::kShuffle;
      s.shuffle_seed = parse_unsigned("FUSEDATTN_EMULATE_BLOCK_ORDER's seed", v + 8);
    } else {
      throw std::invalid_argument(format(
          "fusedattn emulation: FUSEDATTN_EMULATE_BLOCK_ORDER=%s: expected forward, reverse, "
          "shuffle or shuffle:<seed>", v));
    }
  }
  return s;
}

std::mutex settings_mutex;

// Callers hold settings_mutex.
Settings& settings() {
  static Settings s = settings_from_environment();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Fiber stacks: mmap'ed, each above a PROT_NONE guard page, and kept for the next block.

class StackPool {
 public:
  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool() { unmap_all(); }

  // Makes `count` stacks of `size` bytes ready for fresh fibers.
  void prepare(size_t count, size_t size) {
    if (size != size_) {
      unmap_all();
      size_ = size;
    }
    for (size_t i = 0; i < std::min(count, stacks_.size()); ++i) recycle(stacks_[i]);
    while (stacks_.size() < count) stacks_.push_back(map_stack());
  }
  char* stack(size_t i) const { return stacks_[i]; }
  size_t size() const { return size_; }

 private:
  static size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

  char* map_stack() const {
    const size_t guard = page_size();
    void* mapping = mmap(nullptr, guard + size_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED) die("cannot map a fiber stack");
    if (mprotect(mapping, guard, PROT_NONE) != 0) die("cannot protect a fiber stack's guard page");
    return static_cast<char*>(mapping) + guard;
  }

  // A stack's previous fiber leaves traces a fresh fiber must not inherit: under TSan, the
  // previous block's accesses (which would race with this block's: fresh pages reset TSan's
  // shadow); under ASan, the poisoned redzones of frames that never returned.
  void recycle(char* stack) const {
    if (tsan::kEnabled && mmap(stack, size_, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
                               0) == MAP_FAILED) {
      die("cannot remap a fiber stack");
    }
    asan::unpoison(stack, size_);
  }

  void unmap_all() {
    for (char* stack : stacks_) munmap(stack - page_size(), page_size() + size_);
    stacks_.clear();
  }

  std::vector<char*> stacks_;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The state of a launch.

// Somewhere execution can be switched to: a fiber, or the host thread running the scheduler.
struct Context {
  ucontext_t uc{};
  void* tsan_fiber = nullptr;
  const void* stack_bottom = nullptr;  // for ASan
  size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
};

// What a blocked thread waits for, for the deadlock report.
struct WaitState {
  const char* operation = nullptr;
  SourceLocation where{};
  unsigned mask = 0;  // of a warp collective; 0 for other waits
};

struct PendingCopy {  // a cp.async not yet retired
  void* dst;
  int bytes;
  unsigned group;
  unsigned char data[16];  // the source bytes, zero-filled past src-size
};

struct Block;

struct Fiber {
  Context context;
  Block* block = nullptr;
  uint3 thread_idx{};
  unsigned linear_index = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y
  bool exited = false;
  WaitState wait;
  std::vector<PendingCopy> copies;
  unsigned committed_groups = 0;
};

// One lane's part in a warp collective.
struct LaneOperands {
  const void* in;
  void* out;
  uint32_t operand;
  SourceLocation where;
};

enum class WarpOp { kSyncwarp, kShuffle, kBallot, kAny, kAll, kLdmatrix, kMma };

// A warp collective some lanes of its mask have reached.
struct Collective {
  WarpOp op;
  uint32_t parameters;  // lanes meet only at the same op with the same parameters and mask
  const char* name;
  unsigned mask;
  unsigned arrived;
  const void* sync_token;
  std::array<LaneOperands, kWarpSize> lanes;
};

struct Warp {
  std::array<Fiber*, kWarpSize> lanes{};
  unsigned exited = 0;
  std::vector<Collective> pending;
  // TSan synchronization per mask: every collective with a given mask involves all its lanes,
  // so what earlier ones published is already known to each of them (README).
  std::unordered_map<unsigned, char> sync_tokens;
};

struct BulkCopy {
  void* dst;
  std::vector<unsigned char> data;  // the source, read at issue
};

struct Mbarrier {
  unsigned expected = 0;    // arrivals per phase
  unsigned pending = 0;     // arrivals the current phase still needs
  int64_t tx_count = 0;     // bytes the current phase's arrivals announced (expect_tx)
  int64_t bytes_in_flight = 0;
  uint64_t phase = 0;
  std::vector<BulkCopy> copies;
  std::vector<Fiber*> waiters;
};

struct Block {
  uint3 block_idx{};
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  unsigned char* shared_memory = nullptr;
  size_t shared_memory_bytes = 0;
  unsigned exited = 0;
  const Fiber* first_exited = nullptr;
  std::vector<Fiber*> barrier_waiters;  // at the __syncthreads in progress
  SourceLocation barrier_site{};
  char barrier_token = 0;
  std::unordered_map<const void*, Mbarrier> mbarriers;

  ~Block() { std::free(shared_memory); }
};

struct Launch {
  const LaunchConfig& config;
  ThreadMain thread_main;
  const void* call;
  std::string error;
  char start_token = 0;  // host -> kernel ordering
  char exit_token = 0;   // kernel -> host ordering
  struct TsanFiber {
    void* fiber;
    bool exited;
  };
  std::vector<TsanFiber> tsan_fibers;  // every block's, released at the end of the launch
};

// ---------------------------------------------------------------------------------------------
// The scheduler: one per host thread.

// The frames a fiber never returns from carry no TSan function entry, so that the shadow call
// stack of a fiber that exited is empty, as its reuse needs.
#define FUSEDATTN_NEVER_RETURNS_HERE __attribute__((no_sanitize("thread")))

class Scheduler {
 public:
  Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler() {
    for (void* fiber : tsan_fibers_) tsan::destroy_fiber(fiber);
  }

  std::string run(const LaunchConfig& config, ThreadMain thread_main, const void* call,
                  const LaunchSettings& settings);

  Fiber& current() {
    if (current_ == nullptr) die("a CUDA built-in was called outside a kernel");
    return *current_;
  }
  const Launch& launch() {
    if (launch_ == nullptr) die("a CUDA built-in was called outside a kernel");
    return *launch_;
  }

  void wait(const WaitState& state);
  void wake(Fiber& fiber) { runnable_.push_back(&fiber); }
  // Ends the launch with an error naming `where` and the culprit thread, and abandons the
  // current fiber. The arguments must not own heap memory: their destructors never run.
  [[noreturn]] void fail(SourceLocation where, const Fiber& culprit, const char* fmt, ...)
      __attribute__((format(printf, 4, 5)));
  [[noreturn]] FUSEDATTN_NEVER_RETURNS_HERE void exit_thread();

  // A lane's arrival at a warp collective; returns once every lane of `mask` has arrived and
  // the last to arrive has performed the operation for all of them.
  void collective(WarpOp op, uint32_t parameters, const char* name, unsigned mask,
                  const LaneOperands& operands);

  void check_shared(const void* address, size_t bytes, const char* operation,
                    SourceLocation where, const Fiber& culprit);
  void check_aligned(const void* address, size_t alignment, const char* operation,
                     SourceLocation where) {
    if (!aligned(address, alignment)) {
      fail(where, current(), "%s: address %p is not %zu-byte aligned", operation, address,
           alignment);
    }
  }

 private:
  // A fresh fiber's context, entering fiber_main on `stack`.
  void start_context(Context& context, char* stack, size_t stack_size);
  FUSEDATTN_NEVER_RETURNS_HERE static void fiber_main();
  void run_block(uint64_t linear_block, size_t stack_size);
  std::string deadlock_report(const Block& block) const;
  void complete(Collective& collective, Warp& warp);
  Context& next_context();
  void switch_to(Context& from, Context& to);
  [[noreturn]] FUSEDATTN_NEVER_RETURNS_HERE void leave(Context& from, Context& to);

  StackPool stacks_;
  Context host_;
  Launch* launch_ = nullptr;
  Fiber* current_ = nullptr;
  std::deque<Fiber*> runnable_;
  std::vector<void*> tsan_fibers_;  // exited in earlier launches, for reuse
};

Scheduler& scheduler() {
  thread_local Scheduler instance;
  return instance;
}

// Launch rules, checked before any thread runs: the device's limits and the project's.
std::string check_launch(const LaunchConfig& c, const DeviceAttributes& device,
                         size_t kernel_max_dynamic_shared_memory) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || threads == 0) {
    return format("zero-sized launch: grid %s, block %s", text(c.grid).c_str(),
                  text(c.block).c_str());
  }
  if (c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64) {
    return format("block %s exceeds the block dimension limits (1024, 1024, 64)",
                  text(c.block).c_str());
  }
  if (threads > static_cast<uint64_t>(device.max_threads_per_block)) {
    return format("block %s has %llu threads, more than the device's %d per block",
                  text(c.block).c_str(), static_cast<unsigned long long>(threads),
                  device.max_threads_per_block);
  }
  if (threads % kWarpSize != 0) {
    return format("block %s has %llu threads, not a multiple of 32 (a fusedattn rule: every "
                  "warp is full)", text(c.block).c_str(), static_cast<unsigned long long>(threads));
  }
  if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535) {
    return format("grid %s exceeds the grid dimension limits (2^31 - 1, 65535, 65535)",
                  text(c.grid).c_str());
  }
  const uint64_t blocks = uint64_t{c.grid.x} * c.grid.y * c.grid.z;
  if (blocks * threads > tsan::kMaxFibers) {
    return format("%llu threads in all: more than the %llu that ThreadSanitizer can track in one "
                  "launch", static_cast<unsigned long long>(blocks * threads),
                  static_cast<unsigned long long>(tsan::kMaxFibers));
  }
  if (c.dynamic_shared_memory > device.shared_memory_per_block_optin) {
    return format("%zu bytes of dynamic shared memory exceed the device's opt-in maximum of %zu "
                  "per block", c.dynamic_shared_memory, device.shared_memory_per_block_optin);
  }
  const size_t allowed = std::max(device.shared_memory_per_block, kernel_max_dynamic_shared_memory);
  if (c.dynamic_shared_memory > allowed) {
    return format("%zu bytes of dynamic shared memory exceed %zu: above %zu bytes a kernel needs "
                  "cudaFuncAttributeMaxDynamicSharedMemorySize raised to at least the launched "
                  "size", c.dynamic_shared_memory, allowed, device.shared_memory_per_block);
  }
  return "";
}

// The order of a launch's blocks, by linear block index.
class BlockSequence {
 public:
  BlockSequence(uint64_t count, BlockOrder order, uint64_t seed) : count_(count), order_(order) {
    if (order == BlockOrder::kShuffle) {
      shuffled_.resize(count);
      std::iota(shuffled_.begin(), shuffled_.end(), uint64_t{0});
      std::shuffle(shuffled_.begin(), shuffled_.end(), std::mt19937_64(seed));
    }
  }
  uint64_t operator[](uint64_t i) const {
    switch (order_) {
      case BlockOrder::kForward: return i;
      case BlockOrder::kReverse: return count_ - 1 - i;
      case BlockOrder::kShuffle: return shuffled_[i];
    }
    return i;
  }

 private:
  uint64_t count_;
  BlockOrder order_;
  std::vector<uint64_t> shuffled_;
};

std::string Scheduler::run(const LaunchConfig& config, ThreadMain thread_main, const void* call,
                           const LaunchSettings& settings) {
  tsan::Bookkeeping bookkeeping;
  const std::string launch_site = text(config.where) + ": kernel launch: ";
  if (launch_ != nullptr) return launch_site + "launching from inside a kernel is not supported";
  const std::string invalid =
      check_launch(config, settings.device, settings.max_dynamic_shared_memory);
  if (!invalid.empty()) return launch_site + invalid;

  Launch launch{config, thread_main, call, "", 0, 0, {}};
  launch_ = &launch;
  host_.tsan_fiber = tsan::current_fiber();
  tsan::release(&launch.start_token);
  const uint64_t blocks = uint64_t{config.grid.x} * config.grid.y * config.grid.z;
  const BlockSequence sequence(blocks, settings.order, settings.shuffle_seed);
  for (uint64_t i = 0; i < blocks && launch.error.empty(); ++i) {
    run_block(sequence[i], settings.stack_size);
  }
  launch_ = nullptr;
  // Every thread's accesses, exited or abandoned, happen before the host continues. A fiber
  // abandoned mid-call is not reused: its shadow call stack is not empty.
  for (const Launch::TsanFiber& f : launch.tsan_fibers) {
    tsan::release_as(f.fiber, &launch.exit_token);
    if (f.exited) {
      tsan_fibers_.push_back(f.fiber);
    } else {
      tsan::destroy_fiber(f.fiber);
    }
  }
  tsan::acquire(&launch.exit_token);
  return launch.error;
}

void Scheduler::run_block(uint64_t linear_block, size_t stack_size) {
  const LaunchConfig& c = launch_->config;
  const unsigned threads = c.block.x * c.block.y * c.block.z;
  // Allocated per block, so that TSan's synchronization objects on its tokens die with it.
  auto block = std::make_unique<Block>();
  block->block_idx = {static_cast<unsigned>(linear_block % c.grid.x),
                      static_cast<unsigned>(linear_block / c.grid.x % c.grid.y),
                      static_cast<unsigned>(linear_block / c.grid.x / c.grid.y)};
  void* shared = nullptr;
  if (posix_memalign(&shared, 16, c.dynamic_shared_memory) != 0) die("out of memory");
  block->shared_memory = static_cast<unsigned char*>(shared);
  block->shared_memory_bytes = c.dynamic_shared_memory;
  std::memset(block->shared_memory, 0xFF, c.dynamic_shared_memory);  // NaN as float and half

  stacks_.prepare(threads, stack_size);
  block->fibers.resize(threads);
  block->warps.resize(threads / kWarpSize);
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = block->fibers[t];
    f.block = block.get();
    f.linear_index = t;
    f.thread_idx = {t % c.block.x, t / c.block.x % c.block.y, t / c.block.x / c.block.y};
    start_context(f.context, stacks_.stack(t), stacks_.size());
    block->warps[t / kWarpSize].lanes[t % kWarpSize] = &f;
    runnable_.push_back(&f);
  }

  switch_to(host_, next_context());
  // Back on the host: every thread has exited, or waits, or one failed.
  if (launch_->error.empty() && block->exited != threads) {
    launch_->error = deadlock_report(*block);
  }
  runnable_.clear();
  if (tsan::kEnabled) {
    for (const Fiber& f : block->fibers) {
      launch_->tsan_fibers.push_back({f.context.tsan_fiber, f.exited});
    }
  }
}

std::string Scheduler::deadlock_report(const Block& block) const {
  std::string report = format("deadlock in block %s: every thread that has not exited waits, "
                              "and none can proceed:", text(block.block_idx).c_str());
  std::vector<bool> reported(block.fibers.size(), false);
  for (const Fiber& f : block.fibers) {
    if (f.exited || reported[f.linear_index]) continue;
    std::vector<unsigned> same_wait;
    for (const Fiber& g : block.fibers) {
      if (!g.exited && std::strcmp(g.wait.operation, f.wait.operation) == 0 &&
          g.wait.mask == f.wait.mask && same_site(g.wait.where, f.wait.where)) {
        same_wait.push_back(g.linear_index);
        reported[g.linear_index] = true;
      }
    }
    report += format("\n  %s: threads %s wait in %s", text(f.wait.where).c_str(),
                     index_ranges(same_wait).c_str(), f.wait.operation);
    if (f.wait.mask != 0) report += format(" (mask 0x%08x)", f.wait.mask);
  }
  return report;
}

void Scheduler::start_context(Context& context, char* stack, size_t stack_size) {
  if (getcontext(&context.uc) != 0) die("getcontext failed");
  context.uc.uc_stack.ss_sp = stack;
  context.uc.uc_stack.ss_size = stack_size;
  context.uc.uc_link = nullptr;
  makecontext(&context.uc, &Scheduler::fiber_main, 0);
  // Left set, ASan's swapcontext interceptor would clear the whole stack's shadow at every
  // switch into the fiber; the stack is already clean (StackPool::recycle).
  context.uc.uc_stack.ss_size = 0;
  context.stack_bottom = stack;
  context.stack_size = stack_size;
  if (tsan_fibers_.empty()) {
    context.tsan_fiber = tsan::create_fiber();
  } else {
    context.tsan_fiber = tsan_fibers_.back();
    tsan_fibers_.pop_back();
  }
}

void Scheduler::fiber_main() {
  Scheduler& s = scheduler();
  // The first switch into any fiber comes from the host: ASan says which stack that was.
  const void* from_bottom = nullptr;
  size_t from_size = 0;
  asan::finish_switch(nullptr, &from_bottom, &from_size);
  if (asan::kEnabled && s.host_.stack_bottom == nullptr) {
    s.host_.stack_bottom = from_bottom;
    s.host_.stack_size = from_size;
  }
  tsan::acquire(&s.launch_->start_token);
  {
    tsan::UserAccess kernel_code;
    s.launch_->thread_main(s.launch_->call);
  }
  s.exit_thread();
}

Context& Scheduler::next_context() {
  if (runnable_.empty()) {
    current_ = nullptr;
    return host_;
  }
  current_ = runnable_.front();
  runnable_.pop_front();
  return current_->context;
}

void Scheduler::switch_to(Context& from, Context& to) {
  asan::start_switch(&from.asan_fake_stack, to.stack_bottom, to.stack_size);
  tsan::switch_to(to.tsan_fiber);
  swapcontext(&from.uc, &to.uc);
  asan::finish_switch(from.asan_fake_stack, nullptr, nullptr);
}

void Scheduler::leave(Context& from, Context& to) {
  asan::start_switch(nullptr, to.stack_bottom, to.stack_size);  // this fiber's frames die
  tsan::switch_to(to.tsan_fiber);
  swapcontext(&from.uc, &to.uc);
  die("an abandoned fiber was resumed");
}

void Scheduler::wait(const WaitState& state) {
  Fiber& self = current();
  self.wait = state;
  switch_to(self.context, next_context());
}

void Scheduler::fail(SourceLocation where, const Fiber& culprit, const char* fmt, ...) {
  if (launch_->error.empty()) {
    va_list args;
    va_start(args, fmt);
    launch_->error = text(where) + ": " + vformat(fmt, args) + " [block " +
                     text(culprit.block->block_idx) + ", thread " + text(culprit.thread_idx) +
                     "]";
    va_end(args);
  }
  Fiber& self = current();
  current_ = nullptr;
  leave(self.context, host_);
}

void Scheduler::exit_thread() {
  Fiber& self = current();
  Block& b = *self.block;
  if (!b.barrier_waiters.empty()) {
    fail(b.barrier_site, self,
         "__syncthreads reached by only part of the block: this thread exited while %zu threads "
         "wait here", b.barrier_waiters.size());
  }
  Warp& warp = b.warps[self.linear_index / kWarpSize];
  const unsigned lane = self.linear_index % kWarpSize;
  for (const Collective& c : warp.pending) {
    if (c.mask & (1u << lane)) {
      const int waiting = __builtin_ctz(c.arrived);
      fail(c.lanes[waiting].where, self,
           "%s with mask 0x%08x names lane %u, which exited while lanes 0x%08x wait", c.name,
           c.mask, lane, c.arrived);
    }
  }
  self.exited = true;
  if (b.exited++ == 0) b.first_exited = &self;
  warp.exited |= 1u << lane;
  leave(self.context, next_context());
}

void Scheduler::check_shared(const void* address, size_t bytes, const char* operation,
                             SourceLocation where, const Fiber& culprit) {
  const Block& b = *culprit.block;
  const auto* p = static_cast<const unsigned char*>(address);
  if (p < b.shared_memory || p + bytes > b.shared_memory + b.shared_memory_bytes) {
    fail(where, culprit,
         "%s: %zu bytes at %p are not inside the block's %zu bytes of shared memory at %p",
         operation, bytes, address, b.shared_memory_bytes,
         static_cast<const void*>(b.shared_memory));
  }
}

void Scheduler::collective(WarpOp op, uint32_t parameters, const char* name, unsigned mask,
                           const LaneOperands& operands) {
  Fiber& self = current();
  Warp& warp = self.block->warps[self.linear_index / kWarpSize];
  const unsigned lane = self.linear_index % kWarpSize, bit = 1u << lane;
  if (!(mask & bit)) {
    fail(operands.where, self, "%s with mask 0x%08x, which does not name the calling lane %u",
         name, mask, lane);
  }
  if (mask & warp.exited) {
    fail(operands.where, self, "%s with mask 0x%08x names exited lanes (0x%08x)", name, mask,
         mask & warp.exited);
  }
  auto it = std::find_if(warp.pending.begin(), warp.pending.end(),
                         [mask](const Collective& c) { return c.mask == mask; });
  if (it != warp.pending.end() && (it->op != op || it->parameters != parameters)) {
    const int other = __builtin_ctz(it->arrived);
    fail(operands.where, self,
         "mismatched warp operations under mask 0x%08x: lane %u calls %s here, lane %d called "
         "%s at %s:%d", mask, lane, name, other, it->name, it->lanes[other].where.file,
         it->lanes[other].where.line);
  }
  if (it == warp.pending.end()) {
    // Another collective waiting for this lane, while lanes this one needs wait in it: neither
    // can ever complete.
    for (const Collective& c : warp.pending) {
      if ((c.mask & bit) && (c.arrived & mask)) {
        const int other = __builtin_ctz(c.arrived & mask);
        fail(operands.where, self,
             "mismatched warp masks: lane %u calls %s with mask 0x%08x here, lane %d waits in %s "
             "with mask 0x%08x at %s:%d", lane, name, mask, other, c.name, c.mask,
             c.lanes[other].where.file, c.lanes[other].where.line);
      }
    }
    const void* token = tsan::kEnabled ? &warp.sync_tokens[mask] : nullptr;
    warp.pending.push_back(Collective{op, parameters, name, mask, 0, token, {}});
    it = warp.pending.end() - 1;
  }
  it->lanes[lane] = operands;
  it->arrived |= bit;
  tsan::release(it->sync_token);
  if (it->arrived != mask) {
    wait({name, operands.where, mask});
    return;
  }
  tsan::acquire(it->sync_token);
  complete(*it, warp);
  for (unsigned l = 0; l < kWarpSize; ++l) {
    if ((mask >> l & 1u) && l != lane) {
      tsan::acquire_as(warp.lanes[l]->context.tsan_fiber, it->sync_token);
      wake(*warp.lanes[l]);
    }
  }
  warp.pending.erase(it);
}

// ---------------------------------------------------------------------------------------------
// The warp collectives' effects, performed by the last lane to arrive.

struct MmaOperands {
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
};

float half_bits_to_float(uint16_t bits, MmaInput input) {
  if (input == MmaInput::kF16) {
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
  }
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __bfloat162float(__nv_bfloat16(raw));
}

// PTX ISA 9.0, section 9.7.14.5.8 (mma.m16n8k16 with floating point type) and 9.7.14.5.7
// (mma.m16n8k8), .f16/.bf16 inputs, .f32 accumulators. With groupID = lane >> 2 and
// threadID_in_group = lane % 4:
//   A (16 x k, row): register r holds a[2r], a[2r+1]; element a_i sits at
//       row = groupID + 8 * (r % 2), col = threadID_in_group * 2 + (i & 1) + 8 * (r / 2).
//   B (k x 8, col): register r holds b[2r], b[2r+1]; element b_i sits at
//       row = threadID_in_group * 2 + (i & 1) + 8 * r, col = groupID.
//   C, D (16 x 8): element c_i sits at row = groupID + 8 * (i / 2),
//       col = threadID_in_group * 2 + (i & 1).
// The lower 16 bits of a register hold the element with the lower index.
void complete_mma(Collective& c, int k, MmaInput input) {
  float a[16][16], b[16][8], acc[16][8];
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    const auto& ops = *static_cast<const MmaOperands*>(c.lanes[lane].in);
    const unsigned group = lane >> 2, in_group = lane % 4;
    for (int r = 0; r < k / 4; ++r) {
      for (int half = 0; half < 2; ++half) {
        a[group + 8 * (r % 2)][in_group * 2 + half + 8 * (r / 2)] =
            half_bits_to_float(static_cast<uint16_t>(ops.a[r] >> (16 * half)), input);
      }
    }
    for (int r = 0; r < k / 8; ++r) {
      for (int half = 0; half < 2; ++half) {
        b[in_group * 2 + half + 8 * r][group] =
            half_bits_to_float(static_cast<uint16_t>(ops.b[r] >> (16 * half)), input);
      }
    }
    for (int i = 0; i < 4; ++i) acc[group + 8 * (i / 2)][in_group * 2 + (i & 1)] = ops.c[i];
  }
  // Each product of two 16-bit floats is exact in float; the sums are rounded in k order (the
  // tensor cores' order and internal precision are unspecified: README).
  for (int row = 0; row < 16; ++row) {
    for (int col = 0; col < 8; ++col) {
      for (int kk = 0; kk < k; ++kk) acc[row][col] += a[row][kk] * b[kk][col];
    }
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    const unsigned group = lane >> 2, in_group = lane % 4;
    float* d = static_cast<float*>(c.lanes[lane].out);
    for (int i = 0; i < 4; ++i) d[i] = acc[group + 8 * (i / 2)][in_group * 2 + (i & 1)];
  }
}

void Scheduler::complete(Collective& c, Warp& warp) {
  switch (c.op) {
    case WarpOp::kSyncwarp: return;
    case WarpOp::kShuffle: {
      // PTX ISA 9.0, shfl.sync: CUDA passes c = ((32 - width) << 8) | clamp, clamp 0 for .up and
      // 31 otherwise, so lanes shuffle within segments of `width`; a source lane past the
      // segment's bound gives the lane its own value.
      const auto mode = static_cast<Shuffle>(c.parameters & 0xff);
      const unsigned width = c.parameters >> 8 & 0xff, bytes = c.parameters >> 16;
      const int segment_mask = static_cast<int>((kWarpSize - width) & 31);
      for (int lane = 0; lane < kWarpSize; ++lane) {
        if (!(c.mask >> lane & 1u)) continue;
        const int b = static_cast<int>(c.lanes[lane].operand & 31);
        const int min_lane = lane & segment_mask;
        const int max_lane = min_lane | (31 & ~segment_mask);
        int source = lane;
        switch (mode) {
          case Shuffle::kUp:
            source = lane - b >= min_lane ? lane - b : lane;
            break;
          case Shuffle::kDown:
            source = lane + b <= max_lane ? lane + b : lane;
            break;
          case Shuffle::kXor:
            source = (lane ^ b) <= max_lane ? lane ^ b : lane;
            break;
          case Shuffle::kIndex:
            source = min_lane | (b & ~segment_mask);
            break;
        }
        if (!(c.mask >> source & 1u)) {
          fail(c.lanes[lane].where, *warp.lanes[lane],
               "%s: lane %d reads lane %d, which is not in the mask 0x%08x", c.name, lane, source,
               c.mask);
        }
        std::memcpy(c.lanes[lane].out, c.lanes[source].in, bytes);
      }
      return;
    }
    case WarpOp::kBallot:
    case WarpOp::kAny:
    case WarpOp::kAll: {
      unsigned votes = 0;
      for (unsigned lane = 0; lane < kWarpSize; ++lane) {
        if ((c.mask >> lane & 1u) && *static_cast<const int*>(c.lanes[lane].in) != 0) {
          votes |= 1u << lane;
        }
      }
      const unsigned result = c.op == WarpOp::kBallot ? votes
                              : c.op == WarpOp::kAny  ? votes != 0
                                                      : votes == c.mask;
      for (unsigned lane = 0; lane < kWarpSize; ++lane) {
        if (c.mask >> lane & 1u) *static_cast<unsigned*>(c.lanes[lane].out) = result;
      }
      return;
    }
    case WarpOp::kLdmatrix: {
      // PTX ISA 9.0, section 9.7.14.5.15 (ldmatrix), .m8n8 .b16: lanes 8m..8m+7 address rows
      // 0..7 of matrix m (16 bytes each); register m of lane l receives row l / 4, columns
      // 2 (l % 4) and 2 (l % 4) + 1 of matrix m, or with .trans rows 2 (l % 4) and 2 (l % 4) + 1
      // of column l / 4.
      const int matrices = static_cast<int>(c.parameters & 0xff);
      const bool transpose = c.parameters >> 8;
      uint16_t rows[4][8][8];
      for (int m = 0; m < matrices; ++m) {
        for (int r = 0; r < 8; ++r) {
          const LaneOperands& row = c.lanes[8 * m + r];
          const Fiber& culprit = *warp.lanes[8 * m + r];
          if (!aligned(row.in, 16)) {
            fail(row.where, culprit, "%s: lane %d's row address %p is not 16-byte aligned",
                 c.name, 8 * m + r, row.in);
          }
          check_shared(row.in, 16, c.name, row.where, culprit);
          tsan::UserAccess shared_memory_read;
          std::memcpy(rows[m][r], row.in, 16);
        }
      }
      for (unsigned lane = 0; lane < kWarpSize; ++lane) {
        const unsigned group = lane >> 2, pair = 2 * (lane % 4);
        auto* fragments = static_cast<uint32_t*>(c.lanes[lane].out);
        for (int m = 0; m < matrices; ++m) {
          const uint16_t lo = transpose ? rows[m][pair][group] : rows[m][group][pair];
          const uint16_t hi = transpose ? rows[m][pair + 1][group] : rows[m][group][pair + 1];
          fragments[m] = uint32_t{lo} | uint32_t{hi} << 16;
        }
      }
      return;
    }
    case WarpOp::kMma:
      complete_mma(c, static_cast<int>(c.parameters & 0xff),
                   static_cast<MmaInput>(c.parameters >> 8));
      return;
  }
}

const char* shuffle_name(Shuffle mode) {
  switch (mode) {
    case Shuffle::kIndex: return "__shfl_sync";
    case Shuffle::kUp: return "__shfl_up_sync";
    case Shuffle::kDown: return "__shfl_down_sync";
    case Shuffle::kXor: return "__shfl_xor_sync";
  }
  return "";
}

unsigned vote(WarpOp op, const char* name, unsigned mask, int predicate, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  unsigned result = 0;
  scheduler().collective(op, 0, name, mask, {&predicate, &result, 0, where});
  return result;
}

// ---------------------------------------------------------------------------------------------
// mbarrier phases.

Mbarrier& find_mbarrier(uint64_t* barrier, const char* operation, SourceLocation where) {
  Scheduler& s = scheduler();
  Block& b = *s.current().block;
  const auto it = b.mbarriers.find(barrier);
  if (it == b.mbarriers.end()) {
    s.fail(where, s.current(), "%s on %p, which is not an initialized mbarrier (mbarrier.init)",
           operation, static_cast<const void*>(barrier));
  }
  {
    // What TSan and ASan see of the barrier object: a read here, a write at its init.
    tsan::UserAccess access;
    (void)*static_cast<volatile uint64_t*>(barrier);
  }
  return it->second;
}

// TSan's token for the phase of the given number: arrivals release to it, waiters acquire it.
// Two alternate, so that a waiter one phase behind does not pick up the next phase's arrivals.
const void* phase_token(const uint64_t* barrier, uint64_t phase) {
  return reinterpret_cast<const char*>(barrier) + (phase & 1);
}

// Completes the current phase once its arrivals are in and the bulk copies issued on it carry
// exactly the bytes they announced: the copies land, then the waiters are released.
void complete_phase_if_due(Mbarrier& m, const uint64_t* barrier, SourceLocation where) {
  if (m.pending > 0 || m.tx_count > m.bytes_in_flight) return;
  Scheduler& s = scheduler();
  if (m.tx_count < m.bytes_in_flight) {
    s.fail(where, s.current(),
           "bulk copies deliver %lld bytes to the mbarrier at %p, whose arrivals expect %lld "
           "(expect_tx)", static_cast<long long>(m.bytes_in_flight),
           static_cast<const void*>(barrier), static_cast<long long>(m.tx_count));
  }
  for (const BulkCopy& copy : m.copies) {
    asan::unpoison(copy.dst, copy.data.size());
    tsan::UserAccess access;
    std::memcpy(copy.dst, copy.data.data(), copy.data.size());
  }
  const void* token = phase_token(barrier, m.phase);
  tsan::release(token);  // the copies' writes
  for (Fiber* waiter : m.waiters) {
    tsan::acquire_as(waiter->context.tsan_fiber, token);
    s.wake(*waiter);
  }
  m.waiters.clear();
  m.copies.clear();
  m.bytes_in_flight = 0;
  m.tx_count = 0;
  m.pending = m.expected;
  ++m.phase;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API.

DeviceAttributes device_attributes() {
  std::lock_guard<std::mutex> lock(settings_mutex);
  return settings().device;
}

void set_device_attributes(const DeviceAttributes& attributes) {
  std::lock_guard<std::mutex> lock(settings_mutex);
  settings().device = attributes;
}

void set_block_order(BlockOrder order, uint64_t shuffle_seed) {
  std::lock_guard<std::mutex> lock(settings_mutex);
  settings().order = order;
  settings().shuffle_seed = shuffle_seed;
}

void set_fiber_stack_size(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::lock_guard<std::mutex> lock(settings_mutex);
  settings().stack_size = (std::max(bytes, page) + page - 1) / page * page;
}

std::string set_max_dynamic_shared_memory(const void* kernel, size_t bytes) {
  std::lock_guard<std::mutex> lock(settings_mutex);
  Settings& s = settings();
  if (bytes > s.device.shared_memory_per_block_optin) {
    return format("invalid argument: cudaFuncAttributeMaxDynamicSharedMemorySize %zu exceeds the "
                  "device's opt-in maximum of %zu", bytes, s.device.shared_memory_per_block_optin);
  }
  s.max_dynamic_shared_memory[kernel] = bytes;
  return "";
}

std::string run_kernel(const void* kernel, const LaunchConfig& config, ThreadMain thread_main,
                       const void* call) {
  LaunchSettings launch_settings;
  {
    std::lock_guard<std::mutex> lock(settings_mutex);
    const Settings& s = settings();
    const auto attribute = s.max_dynamic_shared_memory.find(kernel);
    launch_settings = {s.device, s.order, s.shuffle_seed, s.stack_size,
                       attribute == s.max_dynamic_shared_memory.end() ? 0 : attribute->second};
  }
  return scheduler().run(config, thread_main, call, launch_settings);
}

const uint3& thread_index() { return scheduler().current().thread_idx; }
const uint3& block_index() { return scheduler().current().block->block_idx; }
const dim3& block_dim() { return scheduler().launch().config.block; }
const dim3& grid_dim() { return scheduler().launch().config.grid; }
void* dynamic_shared_memory() { return scheduler().current().block->shared_memory; }

void syncthreads(SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Scheduler& s = scheduler();
  Fiber& self = s.current();
  Block& b = *self.block;
  if (b.exited > 0) {
    const uint3& first = b.first_exited->thread_idx;
    s.fail(where, self,
           "__syncthreads reached by only part of the block: %u threads exited (thread "
           "(%u,%u,%u) first)", b.exited, first.x, first.y, first.z);
  }
  if (!b.barrier_waiters.empty() && !same_site(b.barrier_site, where)) {
    s.fail(where, self,
           "divergent __syncthreads: this thread waits here while %zu threads wait at the "
           "__syncthreads at %s:%d", b.barrier_waiters.size(), b.barrier_site.file,
           b.barrier_site.line);
  }
  tsan::release(&b.barrier_token);
  if (b.barrier_waiters.size() + 1 < b.fibers.size()) {
    if (b.barrier_waiters.empty()) b.barrier_site = where;
    b.barrier_waiters.push_back(&self);
    s.wait({"__syncthreads", where, 0});
    return;
  }
  tsan::acquire(&b.barrier_token);
  for (Fiber* waiter : b.barrier_waiters) {
    tsan::acquire_as(waiter->context.tsan_fiber, &b.barrier_token);
    s.wake(*waiter);
  }
  b.barrier_waiters.clear();
}

void syncwarp(unsigned mask, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  scheduler().collective(WarpOp::kSyncwarp, 0, "__syncwarp", mask,
                         {nullptr, nullptr, 0, where});
}

uint64_t detail::shuffle(Shuffle mode, unsigned mask, uint64_t bits, int bytes,
                         unsigned lane_operand, int width, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Scheduler& s = scheduler();
  if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
    s.fail(where, s.current(), "%s: width %d is not a power of two in [1, 32]",
           shuffle_name(mode), width);
  }
  uint64_t result = 0;
  const uint32_t parameters = static_cast<uint32_t>(mode) | static_cast<uint32_t>(width) << 8 |
                              static_cast<uint32_t>(bytes) << 16;
  s.collective(WarpOp::kShuffle, parameters, shuffle_name(mode), mask,
               {&bits, &result, lane_operand, where});
  return result;
}

unsigned ballot_sync(unsigned mask, int predicate, SourceLocation where) {
  return vote(WarpOp::kBallot, "__ballot_sync", mask, predicate, where);
}
int any_sync(unsigned mask, int predicate, SourceLocation where) {
  return static_cast<int>(vote(WarpOp::kAny, "__any_sync", mask, predicate, where));
}
int all_sync(unsigned mask, int predicate, SourceLocation where) {
  return static_cast<int>(vote(WarpOp::kAll, "__all_sync", mask, predicate, where));
}

void check_alignment(const void* address, size_t alignment, const char* operation,
                     SourceLocation where) {
  if (aligned(address, alignment)) return;
  tsan::Bookkeeping bookkeeping;
  scheduler().check_aligned(address, alignment, operation, where);
}

void mma_sync(int k, MmaInput input, float* d, const uint32_t* a, const uint32_t* b,
              const float* c, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  static constexpr const char* kNames[2][2] = {
      {"mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32",
       "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32"},
      {"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
       "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"}};
  const MmaOperands operands{a, b, c};
  const int input_index = static_cast<int>(input);
  scheduler().collective(WarpOp::kMma, static_cast<uint32_t>(k | input_index << 8),
                         kNames[k == 16][input_index], kFullMask, {&operands, d, 0, where});
}

void ldmatrix_sync(int matrices, bool transpose, uint32_t* fragments, const void* row,
                   SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  static constexpr const char* kNames[2][3] = {
      {"ldmatrix.sync.aligned.m8n8.x1.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.shared.b16"},
      {"ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"}};
  scheduler().collective(WarpOp::kLdmatrix,
                         static_cast<uint32_t>(matrices | (transpose ? 1 : 0) << 8),
                         kNames[transpose][matrices == 4 ? 2 : matrices - 1], kFullMask,
                         {row, fragments, 0, where});
}

void cp_async(void* dst, const void* src, int copy_bytes, int src_bytes, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Scheduler& s = scheduler();
  Fiber& self = s.current();
  if (src_bytes < 0 || src_bytes > copy_bytes) {
    s.fail(where, self, "cp.async: src-size %d is not in [0, %d]", src_bytes, copy_bytes);
  }
  s.check_aligned(dst, static_cast<size_t>(copy_bytes), "cp.async destination", where);
  s.check_aligned(src, static_cast<size_t>(copy_bytes), "cp.async source", where);
  s.check_shared(dst, static_cast<size_t>(copy_bytes), "cp.async destination", where, self);
  PendingCopy copy{dst, copy_bytes, self.committed_groups, {}};
  {
    tsan::UserAccess access;
    std::memcpy(copy.data, src, static_cast<size_t>(src_bytes));
    std::memset(dst, 0xFF, static_cast<size_t>(copy_bytes));
  }
  asan::poison(dst, static_cast<size_t>(copy_bytes));
  self.copies.push_back(copy);
}

void cp_async_commit_group() {
  tsan::Bookkeeping bookkeeping;
  ++scheduler().current().committed_groups;
}

void cp_async_wait_group(int pending_groups) {
  tsan::Bookkeeping bookkeeping;
  Fiber& self = scheduler().current();
  // Groups are numbered in commit order; copies not yet committed carry the next number.
  const auto retired = [&](const PendingCopy& copy) {
    return copy.group + static_cast<unsigned>(pending_groups) < self.committed_groups;
  };
  for (const PendingCopy& copy : self.copies) {
    if (!retired(copy)) continue;
    asan::unpoison(copy.dst, static_cast<size_t>(copy.bytes));
    tsan::UserAccess access;
    std::memcpy(copy.dst, copy.data, static_cast<size_t>(copy.bytes));
  }
  self.copies.erase(std::remove_if(self.copies.begin(), self.copies.end(), retired),
                    self.copies.end());
}

void mbarrier_init(uint64_t* barrier, unsigned count, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Scheduler& s = scheduler();
  s.check_aligned(barrier, 8, "mbarrier.init", where);
  s.check_shared(barrier, 8, "mbarrier.init", where, s.current());
  if (count == 0 || count >= (1u << 20)) {
    s.fail(where, s.current(), "mbarrier.init: count %u is not in [1, 2^20 - 1]", count);
  }
  Mbarrier& m = s.current().block->mbarriers[barrier];
  if (!m.waiters.empty() || !m.copies.empty()) {
    s.fail(where, s.current(), "mbarrier.init on an mbarrier with waiters or copies in flight");
  }
  m = Mbarrier{};
  m.expected = m.pending = count;
  tsan::UserAccess access;
  *barrier = count;
}

void mbarrier_arrive(uint64_t* barrier, unsigned expect_tx_bytes, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Mbarrier& m = find_mbarrier(barrier, "mbarrier.arrive", where);
  if (m.pending == 0) {
    Scheduler& s = scheduler();
    s.fail(where, s.current(),
           "mbarrier.arrive on %p: the phase already has its %u arrivals (it waits for bulk "
           "copies)", static_cast<const void*>(barrier), m.expected);
  }
  m.tx_count += expect_tx_bytes;
  --m.pending;
  tsan::release(phase_token(barrier, m.phase));
  complete_phase_if_due(m, barrier, where);
}

void mbarrier_wait_parity(uint64_t* barrier, unsigned parity, SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Mbarrier& m = find_mbarrier(barrier, "mbarrier.try_wait.parity", where);
  // The phase with this parity is complete once the current phase's parity differs.
  if ((m.phase & 1u) == (parity & 1u)) {
    Scheduler& s = scheduler();
    m.waiters.push_back(&s.current());
    s.wait({"mbarrier.try_wait.parity", where, 0});
    return;
  }
  tsan::acquire(phase_token(barrier, parity));
}

void bulk_copy_global_to_shared(void* dst, const void* src, unsigned bytes, uint64_t* barrier,
                                SourceLocation where) {
  tsan::Bookkeeping bookkeeping;
  Scheduler& s = scheduler();
  const char* name = "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes";
  if (bytes == 0 || bytes % 16 != 0) {
    s.fail(where, s.current(), "%s: size %u is not a positive multiple of 16", name, bytes);
  }
  s.check_aligned(dst, 16, name, where);
  s.check_aligned(src, 16, name, where);
  s.check_shared(dst, bytes, name, where, s.current());
  Mbarrier& m = find_mbarrier(barrier, name, where);
  BulkCopy copy{dst, std::vector<unsigned char>(bytes)};
  {
    tsan::UserAccess access;
    std::memcpy(copy.data.data(), src, bytes);
    std::memset(dst, 0xFF, bytes);
  }
  asan::poison(dst, bytes);
  m.bytes_in_flight += bytes;
  m.copies.push_back(std::move(copy));
  complete_phase_if_due(m, barrier, where);
}

}  // namespace emulation
}  // namespace fusedattn
