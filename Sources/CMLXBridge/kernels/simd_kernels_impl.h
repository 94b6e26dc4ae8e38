// Generic row / block kernels, written once against a vector-traits type `V` and instantiated per
// instruction set: isa_avx512.cpp, isa_avx2.cpp and isa_portable.cpp include this file (no include
// guard on purpose) inside their own namespace, after defining `V`, inside a region where every
// function gets the matching target attribute. Do not include it anywhere else.
//
// V provides: R (register type), W (lanes), zero, set1, load, store, loadn(p, n, fill) (the first n
// lanes from p, the rest = fill), storen(p, r, n), add, sub, mul, div, fma(a, b, c) = a*b + c, max,
// min, hsum, hmax, exp; for the quantised matmul QMB and QNT (register tile: rows of x by
// columns of y), deq4, deq8 and load_half.

#ifndef VA_UNROLL
#if defined(__clang__)
#define VA_UNROLL _Pragma("clang loop unroll(full)")
#else
#define VA_UNROLL _Pragma("GCC unroll 16")
#endif
#endif

using R = V::R;
constexpr int W = V::W;

static inline R sigmoid_v(R x) {
  const R one = V::set1(1.0f);
  return V::div(one, V::add(one, V::exp(V::sub(V::zero(), x))));
}

static void exp_n(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store(y + i, V::exp(V::load(x + i)));
  if (i < n) V::storen(y + i, V::exp(V::loadn(x + i, int(n - i), 0.0f)), int(n - i));
}

static void silu_gate_fwd(const float* g, const float* u, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    R gv = V::load(g + i);
    V::store(y + i, V::mul(V::mul(gv, sigmoid_v(gv)), V::load(u + i)));
  }
  if (i < n) {
    int r = int(n - i);
    R gv = V::loadn(g + i, r, 0.0f);
    V::storen(y + i, V::mul(V::mul(gv, sigmoid_v(gv)), V::loadn(u + i, r, 0.0f)), r);
  }
}

static inline void silu_gate_bwd_v(R gv, R uv, R cv, R& dg, R& du) {
  const R one = V::set1(1.0f);
  R s = sigmoid_v(gv);
  R cs = V::mul(cv, s);
  du = V::mul(cs, gv);
  dg = V::mul(V::mul(cs, uv), V::fma(gv, V::sub(one, s), one));
}

static void silu_gate_bwd(const float* g, const float* u, const float* c, float* dg, float* du, int64_t n) {
  int64_t i = 0;
  R a, b;
  for (; i + W <= n; i += W) {
    silu_gate_bwd_v(V::load(g + i), V::load(u + i), V::load(c + i), a, b);
    V::store(dg + i, a);
    V::store(du + i, b);
  }
  if (i < n) {
    int r = int(n - i);
    silu_gate_bwd_v(V::loadn(g + i, r, 0.0f), V::loadn(u + i, r, 0.0f), V::loadn(c + i, r, 0.0f), a, b);
    V::storen(dg + i, a, r);
    V::storen(du + i, b, r);
  }
}

static inline float row_max(const float* x, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  R m = V::set1(ninf);
  int64_t i = 0;
  for (; i + W <= n; i += W) m = V::max(m, V::load(x + i));
  if (i < n) m = V::max(m, V::loadn(x + i, int(n - i), ninf));
  return V::hmax(m);
}

// y = exp(x - mx), returns the sum. x may alias y.
static inline float row_exp_sum(const float* x, float* y, int64_t n, float mx) {
  const R mv = V::set1(mx);
  R s = V::zero();
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    R e = V::exp(V::sub(V::load(x + i), mv));
    V::store(y + i, e);
    s = V::add(s, e);
  }
  if (i < n) {
    int r = int(n - i);
    R e = V::exp(V::sub(V::loadn(x + i, r, -std::numeric_limits<float>::infinity()), mv));
    V::storen(y + i, e, r);
    s = V::add(s, e);
  }
  return V::hsum(s);
}

static inline void row_scale(float* y, int64_t n, float a) {
  const R av = V::set1(a);
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store(y + i, V::mul(V::load(y + i), av));
  if (i < n) V::storen(y + i, V::mul(V::loadn(y + i, int(n - i), 0.0f), av), int(n - i));
}

static inline void row_zero(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.0f;
}

static void softmax_rows(const float* x, float* y, int64_t nrows, int64_t n) {
  for (int64_t r = 0; r < nrows; ++r, x += n, y += n) {
    float mx = row_max(x, n);
    if (mx == -std::numeric_limits<float>::infinity()) {
      row_zero(y, n);
      continue;
    }
    float s = row_exp_sum(x, y, n, mx);
    row_scale(y, n, 1.0f / s);
  }
}

