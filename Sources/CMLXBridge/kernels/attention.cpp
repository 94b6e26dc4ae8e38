// Fused scaled-dot-product attention as MLX primitives.
//
// AttentionForward: inputs q [B,H,L,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv], optional additive mask
// [mb,mh,L,S] (mb in {1,B}, mh in {1,H}); outputs out [B,H,L,Dv] and the row logsumexp lse
// [B,H,L] (+inf for a fully masked row). Work is split in (batch, head, 64-query block) tasks;
// per task: scores = scale * Qblk K^T (SIMD GEMM on a transposed copy of K), an exact two-pass
// softmax over the whole key row, then P V.
//
// AttentionBackward: flash-attention-style backward that recomputes P = exp(s + mask - lse) per
// query block and forms dV += P^T dO, dS = P (dO V^T - rowsum(dO * O)), dQ = scale dS K,
// dK += scale dS^T Q, with per-(batch, head, chunk) dK/dV partials reduced over GQA groups.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int64_t kBlockQ = 64;

struct Dims {
  int64_t B, H, Hkv, L, S, D, Dv, mb, mh;
  int64_t group() const { return H / Hkv; }
  int64_t nqb() const { return (L + kBlockQ - 1) / kBlockQ; }
  // keys visible to query i: [0, visible(i))
  int64_t visible(int64_t i, bool causal) const {
    if (!causal) return S;
    return std::clamp<int64_t>(i + (S - L) + 1, 0, S);
  }
  const float* mask_row(const float* mask, int64_t b, int64_t h, int64_t i) const {
    if (!mask) return nullptr;
    return mask + (((mb == 1 ? 0 : b) * mh + (mh == 1 ? 0 : h)) * L + i) * S;
  }
};

Dims dims_of(const std::vector<mx::array>& in, bool has_mask) {
  Dims d{};
  d.B = in[0].shape(0);
  d.H = in[0].shape(1);
  d.L = in[0].shape(2);
  d.D = in[0].shape(3);
  d.Hkv = in[1].shape(1);
  d.S = in[1].shape(2);
  d.Dv = in[2].shape(3);
  d.mb = has_mask ? in[3].shape(0) : 1;
  d.mh = has_mask ? in[3].shape(1) : 1;
  return d;
}

// Below this many multiply-adds a call stays on one thread (waking the pool costs ~10-50 us), e.g.
// single-token decode steps.
constexpr int64_t kSerialWork = int64_t(1) << 20;

void for_tasks(int64_t n, int64_t work, const std::function<void(int64_t)>& fn) {
  if (work < kSerialWork) {
    for (int64_t i = 0; i < n; ++i) fn(i);
  } else {
    parallel_for(n, fn);
  }
}

thread_local std::vector<float> t_scratch;

float* scratch(size_t n) {
  if (t_scratch.size() < n) t_scratch.resize(n);
  return t_scratch.data();
}

// dst[bk][c][j] = src[bk][j][c] for each of nb [rows, cols] matrices.
void transpose_heads(const float* src, float* dst, int64_t nb, int64_t rows, int64_t cols) {
  for_tasks(nb, nb * rows * cols * 8, [&](int64_t bk) {
    const float* s = src + bk * rows * cols;
    float* d = dst + bk * rows * cols;
    constexpr int64_t T = 16;
    for (int64_t j0 = 0; j0 < rows; j0 += T)
      for (int64_t c0 = 0; c0 < cols; c0 += T)
        for (int64_t j = j0; j < std::min(rows, j0 + T); ++j)
          for (int64_t c = c0; c < std::min(cols, c0 + T); ++c) d[c * rows + j] = s[j * cols + c];
  });
}

// Few queries per head (decode steps): scores are dot products with the rows of K, so K is read
// once in place instead of being transposed (a full copy of the cache per call).
constexpr int64_t kDotQueries = 4;

