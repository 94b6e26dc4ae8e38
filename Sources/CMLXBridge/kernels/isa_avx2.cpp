// AVX2+FMA(+F16C) instantiation of the generic kernels (simd_kernels_impl.h). Every function in
// this file is compiled for avx2+fma+f16c through a target attribute; it is only called after a CPUID check
// (isa.cpp).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace valuealign::kernels::detail::avx2 {

static constexpr const char* kIsaName = "avx2";

struct V {
  using R = __m256;
  static constexpr int W = 8;
  static constexpr int MR = 6;  // GEMM micro-tile: 6 rows x 2 vectors (12 of 16 registers)
  static constexpr int NV = 2;
  static constexpr int QMB = 2;  // quantised matmul tile: 2 rows x 4 columns (8 accumulators)
  static constexpr int QNT = 4;
  static constexpr int QNTM = 4;  // weight rows per tile when dequantised once for many rows (qmm_cols_many)
  static inline __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline R zero() { return _mm256_setzero_ps(); }
  static inline R set1(float x) { return _mm256_set1_ps(x); }
  static inline R load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, R x) { _mm256_storeu_ps(p, x); }
  static inline R loadn(const float* p, int n, float fill) {
    __m256i m = lanes(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static inline void storen(float* p, R x, int n) { _mm256_maskstore_ps(p, lanes(n), x); }
  static inline R add(R a, R b) { return _mm256_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm256_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm256_max_ps(a, b); }
  static inline R min(R a, R b) { return _mm256_min_ps(a, b); }
  static inline float hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline void deq4(const uint8_t* p, R s, R b, R& lo, R& hi) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15))), s, b);
    hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), s, b);
  }
  static inline R deq8(const uint8_t* p, R s, R b) {
    return _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))), s, b);
  }
  static inline R load_half(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // Lane i = the sum of v[i]'s lanes.
  static inline R hsum_lanes(const R* v) {
    alignas(32) float t[8];
    for (int i = 0; i < 8; ++i) t[i] = hsum(v[i]);
    return _mm256_load_ps(t);
  }
  static inline float hmax(R a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Same polynomial as the AVX-512 path; 2^n applied as two factors 2^(n>>1) * 2^(n - (n>>1)),
  // each a normal float, so overflow to +inf and gradual underflow to 0 come out right.
  static inline R exp(R x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
    R n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    R p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    R r2 = _mm256_mul_ps(r, r);
    R y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    R f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    R f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    R res = _mm256_mul_ps(_mm256_mul_ps(y, f1), f2);
    // NaN input: n converts to INT_MIN; keep the NaN.
    return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
};

#include "simd_kernels_impl.h"

}  // namespace valuealign::kernels::detail::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace valuealign::kernels::detail {
const Table avx2_table = avx2::kTable;
}

#endif  // x86-64 (other targets never reference this table: see isa.cpp)