static inline float dot_n(const float* a, const float* b, int64_t n) {
  R s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = V::fma(V::load(a + i), V::load(b + i), s0);
    s1 = V::fma(V::load(a + i + W), V::load(b + i + W), s1);
  }
  for (; i + W <= n; i += W) s0 = V::fma(V::load(a + i), V::load(b + i), s0);
  if (i < n) s1 = V::fma(V::loadn(a + i, int(n - i), 0.0f), V::loadn(b + i, int(n - i), 0.0f), s1);
  return V::hsum(V::add(s0, s1));
}

static void softmax_bwd_rows(const float* y, const float* g, float* dx, int64_t nrows, int64_t n) {
  for (int64_t r = 0; r < nrows; ++r, y += n, g += n, dx += n) {
    const R d = V::set1(dot_n(y, g, n));
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(dx + i, V::mul(V::load(y + i), V::sub(V::load(g + i), d)));
    if (i < n) {
      int k = int(n - i);
      V::storen(dx + i, V::mul(V::loadn(y + i, k, 0.0f), V::sub(V::loadn(g + i, k, 0.0f), d)), k);
    }
  }
}

// RMSNorm of nrows rows of length n: y = x * r * w with r = 1 / sqrt(mean(x^2) + eps).
static void rms_norm_rows(const float* x, const float* w, float* y, int64_t nrows, int64_t n, float eps) {
  for (int64_t row = 0; row < nrows; ++row, x += n, y += n) {
    const R rv = V::set1(1.0f / std::sqrt(dot_n(x, x, n) / float(n) + eps));
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(y + i, V::mul(V::mul(V::load(x + i), rv), V::load(w + i)));
    if (i < n) {
      const int k = int(n - i);
      V::storen(y + i, V::mul(V::mul(V::loadn(x + i, k, 0.0f), rv), V::loadn(w + i, k, 0.0f)), k);
    }
  }
}

// Its gradient with respect to x, r recomputed: dx = r (g w) - x r^3 / n * sum(g w x).
static void rms_norm_bwd_rows(const float* x, const float* w, const float* g, float* dx, int64_t nrows, int64_t n,
                              float eps) {
  for (int64_t row = 0; row < nrows; ++row, x += n, g += n, dx += n) {
    const float r = 1.0f / std::sqrt(dot_n(x, x, n) / float(n) + eps);
    R s0 = V::zero(), s1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = V::fma(V::mul(V::load(g + i), V::load(w + i)), V::load(x + i), s0);
      s1 = V::fma(V::mul(V::load(g + i + W), V::load(w + i + W)), V::load(x + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = V::fma(V::mul(V::load(g + i), V::load(w + i)), V::load(x + i), s0);
    if (i < n) {
      const int k = int(n - i);
      s1 = V::fma(V::mul(V::loadn(g + i, k, 0.0f), V::loadn(w + i, k, 0.0f)), V::loadn(x + i, k, 0.0f), s1);
    }
    const R rv = V::set1(r), cv = V::set1(-r * r * r * V::hsum(V::add(s0, s1)) / float(n));
    i = 0;
    for (; i + W <= n; i += W)
      V::store(dx + i, V::fma(V::mul(V::load(g + i), V::load(w + i)), rv, V::mul(cv, V::load(x + i))));
    if (i < n) {
      const int k = int(n - i);
      V::storen(dx + i,
                V::fma(V::mul(V::loadn(g + i, k, 0.0f), V::loadn(w + i, k, 0.0f)), rv, V::mul(cv, V::loadn(x + i, k, 0.0f))),
                k);
    }
  }
}

// Picked log-softmax (LogSoftmaxPick): per row, lse = logsumexp(a x) and out = a x[t] - lse;
// a target outside [0, n) gives NaN. Two reads of the row (max, then the sum of exponentials),
// nothing written but the two scalars.
static void logsoftmax_pick_rows(const float* x, const int32_t* t, float* out, float* lse, int64_t nrows, int64_t n,
                                 float a) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const R av = V::set1(a);
  for (int64_t r = 0; r < nrows; ++r, x += n) {
    // max of a x: a > 0, so a * max(x).
    const float m = a * row_max(x, n);
    const R mv = V::set1(m);
    R s0 = V::zero(), s1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = V::add(s0, V::exp(V::sub(V::mul(V::load(x + i), av), mv)));
      s1 = V::add(s1, V::exp(V::sub(V::mul(V::load(x + i + W), av), mv)));
    }
    for (; i + W <= n; i += W) s0 = V::add(s0, V::exp(V::sub(V::mul(V::load(x + i), av), mv)));
    if (i < n) s1 = V::add(s1, V::exp(V::sub(V::mul(V::loadn(x + i, int(n - i), ninf), av), mv)));
    const float l = m == ninf ? ninf : m + std::log(V::hsum(V::add(s0, s1)));
    lse[r] = l;
    const int32_t k = t[r];
    out[r] = k >= 0 && k < n ? a * x[k] - l : std::numeric_limits<float>::quiet_NaN();
  }
}