void attention_forward(const Table& t, const Dims& d, float scale, bool causal, const float* q, const float* k,
                       const float* v, const float* mask, float* out, float* lse) {
  const bool by_dot = d.L <= kDotQueries;
  std::vector<float> kt(by_dot ? 0 : size_t(d.B * d.Hkv * d.D * d.S));
  if (!by_dot) transpose_heads(k, kt.data(), d.B * d.Hkv, d.S, d.D);
  const int64_t nqb = d.nqb();
  const int64_t work = d.B * d.H * d.L * d.S * (d.D + d.Dv);
  for_tasks(d.B * d.H * nqb, work, [&](int64_t task) {
    int64_t qb = nqb - 1 - task % nqb;  // the longest (causal) blocks first
    int64_t bh = task / nqb, b = bh / d.H, h = bh % d.H, hk = h / d.group();
    int64_t i0 = qb * kBlockQ, rows = std::min(kBlockQ, d.L - i0);
    int64_t kend = d.visible(i0 + rows - 1, causal);
    float* o = out + (bh * d.L + i0) * d.Dv;
    float* l = lse + bh * d.L + i0;
    if (kend == 0) {
      std::fill(o, o + rows * d.Dv, 0.0f);
      std::fill(l, l + rows, std::numeric_limits<float>::infinity());
      return;
    }
    const float* vb = v + (b * d.Hkv + hk) * d.S * d.Dv;
    float* s = scratch(size_t(rows * kend));
    if (by_dot) {
      const float* kb = k + (b * d.Hkv + hk) * d.S * d.D;
      for (int64_t r = 0; r < rows; ++r) {
        const float* qr = q + (bh * d.L + i0 + r) * d.D;
        float* sr = s + r * kend;
        for (int64_t j = 0; j < kend; ++j) sr[j] = scale * t.dot(qr, kb + j * d.D, d.D);
      }
    } else {
      const float* ktb = kt.data() + (b * d.Hkv + hk) * d.D * d.S;
      t.gemm(rows, kend, d.D, scale, q + (bh * d.L + i0) * d.D, d.D, 1, ktb, d.S, s, kend, false);
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t i = i0 + r, n = d.visible(i, causal);
      float* sr = s + r * kend;
      l[r] = t.attn_softmax_row(sr, d.mask_row(mask, b, h, i), n);
      std::fill(sr + n, sr + kend, 0.0f);
    }
    t.gemm(rows, d.Dv, kend, 1.0f, s, kend, 1, vb, d.Dv, o, d.Dv, false);
  });
}

