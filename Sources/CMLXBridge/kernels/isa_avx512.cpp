// AVX-512F instantiation of the generic kernels (simd_kernels_impl.h). Every function in this file
// is compiled for avx512f+avx512dq through a target attribute; it is only called after a CPUID
// check (isa.cpp).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq")
#endif

namespace valuealign::kernels::detail::avx512 {

static constexpr const char* kIsaName = "avx512";

struct V {
  using R = __m512;
  static constexpr int W = 16;
  static constexpr int MR = 6;  // GEMM micro-tile: 6 rows x 2 vectors (12 accumulators)
  static constexpr int NV = 2;
  static constexpr int QMB = 4;  // quantised matmul tile: 4 rows x 4 columns (16 accumulators)
  static constexpr int QNT = 4;
  static constexpr int QNTM = 8;  // weight rows per tile when dequantised once for many rows (qmm_cols_many)
  static inline __mmask16 lanes(int n) { return (__mmask16)((1u << n) - 1u); }
  static inline R zero() { return _mm512_setzero_ps(); }
  static inline R set1(float x) { return _mm512_set1_ps(x); }
  static inline R load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, R x) { _mm512_storeu_ps(p, x); }
  static inline R loadn(const float* p, int n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), lanes(n), p);
  }
  static inline void storen(float* p, R x, int n) { _mm512_mask_storeu_ps(p, lanes(n), x); }
  static inline R add(R a, R b) { return _mm512_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm512_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm512_max_ps(a, b); }
  static inline R min(R a, R b) { return _mm512_min_ps(a, b); }
  static inline float hsum(R a) { return _mm512_reduce_add_ps(a); }
  // 4-bit codes to s * code + b through a 16-entry table in a register (vpermps reads only the low
  // 4 bits of each index, so the low nibbles need no mask).
  static inline void deq4(const uint8_t* p, R s, R b, R& lo, R& hi) {
    const R lut = _mm512_fmadd_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), s, b);
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    lo = _mm512_permutexvar_ps(v, lut);
    hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
  }
  static inline R deq8(const uint8_t* p, R s, R b) {
    return _mm512_fmadd_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))), s, b);
  }
  static inline R load_half(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static inline float hmax(R a) { return _mm512_reduce_max_ps(a); }
  // Lane i = the sum of v[i]'s lanes, for 16 vectors at once (45 shuffles and adds, not 16
  // separate reductions): pairs within 128-bit lanes, then quads, then across the 128-bit lanes.
  static inline R hsum_lanes(const R* v) {
    R t[8], u[4];
    for (int i = 0; i < 8; ++i)
      t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; ++i)
      u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    const R w0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const R w1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  // Cephes-style expf: x = n ln2 + r, |r| <= ln2/2, degree-7 polynomial, 2^n by scalef (which
  // also gives the right overflow to +inf and underflow to 0). ~1-2 ulp.
  static inline R exp(R x) {
    // max/min return the second operand when either is NaN, so NaN propagates.
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    R n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    R p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    R r2 = _mm512_mul_ps(r, r);
    R y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
  }
};

#include "simd_kernels_impl.h"

}  // namespace valuealign::kernels::detail::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace valuealign::kernels::detail {
const Table avx512_table = avx512::kTable;
}

#endif  // x86-64 (other targets never reference this table: see isa.cpp)