// Its gradient: dx = a * (g onehot(t) + (h - g) exp(a x - lse)), g and h the cotangents of out
// and lse (one per row).
static void logsoftmax_pick_bwd_rows(const float* x, const int32_t* t, const float* lse, const float* g, const float* h,
                                     float* dx, int64_t nrows, int64_t n, float a) {
  const R av = V::set1(a);
  for (int64_t r = 0; r < nrows; ++r, x += n, dx += n) {
    const R lv = V::set1(lse[r]), cv = V::set1(a * ((h ? h[r] : 0.0f) - g[r]));
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(dx + i, V::mul(cv, V::exp(V::sub(V::mul(V::load(x + i), av), lv))));
    if (i < n) {
      const int k = int(n - i);
      V::storen(dx + i, V::mul(cv, V::exp(V::sub(V::mul(V::loadn(x + i, k, 0.0f), av), lv))), k);
    }
    const int32_t k = t[r];
    if (k >= 0 && k < n) dx[k] += a * g[r];
  }
}

static float attn_softmax_row(float* s, const float* mask, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  R m = V::set1(ninf);
  int64_t i = 0;
  if (mask) {
    for (; i + W <= n; i += W) {
      R x = V::add(V::load(s + i), V::load(mask + i));
      V::store(s + i, x);
      m = V::max(m, x);
    }
    if (i < n) {
      int r = int(n - i);
      R x = V::add(V::loadn(s + i, r, ninf), V::loadn(mask + i, r, 0.0f));
      V::storen(s + i, x, r);
      m = V::max(m, x);
    }
  } else {
    for (; i + W <= n; i += W) m = V::max(m, V::load(s + i));
    if (i < n) m = V::max(m, V::loadn(s + i, int(n - i), ninf));
  }
  float mx = V::hmax(m);
  if (!(mx > ninf)) {  // no finite score (or NaN max): zeros
    row_zero(s, n);
    return std::numeric_limits<float>::infinity();
  }
  float sum = row_exp_sum(s, s, n, mx);
  row_scale(s, n, 1.0f / sum);
  return mx + std::log(sum);
}

static void attn_bwd_row(float* s, const float* mask, float* dp, int64_t n, float lse, float delta) {
  const R l = V::set1(lse), d = V::set1(delta);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    R x = V::load(s + i);
    if (mask) x = V::add(x, V::load(mask + i));
    R p = V::exp(V::sub(x, l));
    V::store(s + i, p);
    V::store(dp + i, V::mul(p, V::sub(V::load(dp + i), d)));
  }
  if (i < n) {
    int r = int(n - i);
    R x = V::loadn(s + i, r, 0.0f);
    if (mask) x = V::add(x, V::loadn(mask + i, r, 0.0f));
    R p = V::exp(V::sub(x, l));
    V::storen(s + i, p, r);
    V::storen(dp + i, V::mul(p, V::sub(V::loadn(dp + i, r, 0.0f), d)), r);
  }
}