void attention_backward(const Table& t, const Dims& d, float scale, bool causal, const float* q, const float* k,
                        const float* v, const float* mask, const float* out, const float* lse, const float* dout,
                        float* dq, float* dk, float* dv) {
  std::vector<float> kt(size_t(d.B * d.Hkv * d.D * d.S)), vt(size_t(d.B * d.Hkv * d.Dv * d.S));
  transpose_heads(k, kt.data(), d.B * d.Hkv, d.S, d.D);
  transpose_heads(v, vt.data(), d.B * d.Hkv, d.S, d.Dv);
  const int64_t nqb = d.nqb(), BH = d.B * d.H;
  // Split each head's query blocks into chunks so that both threads have work at small B*H.
  int64_t nchunks = std::clamp<int64_t>((4 * num_threads() + BH - 1) / BH, 1, nqb);
  std::vector<float> dkp(size_t(BH * nchunks * d.S * d.D)), dvp(size_t(BH * nchunks * d.S * d.Dv));
  const int64_t work = 2 * d.B * d.H * d.L * d.S * (d.D + d.Dv);
  for_tasks(BH * nchunks, work, [&](int64_t task) {
    int64_t c = nchunks - 1 - task % nchunks;  // later (longer) chunks first
    int64_t bh = task / nchunks, b = bh / d.H, h = bh % d.H, hk = h / d.group();
    int64_t qb0 = c * nqb / nchunks, qb1 = (c + 1) * nqb / nchunks;
    float* dkh = dkp.data() + (bh * nchunks + c) * d.S * d.D;
    float* dvh = dvp.data() + (bh * nchunks + c) * d.S * d.Dv;
    std::fill(dkh, dkh + d.S * d.D, 0.0f);
    std::fill(dvh, dvh + d.S * d.Dv, 0.0f);
    const float* ktb = kt.data() + (b * d.Hkv + hk) * d.D * d.S;
    const float* vtb = vt.data() + (b * d.Hkv + hk) * d.Dv * d.S;
    const float* kb = k + (b * d.Hkv + hk) * d.S * d.D;
    for (int64_t qb = qb0; qb < qb1; ++qb) {
      int64_t i0 = qb * kBlockQ, rows = std::min(kBlockQ, d.L - i0);
      int64_t kend = d.visible(i0 + rows - 1, causal);
      const float* qblk = q + (bh * d.L + i0) * d.D;
      const float* doblk = dout + (bh * d.L + i0) * d.Dv;
      const float* oblk = out + (bh * d.L + i0) * d.Dv;
      float* dqblk = dq + (bh * d.L + i0) * d.D;
      if (kend == 0) {
        std::fill(dqblk, dqblk + rows * d.D, 0.0f);
        continue;
      }
      float* s = scratch(size_t(2 * rows * kend));
      float* dp = s + rows * kend;
      t.gemm(rows, kend, d.D, scale, qblk, d.D, 1, ktb, d.S, s, kend, false);
      t.gemm(rows, kend, d.Dv, 1.0f, doblk, d.Dv, 1, vtb, d.S, dp, kend, false);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t i = i0 + r, n = d.visible(i, causal);
        float delta = t.dot(doblk + r * d.Dv, oblk + r * d.Dv, d.Dv);
        float* sr = s + r * kend;
        float* dpr = dp + r * kend;
        t.attn_bwd_row(sr, d.mask_row(mask, b, h, i), dpr, n, lse[bh * d.L + i], delta);
        std::fill(sr + n, sr + kend, 0.0f);
        std::fill(dpr + n, dpr + kend, 0.0f);
      }
      // dV += P^T dO ; dQ = scale dS K ; dK += scale dS^T Q
      t.gemm(kend, d.Dv, rows, 1.0f, s, 1, kend, doblk, d.Dv, dvh, d.Dv, true);
      t.gemm(rows, d.D, kend, scale, dp, kend, 1, kb, d.D, dqblk, d.D, false);
      t.gemm(kend, d.D, rows, scale, dp, 1, kend, qblk, d.D, dkh, d.D, true);
    }
  });
  // Reduce the partials over the GQA group and the chunks.
  const int64_t G = d.group(), parts = G * nchunks;
  for_tasks(d.B * d.Hkv, d.B * d.H * nchunks * d.S * (d.D + d.Dv), [&](int64_t bk) {
    int64_t b = bk / d.Hkv, hk = bk % d.Hkv;
    auto reduce = [&](const std::vector<float>& p, float* dst, int64_t width) {
      const int64_t n = d.S * width;
      const float* base = p.data() + ((b * d.H + hk * G) * nchunks) * n;  // heads hk*G .. hk*G+G-1
      std::copy(base, base + n, dst);
      for (int64_t x = 1; x < parts; ++x) {
        const float* src = base + x * n;
        for (int64_t e = 0; e < n; ++e) dst[e] += src[e];
      }
    };
    reduce(dkp, dk + bk * d.S * d.D, d.D);
    reduce(dvp, dv + bk * d.S * d.Dv, d.Dv);
  });
}

// Reference composition (MLX ops) used for the gradient with respect to the mask.
mx::array reference_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                              const std::optional<mx::array>& mask, mx::Stream s) {
  int G = q.shape(1) / k.shape(1);
  auto kr = G > 1 ? mx::repeat(k, G, 1, s) : k;
  auto vr = G > 1 ? mx::repeat(v, G, 1, s) : v;
  auto sc = mx::multiply(mx::matmul(q, mx::swapaxes(kr, -1, -2, s), s), mx::array(scale), s);
  if (mask) sc = mx::add(sc, *mask, s);
  int L = q.shape(2), S = k.shape(2);
  if (causal) {
    auto qi = mx::reshape(mx::arange(S - L, S, 1, mx::int32, s), {L, 1}, s);
    auto kj = mx::reshape(mx::arange(0, S, 1, mx::int32, s), {1, S}, s);
    sc = mx::where(mx::greater_equal(qi, kj, s), sc, mx::array(-std::numeric_limits<float>::infinity()), s);
  }
  auto mxv = mx::max(sc, -1, true, s);
  auto dead = mx::equal(mxv, mx::array(-std::numeric_limits<float>::infinity()), s);
  auto p = mx::softmax(mx::where(dead, mx::array(0.0f), sc, s), -1, true, s);
  p = mx::where(dead, mx::array(0.0f), p, s);
  return mx::matmul(p, vr, s);
}

