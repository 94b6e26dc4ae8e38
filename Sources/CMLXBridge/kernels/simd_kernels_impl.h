// Generic row / block kernels, written once against a vector-traits type `V` and instantiated per
// instruction set: isa_avx512.cpp, isa_avx2.cpp and isa_portable.cpp include this file (no include
// guard on purpose) inside their own namespace, after defining `V`, inside a region where every
// function gets the matching target attribute. Do not include it anywhere else.
//
// V provides: R (register type), W (lanes), zero, set1, load, store, loadn(p, n, fill) (the first n
// lanes from p, the rest = fill), storen(p, r, n), add, sub, mul, div, fma(a, b, c) = a*b + c, max,
// min, hsum, hmax, exp.

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

static constexpr Table kTable = {
    kIsaName,      exp_n, silu_gate_fwd, silu_gate_bwd, softmax_rows, softmax_bwd_rows, attn_softmax_row,
    attn_bwd_row,  dot_n, gemm,
};