// Decode attention (one new token) of nq query heads that share one key/value head: for each
// query i, scores_j = scale * q_i · k_j (+ mask_j) over positions [0, S), p = softmax(scores),
// out_i = sum_j p_j v_j. keys and vals are [S, D] rows; q and out rows at strides ldq and ldo;
// scores: scratch of at least S floats. Scores for W positions at a time: W dot products as W
// accumulators, then one V::hsum_lanes (lane p = sum of accumulator p) instead of W horizontal
// sums. DV = D / W vectors per row when that is small (query in registers), else 0 (any D).
template <int DV>
static inline void attn_decode_impl(const float* q, int64_t nq, int64_t ldq, const float* keys, const float* vals,
                                    int64_t S, int64_t D, float scale, const float* mask, float* out, int64_t ldo,
                                    float* scores) {
  const R sc = V::set1(scale);
  for (int64_t i = 0; i < nq; ++i) {
    const float* qi = q + i * ldq;
    int64_t j = 0;
    if constexpr (DV > 0) {
      R qv[DV];
VA_UNROLL
      for (int c = 0; c < DV; ++c) qv[c] = V::load(qi + c * W);
      for (; j + W <= S; j += W) {
        R acc[W];
VA_UNROLL
        for (int p = 0; p < W; ++p) {
          const float* kr = keys + (j + p) * (DV * W);
          R a = V::mul(qv[0], V::load(kr));
VA_UNROLL
          for (int c = 1; c < DV; ++c) a = V::fma(qv[c], V::load(kr + c * W), a);
          acc[p] = a;
        }
        V::store(scores + j, V::mul(V::hsum_lanes(acc), sc));
      }
    }
    for (; j < S; ++j) scores[j] = scale * dot_n(qi, keys + j * D, D);
    attn_softmax_row(scores, mask, S);
    float* o = out + i * ldo;
    if constexpr (DV > 0) {
      R acc[DV];
VA_UNROLL
      for (int c = 0; c < DV; ++c) acc[c] = V::zero();
      for (int64_t t = 0; t < S; ++t) {
        if (scores[t] == 0) continue;
        const R pv = V::set1(scores[t]);
        const float* vr = vals + t * (DV * W);
VA_UNROLL
        for (int c = 0; c < DV; ++c) acc[c] = V::fma(pv, V::load(vr + c * W), acc[c]);
      }
VA_UNROLL
      for (int c = 0; c < DV; ++c) V::store(o + c * W, acc[c]);
    } else {
      for (int64_t d = 0; d < D; ++d) o[d] = 0;
      for (int64_t t = 0; t < S; ++t) {
        const float p = scores[t];
        if (p == 0) continue;
        const float* vr = vals + t * D;
        for (int64_t d = 0; d < D; ++d) o[d] += p * vr[d];
      }
    }
  }
}

static void attn_decode(const float* q, int64_t nq, int64_t ldq, const float* keys, const float* vals, int64_t S,
                        int64_t D, float scale, const float* mask, float* out, int64_t ldo, float* scores) {
  switch (D == 0 || D % W != 0 ? 0 : D / W) {
    case 1: return attn_decode_impl<1>(q, nq, ldq, keys, vals, S, D, scale, mask, out, ldo, scores);
    case 2: return attn_decode_impl<2>(q, nq, ldq, keys, vals, S, D, scale, mask, out, ldo, scores);
    case 4: return attn_decode_impl<4>(q, nq, ldq, keys, vals, S, D, scale, mask, out, ldo, scores);
    case 8: return attn_decode_impl<8>(q, nq, ldq, keys, vals, S, D, scale, mask, out, ldo, scores);
    default: return attn_decode_impl<0>(q, nq, ldq, keys, vals, S, D, scale, mask, out, ldo, scores);
  }
}

// GEMM micro-kernel: an MR x (NV*W) tile of C. `ncols` < NV*W only when EDGE.
template <int MR, int NV, bool EDGE>
static inline void gemm_tile(int64_t K, float alpha, const float* A, int64_t sam, int64_t sak, const float* B,
                             int64_t ldb, float* C, int64_t ldc, bool accumulate, int ncols) {
  R acc[MR][NV];
VA_UNROLL
  for (int r = 0; r < MR; ++r)
VA_UNROLL
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  int cnt[NV];
  for (int v = 0; v < NV; ++v) {
    int c = ncols - v * W;
    cnt[v] = c < 0 ? 0 : (c > W ? W : c);
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const float* a = A + k * sak;
    R bv[NV];
VA_UNROLL
    for (int v = 0; v < NV; ++v) bv[v] = EDGE ? V::loadn(b + v * W, cnt[v], 0.0f) : V::load(b + v * W);
VA_UNROLL
    for (int r = 0; r < MR; ++r) {
      R ar = V::set1(a[r * sam]);
VA_UNROLL
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(ar, bv[v], acc[r][v]);
    }
  }
  const R al = V::set1(alpha);
  for (int r = 0; r < MR; ++r) {
    float* c = C + r * ldc;
    for (int v = 0; v < NV; ++v) {
      if (EDGE && cnt[v] == 0) continue;
      R x = V::mul(acc[r][v], al);
      if (EDGE && cnt[v] < W) {
        if (accumulate) x = V::add(x, V::loadn(c + v * W, cnt[v], 0.0f));
        V::storen(c + v * W, x, cnt[v]);
      } else {
        if (accumulate) x = V::add(x, V::load(c + v * W));
        V::store(c + v * W, x);
      }
    }
  }
}

template <int NV, int MR>
static inline void gemm_panel(int64_t N, int64_t K, float alpha, const float* A, int64_t sam, int64_t sak,
                              const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  constexpr int NR = NV * W;
  int64_t j = 0;
  for (; j + NR <= N; j += NR)
    gemm_tile<MR, NV, false>(K, alpha, A, sam, sak, B + j, ldb, C + j, ldc, accumulate, NR);
  if (j < N) gemm_tile<MR, NV, true>(K, alpha, A, sam, sak, B + j, ldb, C + j, ldc, accumulate, int(N - j));
}

