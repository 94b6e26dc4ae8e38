// Helpers shared by the kernel primitives (internal).
#pragma once
#include <stdexcept>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace valuealign::kernels::detail {

namespace mx = mlx::core;

// The stream our primitives run on, or nullopt when the default device is not the CPU (then the
// callers fall back to MLX ops).
inline std::optional<mx::Stream> cpu_stream() {
  const mx::Device& d = mx::default_device();
  if (d.type != mx::Device::cpu) return std::nullopt;
  return mx::default_stream(d);
}

inline void alloc_output(mx::array& out) { out.set_data(mx::allocator::malloc(out.nbytes())); }

inline void require_row_contiguous(const mx::array& a, const char* who) {
  if (!a.flags().row_contiguous) throw std::logic_error(std::string(who) + ": input is not row-contiguous");
}

[[noreturn]] inline void no_gpu(const char* who) {
  throw std::runtime_error(std::string(who) + " has no GPU implementation");
}

}  // namespace valuealign::kernels::detail
