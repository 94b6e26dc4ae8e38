// Instruction-set selection: chosen once from CPUID at first use, overridable for tests on the
// calling thread only.
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "../kernels.h"
#include "internal.h"

namespace valuealign::kernels {
namespace {

bool cpu_has(int level) {
  if (level == 0) return true;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (level == 1)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (level == 2)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return false;
}

int detect() {
  for (int level = 2; level > 0; --level)
    if (cpu_has(level)) return level;
  return 0;
}

// The override is per thread: a primitive looks up its table in eval_cpu, on the thread that
// evaluates the graph, and hands it to its dispatched task and the pool. A process-wide override
// changed the kernels (and so the rounding) of every other thread's models while a test forced an
// ISA, so that concurrent tests saw one input give two results.
thread_local int t_forced = -1;

}  // namespace

int isa() {
  if (t_forced >= 0) return t_forced;
  static const int detected = detect();
  return detected;
}

void set_isa(int level) {
  if (level < -1 || level > 2) throw std::invalid_argument("[kernels::set_isa] unknown ISA " + std::to_string(level));
  if (level >= 0 && !cpu_has(level))
    throw std::invalid_argument("[kernels::set_isa] this CPU does not support ISA " + std::to_string(level));
  t_forced = level;
}

namespace detail {
float* qmm_weight_buffer(size_t n) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffer;
  thread_local size_t capacity = 0;
  if (n > capacity) {
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buffer) throw std::bad_alloc();
    capacity = bytes / sizeof(float);
  }
  return buffer.get();
}

const Table& table() {
#if defined(__x86_64__) || defined(_M_X64)
  switch (isa()) {
    case 2: return avx512_table;
    case 1: return avx2_table;
    default: return portable_table;
  }
#else
  return portable_table;
#endif
}
}  // namespace detail

}  // namespace valuealign::kernels