static void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t sam, int64_t sak,
                 const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  constexpr int MR = V::MR, NV = V::NV;
  if (K == 0) {
    if (!accumulate)
      for (int64_t m = 0; m < M; ++m) row_zero(C + m * ldc, N);
    return;
  }
  int64_t m = 0;
  for (; m + MR <= M; m += MR)
    gemm_panel<NV, MR>(N, K, alpha, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, accumulate);
  int rem = int(M - m);
  const float* a = A + m * sam;
  float* c = C + m * ldc;
  switch (rem) {
    case 0: break;
    case 1: gemm_panel<NV, 1>(N, K, alpha, a, sam, sak, B, ldb, c, ldc, accumulate); break;
    case 2: gemm_panel<NV, 2>(N, K, alpha, a, sam, sak, B, ldb, c, ldc, accumulate); break;
    case 3: gemm_panel<NV, 3>(N, K, alpha, a, sam, sak, B, ldb, c, ldc, accumulate); break;
    case 4: gemm_panel<NV, (4 < MR ? 4 : 1)>(N, K, alpha, a, sam, sak, B, ldb, c, ldc, accumulate); break;
    case 5: gemm_panel<NV, (5 < MR ? 5 : 1)>(N, K, alpha, a, sam, sak, B, ldb, c, ldc, accumulate); break;
    default:
      for (int r = 0; r < rem; ++r)
        gemm_panel<NV, 1>(N, K, alpha, a + r * sam, sam, sak, B, ldb, c + r * ldc, ldc, accumulate);
  }
}

// ---------------------------------------------------------------- quantised matmul
// y = x · dequantize(W)^T with W in MLX's affine layout (QmmArgs), dequantised in registers: each
// weight byte is read once per call and, for every block of MB rows of x, expanded to floats and
// multiplied into MB x NT register accumulators. V provides deq4(p, s, b, lo, hi) (W bytes to
// s * code + b of their low and of their high nibbles), deq8(p, s, b) (W bytes to s * code + b)
// and load_half(p) (W halves to floats).
//
// One 4-bit step turns W bytes into codes 2j (lo, lane j) and 2j+1 (hi, lane j) of a 2W-code
// chunk. Rather than shuffle every weight vector back into order, qmm_pack_x reorders x once per
// call the same way (within each 2W chunk: even elements, then odd ones).
static void qmm_pack_x(const float* x, float* xp, int64_t M, int64_t K, int bits) {
  if (bits != 4) {
    for (int64_t i = 0; i < M * K; ++i) xp[i] = x[i];
    return;
  }
  for (int64_t r = 0; r < M; ++r, x += K, xp += K)
    for (int64_t c = 0; c + 2 * W <= K; c += 2 * W)
      for (int j = 0; j < W; ++j) {
        xp[c + j] = x[c + 2 * j];
        xp[c + W + j] = x[c + 2 * j + 1];
      }
}

// n consecutive scales or biases starting at element `off`, converted to float into dst. Vectors
// only: a ragged end is covered by one more vector that overlaps the previous one.
static inline void qmm_params(const void* p, bool half, int64_t off, int n, float* dst) {
  if (half) {
    const uint16_t* h = static_cast<const uint16_t*>(p) + off;
    if (n < W) {
      for (int i = 0; i < n; ++i) dst[i] = half_to_float(h[i]);
      return;
    }
    int i = 0;
    for (; i + W <= n; i += W) V::store(dst + i, V::load_half(h + i));
    if (i < n) V::store(dst + n - W, V::load_half(h + n - W));
  } else {
    const float* f = static_cast<const float*>(p) + off;
    for (int i = 0; i < n; ++i) dst[i] = f[i];
  }
}

// The scales and biases of weight rows [n0, n0 + NT), groups [g0, g0 + n), as floats: row j's at
// sb + j * ld and bb + j * ld.
template <int NT>
static inline void qmm_tile_params(const QmmArgs& a, int64_t n0, int64_t g0, int n, float* sb, float* bb, int ld) {
  const int64_t G = a.K / a.group;
VA_UNROLL
  for (int j = 0; j < NT; ++j) {
    qmm_params(a.scales, a.half, (n0 + j) * G + g0, n, sb + j * ld);
    qmm_params(a.biases, a.half, (n0 + j) * G + g0, n, bb + j * ld);
  }
}

#if defined(__GNUC__) || defined(__clang__)
#define VA_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define VA_PREFETCH(p) ((void)0)
#endif