// Checks the inputs, allocates the outputs, and returns weak copies of inputs then outputs for
// the dispatched task (the encoder keeps the buffers alive until it has run).
std::vector<mx::array> prepare_io(const std::vector<mx::array>& in, std::vector<mx::array>& outs, const char* name) {
  for (auto& a : in) require_row_contiguous(a, name);
  for (auto& o : outs) alloc_output(o);
  std::vector<mx::array> arrs;
  arrs.reserve(in.size() + outs.size());
  for (auto& a : in) arrs.push_back(mx::array::unsafe_weak_copy(a));
  for (auto& o : outs) arrs.push_back(mx::array::unsafe_weak_copy(o));
  return arrs;
}

class AttentionBackward : public mx::Primitive {
 public:
  AttentionBackward(mx::Stream s, float scale, bool causal, bool has_mask)
      : mx::Primitive(s), scale_(scale), causal_(causal), has_mask_(has_mask) {}
  // inputs: q, k, v, [mask], out, lse, dout; outputs: dq, dk, dv
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& outs) override {
    auto arrs = prepare_io(in, outs, "AttentionBackward");
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([arrs = std::move(arrs), t, scale = scale_, causal = causal_, has_mask = has_mask_]() mutable {
      Dims d = dims_of(arrs, has_mask);
      int m = has_mask ? 1 : 0;
      attention_backward(*t, d, scale, causal, arrs[0].data<float>(), arrs[1].data<float>(), arrs[2].data<float>(),
                         has_mask ? arrs[3].data<float>() : nullptr, arrs[3 + m].data<float>(),
                         arrs[4 + m].data<float>(), arrs[5 + m].data<float>(), arrs[6 + m].data<float>(),
                         arrs[7 + m].data<float>(), arrs[8 + m].data<float>());
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override { no_gpu("AttentionBackward"); }
  const char* name() const override { return "ValueAlignAttentionBackward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const AttentionBackward*>(&other);
    return o && o->scale_ == scale_ && o->causal_ == causal_ && o->has_mask_ == has_mask_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    return {in[0].shape(), in[1].shape(), in[2].shape()};
  }

 private:
  float scale_;
  bool causal_, has_mask_;
};

class AttentionForward : public mx::Primitive {
 public:
  AttentionForward(mx::Stream s, float scale, bool causal, bool has_mask)
      : mx::Primitive(s), scale_(scale), causal_(causal), has_mask_(has_mask) {}
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& outs) override {
    auto arrs = prepare_io(in, outs, "AttentionForward");
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([arrs = std::move(arrs), t, scale = scale_, causal = causal_, has_mask = has_mask_]() mutable {
      Dims d = dims_of(arrs, has_mask);
      int m = has_mask ? 1 : 0;
      attention_forward(*t, d, scale, causal, arrs[0].data<float>(), arrs[1].data<float>(), arrs[2].data<float>(),
                        has_mask ? arrs[3].data<float>() : nullptr, arrs[3 + m].data<float>(),
                        arrs[4 + m].data<float>());
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override { no_gpu("AttentionForward"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override {
    // The lse output is internal (attention() returns only `out`), so its cotangent is ignored.
    auto s = stream();
    auto dout = mx::contiguous(mx::astype(cotangents[0], mx::float32, s), false, s);
    std::vector<mx::array> in(primals.begin(), primals.end());
    in.push_back(outputs[0]);
    in.push_back(outputs[1]);
    in.push_back(dout);
    std::optional<std::vector<mx::array>> grads;
    std::vector<mx::array> res;
    for (int a : argnums) {
      if (a < 3) {
        if (!grads)
          grads = mx::array::make_arrays({primals[0].shape(), primals[1].shape(), primals[2].shape()},
                                         {mx::float32, mx::float32, mx::float32},
                                         std::make_shared<AttentionBackward>(s, scale_, causal_, has_mask_), in);
        res.push_back((*grads)[a]);
      } else {
        // Gradient with respect to the additive mask: rare, done by MLX ops on the composition.
        auto q = primals[0], k = primals[1], v = primals[2];
        float scale = scale_;
        bool causal = causal_;
        auto f = [=](const mx::array& m) { return reference_attention(q, k, v, scale, causal, m, s); };
        res.push_back(mx::vjp(f, primals[3], cotangents[0]).second);
      }
    }
    return res;
  }

  const char* name() const override { return "ValueAlignAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const AttentionForward*>(&other);
    return o && o->scale_ == scale_ && o->causal_ == causal_ && o->has_mask_ == has_mask_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    return {{in[0].shape(0), in[0].shape(1), in[0].shape(2), in[2].shape(3)},
            {in[0].shape(0), in[0].shape(1), in[0].shape(2)}};
  }

 private:
  float scale_;
  bool causal_, has_mask_;
};

std::string shape_str(const mx::Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + ")";
}

mx::array fallback(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                   const std::optional<mx::array>& mask) {
  if (!mask) return mx::fast::scaled_dot_product_attention(q, k, v, scale, causal ? "causal" : "", std::nullopt);
  if (!causal) return mx::fast::scaled_dot_product_attention(q, k, v, scale, "", *mask);
  int L = q.shape(-2), S = k.shape(-2);
  auto qi = mx::reshape(mx::arange(S - L, S, 1, mx::int32), {L, 1});
  auto kj = mx::reshape(mx::arange(0, S, 1, mx::int32), {1, S});
  auto keep = mx::greater_equal(qi, kj);
  mx::array m = mask->dtype() == mx::bool_
                    ? mx::logical_and(*mask, keep)
                    : mx::where(keep, *mask, mx::array(-std::numeric_limits<float>::infinity(), mask->dtype()));
  return mx::fast::scaled_dot_product_attention(q, k, v, scale, "", m);
}

}  // namespace

mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    const std::optional<mx::array>& mask) {
  auto s = cpu_stream();
  bool fast = s && q.dtype() == mx::float32 && k.dtype() == mx::float32 && v.dtype() == mx::float32 &&
              q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4 && (!mask || mask->ndim() <= 4) &&
              (!mask || mask->dtype() == mx::bool_ || mx::issubdtype(mask->dtype(), mx::floating));
  if (!fast) return fallback(q, k, v, scale, causal, mask);

  const int B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  const int Hkv = k.shape(1), S = k.shape(2);
  if (k.shape(0) != B || v.shape(0) != B || v.shape(1) != Hkv || v.shape(2) != S || k.shape(3) != D || Hkv == 0 ||
      H % Hkv != 0)
    throw std::invalid_argument("[kernels::attention] incompatible shapes q " + shape_str(q.shape()) + ", k " +
                                shape_str(k.shape()) + ", v " + shape_str(v.shape()));

  std::vector<mx::array> inputs = {mx::contiguous(q, false, *s), mx::contiguous(k, false, *s),
                                   mx::contiguous(v, false, *s)};
  if (mask) {
    mx::array m = *mask;
    if (m.dtype() == mx::bool_)
      m = mx::where(m, mx::array(0.0f), mx::array(-std::numeric_limits<float>::infinity()), *s);
    else if (m.dtype() != mx::float32)
      m = mx::astype(m, mx::float32, *s);
    mx::Shape ms = m.shape();
    while (ms.size() < 4) ms.insert(ms.begin(), 1);
    const int full[4] = {B, H, L, S};
    for (int i = 0; i < 4; ++i)
      if (ms[i] != 1 && ms[i] != full[i])
        throw std::invalid_argument("[kernels::attention] mask of shape " + shape_str(mask->shape()) +
                                    " does not broadcast to " + shape_str({B, H, L, S}));
    m = mx::reshape(m, ms, *s);
    m = mx::broadcast_to(m, {ms[0], ms[1], L, S}, *s);
    inputs.push_back(mx::contiguous(m, false, *s));
  }
  auto outs = mx::array::make_arrays({{B, H, L, int(v.shape(3))}, {B, H, L}}, {mx::float32, mx::float32},
                                     std::make_shared<AttentionForward>(*s, scale, causal, mask.has_value()), inputs);
  return outs[0];
}

}  // namespace valuealign::kernels
