// Portable C++ instantiation of the generic kernels (simd_kernels_impl.h): one float per "vector",
// std::exp. Used on CPUs without AVX2+FMA and on non-x86 targets.
#include <cmath>
#include <cstdint>
#include <limits>

#include "internal.h"

namespace valuealign::kernels::detail::portable {

static constexpr const char* kIsaName = "portable";

struct V {
  using R = float;
  static constexpr int W = 1;
  static constexpr int MR = 4;  // GEMM micro-tile: 4 rows x 4 columns
  static constexpr int NV = 4;
  static inline R zero() { return 0.0f; }
  static inline R set1(float x) { return x; }
  static inline R load(const float* p) { return *p; }
  static inline void store(float* p, R x) { *p = x; }
  static inline R loadn(const float* p, int n, float fill) { return n > 0 ? *p : fill; }
  static inline void storen(float* p, R x, int n) {
    if (n > 0) *p = x;
  }
  static inline R add(R a, R b) { return a + b; }
  static inline R sub(R a, R b) { return a - b; }
  static inline R mul(R a, R b) { return a * b; }
  static inline R div(R a, R b) { return a / b; }
  static inline R fma(R a, R b, R c) { return a * b + c; }
  static inline R max(R a, R b) { return a > b ? a : b; }
  static inline R min(R a, R b) { return a < b ? a : b; }
  static inline float hsum(R a) { return a; }
  static inline float hmax(R a) { return a; }
  static inline R exp(R x) { return std::exp(x); }
};

#include "simd_kernels_impl.h"

}  // namespace valuealign::kernels::detail::portable

namespace valuealign::kernels::detail {
const Table portable_table = portable::kTable;
}