// Groups per pass over a tile: the tile's scales and biases for this many groups are converted to
// floats once and shared by every block of rows of x.
constexpr int kQmmGroups = 512;
// Software prefetch distance, in tiles of NT weight rows ahead. A tile's rows are only a few
// hundred bytes each and are read interleaved, which the hardware prefetchers do not follow well.
constexpr int kQmmPrefetchTiles = 2;

// Rows [m0, m0 + MB) x columns [n0, n0 + NT) of y, over groups [g0, g1) (sb, bb: the tile's
// scales and biases for those groups, row j at j * kQmmGroups). Adds to y unless `first`.
template <int BITS, int MB, int NT>
static inline void qmm_tile(const QmmArgs& a, int64_t m0, int64_t n0, int64_t g0, int64_t g1, const float* sb,
                            const float* bb, bool first, bool prefetch) {
  const int64_t K = a.K, ldw = K * BITS / 8;
  const int gs = a.group;
  const float* x = a.xp + m0 * K;
  const uint8_t* w = a.w + n0 * ldw;
  // With a single row, the low- and high-nibble products go to separate accumulators so that
  // each chain has one FMA per step.
  constexpr int NA = (BITS == 4 && MB == 1) ? 2 : 1;
  constexpr int CH = BITS == 4 ? 2 * W : W;  // codes per unpack step
  R acc[MB][NT][NA];
VA_UNROLL
  for (int i = 0; i < MB; ++i)
VA_UNROLL
    for (int j = 0; j < NT; ++j)
VA_UNROLL
      for (int t = 0; t < NA; ++t) acc[i][j][t] = V::zero();
  // The tile's weights are NT * ldw contiguous bytes; each group step consumes NT * gbytes of
  // them, and prefetches as many bytes at the same place kQmmPrefetchTiles tiles ahead.
  const int64_t gbytes = int64_t(gs) * BITS / 8;
  const uint8_t* pf = w + kQmmPrefetchTiles * NT * ldw + g0 * NT * gbytes;
  for (int64_t g = g0; g < g1; ++g) {
    if (prefetch)
      for (int64_t o = 0; o < NT * gbytes; o += 64) VA_PREFETCH(pf + o);
    pf += NT * gbytes;
    R s[NT], b[NT];
VA_UNROLL
    for (int j = 0; j < NT; ++j) {
      s[j] = V::set1(sb[j * kQmmGroups + (g - g0)]);
      b[j] = V::set1(bb[j * kQmmGroups + (g - g0)]);
    }
    const int64_t kb = g * gs;
    for (int c = 0; c < gs; c += CH) {
      const int64_t k = kb + c;
VA_UNROLL
      for (int j = 0; j < NT; ++j) {
        if constexpr (BITS == 4) {
          R lo, hi;
          V::deq4(w + j * ldw + k / 2, s[j], b[j], lo, hi);
VA_UNROLL
          for (int i = 0; i < MB; ++i) {
            acc[i][j][0] = V::fma(lo, V::load(x + i * K + k), acc[i][j][0]);
            acc[i][j][NA - 1] = V::fma(hi, V::load(x + i * K + k + W), acc[i][j][NA - 1]);
          }
        } else {
          R q = V::deq8(w + j * ldw + k, s[j], b[j]);
VA_UNROLL
          for (int i = 0; i < MB; ++i) acc[i][j][0] = V::fma(q, V::load(x + i * K + k), acc[i][j][0]);
        }
      }
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NT; ++j) {
      R t = acc[i][j][0];
      if constexpr (NA > 1) t = V::add(t, acc[i][j][NA - 1]);
      float* yp = a.y + (m0 + i) * a.N + n0 + j;
      *yp = first ? V::hsum(t) : *yp + V::hsum(t);
    }
}

// Columns [n0, n0 + NT) for every row of x.
template <int BITS, int NT>
static inline void qmm_cols(const QmmArgs& a, int64_t n0) {
  constexpr int MB = V::QMB;
  const int64_t G = a.K / a.group;
  alignas(64) float sb[NT * kQmmGroups];
  alignas(64) float bb[NT * kQmmGroups];
  const int64_t pb = (a.half ? 2 : 4);  // bytes per scale
  for (int64_t g0 = 0; g0 < G; g0 += kQmmGroups) {
    const int64_t g1 = G - g0 < kQmmGroups ? G : g0 + kQmmGroups;
    const int n = int(g1 - g0);
    qmm_tile_params<NT>(a, n0, g0, n, sb, bb, kQmmGroups);
    // The scales and biases of the tile kQmmPrefetchTiles ahead (NT rows of G each, contiguous).
    const int64_t ahead = (n0 + kQmmPrefetchTiles * NT) * G + g0;
    for (int64_t o = 0; o < NT * G * pb && o < n * NT * pb + 64; o += 64) {
      VA_PREFETCH(static_cast<const char*>(a.scales) + ahead * pb + o);
      VA_PREFETCH(static_cast<const char*>(a.biases) + ahead * pb + o);
    }
    const bool first = g0 == 0;
    int64_t m = 0;
    for (; m + MB <= a.M; m += MB) qmm_tile<BITS, MB, NT>(a, m, n0, g0, g1, sb, bb, first, m == 0);
    switch (a.M - m) {
      case 0: break;
      case 1: qmm_tile<BITS, 1, NT>(a, m, n0, g0, g1, sb, bb, first, m == 0); break;
      case 2: qmm_tile<BITS, (2 < MB ? 2 : 1), NT>(a, m, n0, g0, g1, sb, bb, first, m == 0); break;
      case 3: qmm_tile<BITS, (3 < MB ? 3 : 1), NT>(a, m, n0, g0, g1, sb, bb, first, m == 0); break;
      default:
        for (; m < a.M; ++m) qmm_tile<BITS, 1, NT>(a, m, n0, g0, g1, sb, bb, first, false);
    }
  }
}

// Many rows of x (M >= kQmmManyRows): rather than dequantise each weight again for every block of
// QMB rows, the NT weight rows of a tile are dequantised once per pass (K in equal parts of at most
// kQmmManyPass elements, so the buffer stays in L1) into a float buffer, in the element order of
// qmm_pack_x, and every block of MB = W / NT rows of x runs pure FMAs against it, the MB x NT
// accumulators summed across lanes by one V::hsum_lanes. NT is V::QNTM (8 with AVX-512: each step
// loads 8 buffered weight vectors and only 2 vectors of x, which streams from L2 when M * K is
// large). A row's result depends only on that row (not on M or its place in the batch); its
// rounding differs from the few-rows path's (another summation order).
constexpr int64_t kQmmManyRows = 8;
constexpr int64_t kQmmManyPass = 1024;
constexpr int kQmmManyPassGroups = int(kQmmManyPass / 32);  // groups are at least 32 elements

template <int BITS, int NT>
static inline void qmm_deq_tile(const QmmArgs& a, int64_t n0, int64_t g0, int64_t g1, const float* sb, const float* bb,
                                float* wb, int64_t ldb) {
  const int64_t ldw = a.K * BITS / 8, k0 = g0 * a.group;
  const int gs = a.group;
  constexpr int CH = BITS == 4 ? 2 * W : W;
VA_UNROLL
  for (int j = 0; j < NT; ++j) {
    const uint8_t* w = a.w + (n0 + j) * ldw;
    float* dst = wb + j * ldb - k0;
    for (int64_t g = g0; g < g1; ++g) {
      const R s = V::set1(sb[j * kQmmManyPassGroups + (g - g0)]), b = V::set1(bb[j * kQmmManyPassGroups + (g - g0)]);
      for (int64_t k = g * gs; k < (g + 1) * gs; k += CH) {
        if constexpr (BITS == 4) {
          R lo, hi;
          V::deq4(w + k / 2, s, b, lo, hi);
          V::store(dst + k, lo);
          V::store(dst + k + W, hi);
        } else {
          V::store(dst + k, V::deq8(w + k, s, b));
        }
      }
    }
  }
}

// Rows [m0, m0 + MB) x columns [n0, n0 + NT) over k in [k0, k1), weights from the buffer (row j
// at wb + j * ldb, element k at k - k0).
template <int MB, int NT>
static inline void qmm_buffer_tile(const QmmArgs& a, int64_t m0, int64_t n0, int64_t k0, int64_t k1, const float* wb,
                                   int64_t ldb, bool first) {
  const int64_t K = a.K;
  const float* x = a.xp + m0 * K;
  R acc[MB][NT];
VA_UNROLL
  for (int i = 0; i < MB; ++i)
VA_UNROLL
    for (int j = 0; j < NT; ++j) acc[i][j] = V::zero();
  for (int64_t k = k0; k < k1; k += W) {
    R wv[NT];
VA_UNROLL
    for (int j = 0; j < NT; ++j) wv[j] = V::load(wb + j * ldb + (k - k0));
VA_UNROLL
    for (int i = 0; i < MB; ++i) {
      const R xv = V::load(x + i * K + k);
VA_UNROLL
      for (int j = 0; j < NT; ++j) acc[i][j] = V::fma(wv[j], xv, acc[i][j]);
    }
  }
  if constexpr (MB * NT == W) {
    // All W sums in one vector (lane i * NT + j).
    alignas(64) float sums[W];
    V::store(sums, V::hsum_lanes(&acc[0][0]));
    for (int i = 0; i < MB; ++i) {
      float* yp = a.y + (m0 + i) * a.N + n0;
      for (int j = 0; j < NT; ++j) yp[j] = first ? sums[i * NT + j] : yp[j] + sums[i * NT + j];
    }
  } else {
    for (int i = 0; i < MB; ++i)
      for (int j = 0; j < NT; ++j) {
        float* yp = a.y + (m0 + i) * a.N + n0 + j;
        *yp = first ? V::hsum(acc[i][j]) : *yp + V::hsum(acc[i][j]);
      }
  }
}

template <int BITS, int NT>
static inline void qmm_cols_many(const QmmArgs& a, int64_t n0, float* wb) {
  constexpr int MB = NT >= W ? 1 : W / NT;
  const int64_t G = a.K / a.group;
  // Groups per pass: K in equal passes of at most kQmmManyPass elements (a short last pass would
  // pay the per-pass dequantisation and reduction for little arithmetic).
  const int64_t max_pass = kQmmManyPass / a.group, passes = (G + max_pass - 1) / max_pass;
  const int64_t pass = (G + passes - 1) / passes;
  const int64_t ldb = pass * a.group;
  alignas(64) float sb[NT * kQmmManyPassGroups];
  alignas(64) float bb[NT * kQmmManyPassGroups];
  for (int64_t g0 = 0; g0 < G; g0 += pass) {
    const int64_t g1 = G - g0 < pass ? G : g0 + pass;
    const int n = int(g1 - g0);
    qmm_tile_params<NT>(a, n0, g0, n, sb, bb, kQmmManyPassGroups);
    // The same pass of the tile kQmmPrefetchTiles ahead: its weights, scales and biases (the
    // hardware prefetchers do not follow the interleaved rows; see qmm_tile).
    const int64_t ahead = n0 + kQmmPrefetchTiles * NT;
    if (ahead + NT <= a.N) {
      const int64_t ldw = a.K * BITS / 8, pb = a.half ? 2 : 4;
      const uint8_t* pw = a.w + ahead * ldw + g0 * a.group * BITS / 8;
      for (int j = 0; j < NT; ++j) {
        for (int64_t o = 0; o < n * a.group * BITS / 8; o += 64) VA_PREFETCH(pw + j * ldw + o);
        VA_PREFETCH(static_cast<const char*>(a.scales) + ((ahead + j) * G + g0) * pb);
        VA_PREFETCH(static_cast<const char*>(a.biases) + ((ahead + j) * G + g0) * pb);
      }
    }
    qmm_deq_tile<BITS, NT>(a, n0, g0, g1, sb, bb, wb, ldb);
    const bool first = g0 == 0;
    const int64_t k0 = g0 * a.group, k1 = g1 * a.group;
    int64_t m = 0;
    for (; m + MB <= a.M; m += MB) qmm_buffer_tile<MB, NT>(a, m, n0, k0, k1, wb, ldb, first);
    for (; m < a.M; ++m) qmm_buffer_tile<1, NT>(a, m, n0, k0, k1, wb, ldb, first);
  }
}

template <int BITS>
static void qmm_bits(const QmmArgs& a, int64_t n0, int64_t n1) {
  constexpr int NT = V::QNT;
  int64_t n = n0;
  if (a.M >= kQmmManyRows) {
    constexpr int NTM = V::QNTM;
    float* wb = qmm_weight_buffer(size_t(NTM * kQmmManyPass));
    for (; n + NTM <= n1; n += NTM) qmm_cols_many<BITS, NTM>(a, n, wb);
    if constexpr (NTM > NT)
      for (; n + NT <= n1; n += NT) qmm_cols_many<BITS, NT>(a, n, wb);
    for (; n < n1; ++n) qmm_cols_many<BITS, 1>(a, n, wb);
    return;
  }
  for (; n + NT <= n1; n += NT) qmm_cols<BITS, NT>(a, n);
  for (; n < n1; ++n) qmm_cols<BITS, 1>(a, n);
}

static void qmm(const QmmArgs& a, int64_t n0, int64_t n1) {
  if (a.bits == 4)
    qmm_bits<4>(a, n0, n1);
  else
    qmm_bits<8>(a, n0, n1);
}

static constexpr Table kTable = {
    kIsaName,     exp_n, silu_gate_fwd, silu_gate_bwd, softmax_rows, softmax_bwd_rows, attn_softmax_row,
    attn_bwd_row, dot_n, gemm,          qmm_pack_x,    qmm,          V::QNT, attn_decode, logsoftmax_pick_rows,
    logsoftmax_pick_bwd_rows, rms_norm_rows, rms_norm_bwd_rows,
};
