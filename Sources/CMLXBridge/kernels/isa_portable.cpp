// Portable instantiation of the generic kernels (simd_kernels_impl.h). With GCC/clang it uses
// 4-lane generic vector extensions (SSE2 on any x86-64, NEON on arm64, no target attributes needed)
// and the same exp polynomial as the AVX paths; other compilers get one float per "vector" and
// std::exp. Used on CPUs without AVX2+FMA and on non-x86 targets.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "internal.h"

namespace valuealign::kernels::detail::portable {

static constexpr const char* kIsaName = "portable";

#if defined(__GNUC__) || defined(__clang__)

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

struct V {
  using R = v4f;
  static constexpr int W = 4;
  static constexpr int MR = 4;  // GEMM micro-tile: 4 rows x 2 vectors (8 of 16 SSE registers)
  static constexpr int NV = 2;
  static constexpr int QMB = 2;  // quantised matmul tile: 2 rows x 4 columns
  static constexpr int QNT = 4;
  static constexpr int QNTM = 4;  // weight rows per tile when dequantised once for many rows (qmm_cols_many)
  static inline R zero() { return R{0.0f, 0.0f, 0.0f, 0.0f}; }
  static inline v4i bytes(const uint8_t* p) { return v4i{p[0], p[1], p[2], p[3]}; }
  static inline void deq4(const uint8_t* p, R s, R b, R& lo, R& hi) {
    v4i v = bytes(p);
    lo = __builtin_convertvector(v & 15, v4f) * s + b;
    hi = __builtin_convertvector(v >> 4, v4f) * s + b;
  }
  static inline R deq8(const uint8_t* p, R s, R b) { return __builtin_convertvector(bytes(p), v4f) * s + b; }
  static inline R load_half(const uint16_t* p) {
    return R{half_to_float(p[0]), half_to_float(p[1]), half_to_float(p[2]), half_to_float(p[3])};
  }
  static inline R set1(float x) { return R{x, x, x, x}; }
  static inline R load(const float* p) {
    R r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  static inline void store(float* p, R x) { std::memcpy(p, &x, sizeof x); }
  static inline R loadn(const float* p, int n, float fill) {
    R r = set1(fill);
    std::memcpy(&r, p, sizeof(float) * size_t(n));
    return r;
  }
  static inline void storen(float* p, R x, int n) { std::memcpy(p, &x, sizeof(float) * size_t(n)); }
  static inline R add(R a, R b) { return a + b; }
  static inline R sub(R a, R b) { return a - b; }
  static inline R mul(R a, R b) { return a * b; }
  static inline R div(R a, R b) { return a / b; }
  static inline R fma(R a, R b, R c) { return a * b + c; }
  static inline R select(v4i m, R a, R b) { return (R)((m & (v4i)a) | (~m & (v4i)b)); }
  // Like the x86 instructions: the second operand when either is NaN.
  static inline R max(R a, R b) { return select(a > b, a, b); }
  static inline R min(R a, R b) { return select(a < b, a, b); }
  static inline float hsum(R a) { return (a[0] + a[1]) + (a[2] + a[3]); }
  static inline R hsum_lanes(const R* v) { return R{hsum(v[0]), hsum(v[1]), hsum(v[2]), hsum(v[3])}; }
  static inline float hmax(R a) {
    float m0 = a[0] > a[1] ? a[0] : a[1], m1 = a[2] > a[3] ? a[2] : a[3];
    return m0 > m1 ? m0 : m1;
  }
  // Same Cephes polynomial as the AVX paths; round-to-nearest by the 1.5*2^23 trick (exact for
  // |t| < 2^22); 2^n as two normal-float factors.
  static inline R exp(R x) {
    x = max(set1(-104.0f), x);
    x = min(set1(89.0f), x);
    const R magic = set1(12582912.0f);
    R n = (x * set1(1.44269504088896341f) + magic) - magic;
    R r = x - n * set1(0.693359375f);
    r = r - n * set1(-2.12194440e-4f);
    R p = set1(1.9875691500e-4f);
    p = p * r + set1(1.3981999507e-3f);
    p = p * r + set1(8.3334519073e-3f);
    p = p * r + set1(4.1665795894e-2f);
    p = p * r + set1(1.6666665459e-1f);
    p = p * r + set1(5.0000001201e-1f);
    R y = (p * (r * r) + r) + set1(1.0f);
    v4i ni = __builtin_convertvector(n, v4i);
    v4i n1 = ni >> 1, n2 = ni - n1;
    R f1 = (R)((n1 + 127) << 23), f2 = (R)((n2 + 127) << 23);
    return select(x != x, x, (y * f1) * f2);
  }
};

#else

struct V {
  using R = float;
  static constexpr int W = 1;
  static constexpr int MR = 4;  // GEMM micro-tile: 4 rows x 4 columns
  static constexpr int NV = 4;
  static constexpr int QMB = 2;
  static constexpr int QNT = 4;
  static constexpr int QNTM = 4;  // weight rows per tile when dequantised once for many rows (qmm_cols_many)
  static inline R zero() { return 0.0f; }
  static inline void deq4(const uint8_t* p, R s, R b, R& lo, R& hi) {
    lo = float(p[0] & 15) * s + b;
    hi = float(p[0] >> 4) * s + b;
  }
  static inline R deq8(const uint8_t* p, R s, R b) { return float(p[0]) * s + b; }
  static inline R load_half(const uint16_t* p) { return half_to_float(p[0]); }
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
  static inline R hsum_lanes(const R* v) { return v[0]; }
  static inline float hmax(R a) { return a; }
  static inline R exp(R x) { return std::exp(x); }
};

#endif

#include "simd_kernels_impl.h"

}  // namespace valuealign::kernels::detail::portable

namespace valuealign::kernels::detail {
const Table portable_table = portable::kTable;
}
