// Internal interfaces shared by the kernel files: the per-ISA table of row kernels and the
// thread pool. Not part of the bridge's public API.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>

namespace valuealign::kernels::detail {

// Arguments of the quantised matmul kernel: MLX's affine layout. Row n of W holds K codes of
// `bits` bits packed little-endian into bytes (code k of a row in bits [(k*bits)%8, ...) of byte
// k*bits/8, i.e. MLX's uint32 words read as bytes); scales and biases are [N, K/group] (float16
// when `half`, else float32); w(n, k) = scale(n, k/group) * code(n, k) + bias(n, k/group).
// group is 32, 64 or 128 and divides K; bits is 4 or 8.
struct QmmArgs {
  const float* xp;  // [M, K] row-major, reordered by qmm_pack_x
  int64_t M, N, K;
  const uint8_t* w;  // [N, K*bits/8]
  const void* scales;
  const void* biases;
  bool half;
  int group, bits;
  float* y;  // [M, N] row-major
};

// IEEE half to float, any value (subnormals, infinities, NaN).
inline float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
  if (e == 0) {
    float f = float(m) * 5.9604644775390625e-8f;  // m * 2^-24
    return sign ? -f : f;
  }
  bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Row / block kernels, one table per instruction set. All pointers are to row-contiguous float32.
struct Table {
  const char* name;
  // y = exp(x)
  void (*exp)(const float* x, float* y, int64_t n);
  // y = silu(g) * u
  void (*silu_gate_fwd)(const float* g, const float* u, float* y, int64_t n);
  // dg = c * u * s * (1 + g * (1 - s)), du = c * g * s, with s = sigmoid(g)
  void (*silu_gate_bwd)(const float* g, const float* u, const float* c, float* dg, float* du, int64_t n);
  // softmax of nrows rows of length n (an all -inf row gives zeros)
  void (*softmax_rows)(const float* x, float* y, int64_t nrows, int64_t n);
  // dx = y * (g - sum(g * y)) per row
  void (*softmax_bwd_rows)(const float* y, const float* g, float* dx, int64_t nrows, int64_t n);
  // Attention forward row: s holds n scaled scores; adds mask (may be null), writes the
  // probabilities in place and returns the logsumexp (+inf for a row without any finite score,
  // whose probabilities are all 0).
  float (*attn_softmax_row)(float* s, const float* mask, int64_t n);
  // Attention backward row: p = exp(s + mask - lse) written into s; dp := p * (dp - delta).
  void (*attn_bwd_row)(float* s, const float* mask, float* dp, int64_t n, float lse, float delta);
  float (*dot)(const float* a, const float* b, int64_t n);
  // C[M,N] = alpha * op(A) @ B (+ C when accumulate), op(A)(m,k) = A[m*sam + k*sak],
  // B and C row-major with unit stride along N.
  void (*gemm)(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t sam, int64_t sak,
               const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
  // Quantised matmul y = x · dequantize(W)^T (QmmArgs), in two steps: qmm_pack_x reorders x once
  // per call into the element order the 4-bit unpacking produces (identity for 8 bits), then
  // qmm computes the output columns [n0, n1) for all M rows from the packed x.
  void (*qmm_pack_x)(const float* x, float* xp, int64_t M, int64_t K, int bits);
  void (*qmm)(const struct QmmArgs& a, int64_t n0, int64_t n1);
  // Output columns per register tile of qmm (split work across threads at multiples of this).
  int qmm_tile_n;
  // Decode attention of nq query heads (rows of q at stride ldq) sharing one key/value head
  // (keys, vals [S, D]): out_i = softmax(scale * q_i K^T + mask) V, rows of out at stride ldo.
  // mask: S additive floats or null; scores: scratch of S floats. A row without any finite score
  // gives zeros.
  void (*attn_decode)(const float* q, int64_t nq, int64_t ldq, const float* keys, const float* vals, int64_t S,
                      int64_t D, float scale, const float* mask, float* out, int64_t ldo, float* scores);
  // Picked log-softmax of nrows rows of a x (a > 0): lse = logsumexp(a x), out = a x[t] - lse
  // (NaN for a target outside [0, n)).
  void (*logsoftmax_pick_rows)(const float* x, const int32_t* t, float* out, float* lse, int64_t nrows, int64_t n,
                               float a);
  // Its gradient: dx = a (g onehot(t) + (h - g) exp(a x - lse)); h (lse's cotangent) may be null.
  void (*logsoftmax_pick_bwd_rows)(const float* x, const int32_t* t, const float* lse, const float* g, const float* h,
                                   float* dx, int64_t nrows, int64_t n, float a);
  // RMSNorm rows: y = x * w / sqrt(mean(x^2) + eps).
  void (*rms_norm_rows)(const float* x, const float* w, float* y, int64_t nrows, int64_t n, float eps);
  // Its gradient with respect to x for the cotangent g (r recomputed from x).
  void (*rms_norm_bwd_rows)(const float* x, const float* w, const float* g, float* dx, int64_t nrows, int64_t n,
                            float eps);
};

// A per-thread float buffer of at least n elements, 64-byte aligned, kept for the thread's life
// (qmm's dequantised weight tiles).
float* qmm_weight_buffer(size_t n);

// y = x · dequantize(W)^T for all of a's rows (x already packed by qmm_pack_x), the columns split
// over the pool when the product is big enough to pay for waking it.
void qmm_parallel(const Table& t, const QmmArgs& a);

extern const Table portable_table;
extern const Table avx2_table;
extern const Table avx512_table;

// The table of the ISA in use (isa()).
const Table& table();

// Thread pool. Worker count: VALUEALIGN_KERNEL_THREADS or std::thread::hardware_concurrency().
int num_threads();
// Runs fn(i) for i in [0, n) on the pool (the caller takes part), dynamic scheduling. Runs serially
// when n <= 1, when called from inside a pool task, or when another thread is using the pool.
void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
// The ranges parallel_range runs: `parts` ranges of `chunk` items (the last one shorter), at most
// num_threads() of them, each at least `grain` long and a multiple of `align`; {n, 1} when [0, n)
// stays whole.
struct Ranges {
  int64_t chunk, parts;
};
Ranges split_ranges(int64_t n, int64_t grain, int64_t align);
// Splits [0, n) into at most num_threads() contiguous ranges of at least `grain` items
// (a multiple of `align`) and runs fn(begin, end) on each.
void parallel_range(int64_t n, int64_t grain, int64_t align, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace valuealign::kernels::detail
