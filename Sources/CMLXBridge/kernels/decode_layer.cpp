// One Llama decoder layer for one new token per sequence, as a single MLX primitive (DecodeLayer).
//
// A decode step through MLX's ops costs ~25 graph nodes per layer (norms, projections, slices,
// reshapes, transposes, rope, cache writes, attention, residuals), each scheduled and run on the
// stream thread; at SmolLM2's size that bookkeeping, not arithmetic, decides a token's time. This
// primitive runs the whole layer in one task over raw buffers, with the packed-weight kernel
// (QmmArgs) for the four projections:
//
//   h = rmsnorm(x) * w_in;  q, k, v = h Wqkv^T (+ bias);  rope(q, k) at position `offset`;
//   cache[:, :, offset] = k, v;  a = softmax(scale q K^T + mask) V over positions [0, offset];
//   x1 = x + a Wo^T;  y = x1 + (silu(g) * u) Wdown^T  with  g, u = rmsnorm(x1) * w_post Wgu^T.
//
// Inputs: x [B, 1, H]; w_in, w_post [H]; then four packed weights, each (w uint32, scales, biases)
// in MLX's affine layout: qkv [Hq*D + 2*Hkv*D, .] (q, k and v fused along outputs), o [H, .],
// gate_up [2*I, .] (gate rows, then up rows), down [H, .]; the caches k and v [B, Hkv, cap, D]
// (cap > offset); optionally the qkv bias [Hq*D + 2*Hkv*D] and an additive mask [B or 1, cap]
// (left padding); then, for each projection (q, k, v, o, gate, up, down) marked in has_lora, a
// low-rank update of its output y += (x At) Bt with At [in, R] and Bt [R, out] float32 (a LoRA
// adapter: A^T and scale * B^T). Outputs: y [B, 1, H] and the caches with position `offset` written. A cache
// input that nobody else holds is updated in place (its buffer is donated to the output), as
// MLX's slice_update does; otherwise it is copied first.
//
// Inference only: asking for a gradient throws. Semantics match the op-by-op layer in
// LanguageModels (Llama.swift), which the tests compare against.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

// Attention multiply-adds below which one thread does all heads (waking the pool costs more).
constexpr int64_t kSerialAttention = int64_t(1) << 16;
// Low-rank update multiply-adds (of x At Bt's second product) below which one thread does it.
constexpr int64_t kSerialLowRank = int64_t(1) << 18;

enum Input : int {
  kX = 0,
  kNormIn,
  kNormPost,
  kQkvW,
  kQkvS,
  kQkvB,
  kOW,
  kOS,
  kOB,
  kGuW,
  kGuS,
  kGuB,
  kDownW,
  kDownS,
  kDownB,
  kKeys,
  kValues,
  kFixedInputs
};

struct Packed {
  const uint8_t* w;
  const void* scales;
  const void* biases;
  bool half;
  int64_t N, K;
};

// y[M, N] = x[M, K] · dequantize(W)^T, columns split over the pool.
void packed_matmul(const Table* t, const Packed& p, int group, int bits, const float* x, int64_t M, float* y,
                   std::vector<float>& xp) {
  if (xp.size() < size_t(M * p.K)) xp.resize(size_t(M * p.K));
  t->qmm_pack_x(x, xp.data(), M, p.K, bits);
  QmmArgs a;
  a.xp = xp.data();
  a.M = M;
  a.N = p.N;
  a.K = p.K;
  a.w = p.w;
  a.scales = p.scales;
  a.biases = p.biases;
  a.half = p.half;
  a.group = group;
  a.bits = bits;
  a.y = y;
  qmm_parallel(*t, a);
}

Packed packed_of(const mx::array& w, const mx::array& s, const mx::array& b, int bits) {
  Packed p;
  p.w = reinterpret_cast<const uint8_t*>(w.data<uint32_t>());
  p.scales = s.data<void>();
  p.biases = b.data<void>();
  p.half = s.dtype() == mx::float16;
  p.N = w.shape(0);
  p.K = int64_t(w.shape(1)) * 32 / bits;
  return p;
}

// dst = the elements of a float32 array of any strides, in row-major order.
void strided_copy(const mx::array& a, float* dst) {
  const float* src = a.data<float>();
  if (a.flags().row_contiguous) {
    std::memcpy(dst, src, a.nbytes());
    return;
  }
  const int nd = int(a.ndim());
  for (size_t i = 0; i < a.size(); ++i) {
    int64_t rem = int64_t(i), off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      off += (rem % a.shape(d)) * int64_t(a.strides()[size_t(d)]);
      rem /= a.shape(d);
    }
    dst[i] = src[off];
  }
}

// y[M, N] (rows at stride ldy) += (x[M, K] At[K, R]) Bt[R, N]: a LoRA update (scale folded into
// Bt). The first product is small (R is a few ranks); the second is split over the pool by output
// columns when large.
void low_rank_add(const Table* t, const float* x, int64_t M, int64_t K, const mx::array& At, const mx::array& Bt,
                  float* y, int64_t ldy, std::vector<float>& tmp) {
  const int64_t R = At.shape(1), N = Bt.shape(1);
  if (tmp.size() < size_t(M * R)) tmp.resize(size_t(M * R));
  float* xa = tmp.data();
  t->gemm(M, R, K, 1.0f, x, K, 1, At.data<float>(), R, xa, R, false);
  const float* b = Bt.data<float>();
  if (M * N * R < kSerialLowRank) {
    t->gemm(M, N, R, 1.0f, xa, R, 1, b, N, y, ldy, true);
    return;
  }
  parallel_range(N, 64, 16, [&](int64_t n0, int64_t n1) {
    t->gemm(M, n1 - n0, R, 1.0f, xa, R, 1, b + n0, N, y + n0, ldy, true);
  });
}

thread_local std::vector<float> t_x, t_xp, t_h, t_qkv, t_att, t_x1, t_gu, t_act, t_scores, t_lora;

}  // namespace

class DecodeLayer : public mx::Primitive {
 public:
  DecodeLayer(mx::Stream s, DecodeLayerSpec spec) : mx::Primitive(s), spec_(std::move(spec)) {}

  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (int i = kNormIn; i < int(in.size()); ++i)
      if (i != kKeys && i != kValues) require_row_contiguous(in[size_t(i)], "DecodeLayer");
    alloc_output(out[0]);
    // The caches: take over the input's buffer when nobody else holds it, else copy.
    bool copy = false;
    for (int c = 0; c < 2; ++c) {
      const mx::array& src = in[size_t(kKeys + c)];
      mx::array& dst = out[size_t(1 + c)];
      // MLX's is_donatable() also asks that no other array object refers to the input; a
      // multi-output primitive's outputs each hold their inputs, so that never holds here. What
      // matters is the buffer: when no other array shares it, writing position `offset` cannot
      // change anything another array reads (positions below `offset` are left as they are).
      if (src.data_shared_ptr().use_count() == 1 && src.data_shared_ptr()->is_owned() && src.flags().row_contiguous &&
          src.data_size() == src.size()) {
        dst.copy_shared_buffer(src);
      } else {
        alloc_output(dst);
        copy = true;
      }
    }
    const Table* t = &table();
    std::vector<mx::array> args;
    args.reserve(in.size() + 3);
    for (auto& a : in) args.push_back(mx::array::unsafe_weak_copy(a));
    for (auto& a : out) args.push_back(mx::array::unsafe_weak_copy(a));
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([args = std::move(args), n_in = in.size(), spec = spec_, t, copy]() mutable {
      run(args, n_in, spec, t, copy);
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override { no_gpu("DecodeLayer"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>&, const std::vector<mx::array>&, const std::vector<int>&,
                             const std::vector<mx::array>&) override {
    throw std::invalid_argument("[decode_layer] inference only: it has no gradient");
  }

  const char* name() const override { return "ValueAlignDecodeLayer"; }
  bool is_equivalent(const mx::Primitive& /*other*/) const override { return false; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    return {in[kX].shape(), in[kKeys].shape(), in[kValues].shape()};
  }

 private:
  static void run(std::vector<mx::array>& a, size_t n_in, const DecodeLayerSpec& sp, const Table* t, bool copy) {
    const mx::array& x = a[kX];
    mx::array& y = a[n_in];
    mx::array& kc = a[n_in + 1];
    mx::array& vc = a[n_in + 2];
    if (copy) {
      strided_copy(a[kKeys], kc.data<float>());
      strided_copy(a[kValues], vc.data<float>());
    }
    const float* bias = sp.has_bias ? a[kFixedInputs].data<float>() : nullptr;
    const float* mask = sp.has_mask ? a[kFixedInputs + (sp.has_bias ? 1 : 0)].data<float>() : nullptr;
    const int64_t mask_rows = sp.has_mask ? a[kFixedInputs + (sp.has_bias ? 1 : 0)].shape(0) : 0;
    // The low-rank updates' (At, Bt) inputs, by projection; null where there is none.
    const mx::array* lora[7][2] = {};
    {
      size_t next = size_t(kFixedInputs) + (sp.has_bias ? 1 : 0) + (sp.has_mask ? 1 : 0);
      for (int p = 0; p < 7; ++p)
        if (sp.has_lora[p]) {
          lora[p][0] = &a[next++];
          lora[p][1] = &a[next++];
        }
    }
    // Projection p's update, reading its input rows `in` [M, K] and adding into its output columns
    // (out, rows at stride ldo).
    auto update = [&](int p, const float* in, int64_t M, int64_t K, float* out, int64_t ldo) {
      if (lora[p][0]) low_rank_add(t, in, M, K, *lora[p][0], *lora[p][1], out, ldo, t_lora);
    };

    const int64_t H = x.shape(-1), M = int64_t(x.size()) / H;
    const int64_t Hq = sp.heads, Hkv = sp.kv_heads, D = sp.head_dim, cap = kc.shape(2);
    const int64_t qw = Hq * D, kw = Hkv * D, nqkv = qw + 2 * kw;
    const int64_t pos = sp.offset, S = pos + 1;
    const Packed qkv = packed_of(a[kQkvW], a[kQkvS], a[kQkvB], sp.bits[0]);
    const Packed o = packed_of(a[kOW], a[kOS], a[kOB], sp.bits[1]);
    const Packed gu = packed_of(a[kGuW], a[kGuS], a[kGuB], sp.bits[2]);
    const Packed dn = packed_of(a[kDownW], a[kDownS], a[kDownB], sp.bits[3]);
    const int64_t I = gu.N / 2;

    auto grow = [](std::vector<float>& v, int64_t n) {
      if (v.size() < size_t(n)) v.resize(size_t(n));
      return v.data();
    };
    float* h = grow(t_h, M * H);
    float* qkvb = grow(t_qkv, M * nqkv);
    float* att = grow(t_att, M * qw);
    float* x1 = grow(t_x1, M * H);
    float* gub = grow(t_gu, M * 2 * I);
    float* act = grow(t_act, M * I);
    const float* xs = x.data<float>();
    if (!x.flags().row_contiguous) {
      strided_copy(x, grow(t_x, M * H));
      xs = t_x.data();
    }

    // Attention block.
    t->rms_norm_rows(xs, a[kNormIn].data<float>(), h, M, H, sp.eps);
    packed_matmul(t, qkv, sp.groups[0], sp.bits[0], h, M, qkvb, t_xp);
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t j = 0; j < nqkv; ++j) qkvb[m * nqkv + j] += bias[j];
    update(0, h, M, H, qkvb, nqkv);
    update(1, h, M, H, qkvb + qw, nqkv);
    update(2, h, M, H, qkvb + qw + kw, nqkv);

    // Rotary embedding of q and k at position `pos`.
    const int64_t half = sp.rope_dims / 2;
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    {
      const float p = float(pos) * sp.rope_scale, lb = std::log(sp.rope_base) / float(half);
      for (int64_t i = 0; i < half; ++i) {
        const float theta = p * std::exp(-float(i) * lb);
        cs[size_t(i)] = std::cos(theta);
        sn[size_t(i)] = std::sin(theta);
      }
    }
    auto rotate = [&](float* v) {
      if (sp.traditional) {
        for (int64_t i = 0; i < half; ++i) {
          const float p0 = v[2 * i], p1 = v[2 * i + 1];
          v[2 * i] = p0 * cs[size_t(i)] - p1 * sn[size_t(i)];
          v[2 * i + 1] = p0 * sn[size_t(i)] + p1 * cs[size_t(i)];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          const float p0 = v[i], p1 = v[i + half];
          v[i] = p0 * cs[size_t(i)] - p1 * sn[size_t(i)];
          v[i + half] = p0 * sn[size_t(i)] + p1 * cs[size_t(i)];
        }
      }
    };
    float* kcp = kc.data<float>();
    float* vcp = vc.data<float>();
    for (int64_t m = 0; m < M; ++m) {
      float* row = qkvb + m * nqkv;
      for (int64_t hq = 0; hq < Hq; ++hq) rotate(row + hq * D);
      for (int64_t hk = 0; hk < Hkv; ++hk) {
        rotate(row + qw + hk * D);
        const int64_t at = ((m * Hkv + hk) * cap + pos) * D;
        std::memcpy(kcp + at, row + qw + hk * D, size_t(D) * sizeof(float));
        std::memcpy(vcp + at, row + qw + kw + hk * D, size_t(D) * sizeof(float));
      }
    }

    // softmax(scale q K^T + mask) V per (row, head) over positions [0, S). One task per (row, kv
    // head) covers the query heads that share it (their keys and values are read once), unless
    // that leaves too few tasks for the pool (a single row).
    const int64_t group = Hq / Hkv;
    const int64_t per_task = M * Hkv >= 8 ? group : 1;
    auto attend = [&](int64_t task, float* scores) {
      const int64_t m = task / (Hq / per_task), hq = (task % (Hq / per_task)) * per_task, hk = hq / group;
      const float* mrow = mask ? mask + (mask_rows == 1 ? 0 : m) * cap : nullptr;
      t->attn_decode(qkvb + m * nqkv + hq * D, per_task, D, kcp + (m * Hkv + hk) * cap * D,
                     vcp + (m * Hkv + hk) * cap * D, S, D, sp.attn_scale, mrow, att + m * qw + hq * D, D, scores);
    };
    const int64_t tasks = M * Hq / per_task;
    if (M * Hq * S * D * 2 < kSerialAttention) {
      float* scores = grow(t_scores, S);
      for (int64_t i = 0; i < tasks; ++i) attend(i, scores);
    } else {
      parallel_for(tasks, [&](int64_t i) { attend(i, grow(t_scores, S)); });
    }

    packed_matmul(t, o, sp.groups[1], sp.bits[1], att, M, x1, t_xp);
    update(3, att, M, qw, x1, H);
    for (int64_t i = 0; i < M * H; ++i) x1[i] += xs[i];

    // MLP block.
    t->rms_norm_rows(x1, a[kNormPost].data<float>(), h, M, H, sp.eps);
    packed_matmul(t, gu, sp.groups[2], sp.bits[2], h, M, gub, t_xp);
    update(4, h, M, H, gub, 2 * I);
    update(5, h, M, H, gub + I, 2 * I);
    for (int64_t m = 0; m < M; ++m) t->silu_gate_fwd(gub + m * 2 * I, gub + m * 2 * I + I, act + m * I, I);
    float* ys = y.data<float>();
    packed_matmul(t, dn, sp.groups[3], sp.bits[3], act, M, ys, t_xp);
    update(6, act, M, I, ys, H);
    for (int64_t i = 0; i < M * H; ++i) ys[i] += x1[i];
  }

  DecodeLayerSpec spec_;
};

std::vector<mx::array> decode_layer(const DecodeLayerSpec& spec, const std::vector<mx::array>& inputs) {
  auto s = cpu_stream();
  if (!s) throw std::invalid_argument("[decode_layer] runs on the CPU only");
  size_t expected = size_t(kFixedInputs) + (spec.has_bias ? 1 : 0) + (spec.has_mask ? 1 : 0);
  for (bool l : spec.has_lora) expected += l ? 2 : 0;
  if (inputs.size() != expected)
    throw std::invalid_argument("[decode_layer] expected " + std::to_string(expected) + " inputs, got " +
                                std::to_string(inputs.size()));
  const auto& x = inputs[kX];
  const auto& kc = inputs[kKeys];
  const auto& vc = inputs[kValues];
  if (x.dtype() != mx::float32 || x.ndim() != 3 || x.shape(1) != 1)
    throw std::invalid_argument("[decode_layer] x must be float32 [B, 1, H]");
  const int B = x.shape(0), H = x.shape(2), D = spec.head_dim;
  if (spec.heads <= 0 || spec.kv_heads <= 0 || spec.heads % spec.kv_heads != 0 || D <= 0 ||
      spec.rope_dims <= 0 || spec.rope_dims % 2 != 0 || spec.rope_dims > D || spec.offset < 0)
    throw std::invalid_argument("[decode_layer] invalid head counts, head size, rope dimensions or offset");
  for (const auto* c : {&kc, &vc})
    if (c->dtype() != mx::float32 || c->ndim() != 4 || c->shape(0) != B || c->shape(1) != spec.kv_heads ||
        c->shape(3) != D || c->shape(2) <= spec.offset)
      throw std::invalid_argument("[decode_layer] caches must be float32 [B, kvHeads, capacity > offset, headDim]");
  const int64_t nqkv = int64_t(spec.heads + 2 * spec.kv_heads) * D;
  const int64_t widths[4] = {nqkv, H, -1, H};
  const int64_t ins[4] = {H, int64_t(spec.heads) * D, H, -1};
  int64_t inter = -1;
  for (int p = 0; p < 4; ++p) {
    const auto& w = inputs[size_t(kQkvW + 3 * p)];
    const auto& sc = inputs[size_t(kQkvS + 3 * p)];
    const auto& bi = inputs[size_t(kQkvB + 3 * p)];
    const int bits = spec.bits[p], group = spec.groups[p];
    if ((bits != 4 && bits != 8) || (group != 32 && group != 64 && group != 128))
      throw std::invalid_argument("[decode_layer] packed weights must have 4 or 8 bits in groups of 32, 64 or 128");
    if (w.dtype() != mx::uint32 || w.ndim() != 2 || sc.ndim() != 2 || sc.shape() != bi.shape() ||
        sc.dtype() != bi.dtype() || (sc.dtype() != mx::float16 && sc.dtype() != mx::float32))
      throw std::invalid_argument("[decode_layer] packed weight " + std::to_string(p) +
                                  ": uint32 codes with float16 or float32 scales and biases of one shape");
    const int64_t N = w.shape(0), K = int64_t(w.shape(1)) * 32 / bits;
    if (sc.shape(0) != N || K % group != 0 || sc.shape(1) != K / group)
      throw std::invalid_argument("[decode_layer] packed weight " + std::to_string(p) + ": scales do not match");
    if (p == 2) {
      if (N % 2 != 0 || K != H) throw std::invalid_argument("[decode_layer] gate_up must be [2 * I, H]");
      inter = N / 2;
    } else if (N != widths[p] || K != (p == 3 ? inter : ins[p])) {
      throw std::invalid_argument("[decode_layer] packed weight " + std::to_string(p) + " has shape [" +
                                  std::to_string(N) + ", " + std::to_string(K) + "], not what the layer needs");
    }
  }
  for (int n : {int(kNormIn), int(kNormPost)})
    if (inputs[size_t(n)].dtype() != mx::float32 || inputs[size_t(n)].size() != size_t(H))
      throw std::invalid_argument("[decode_layer] norm weights must be float32 [H]");
  size_t next = kFixedInputs;
  if (spec.has_bias && (inputs[next].dtype() != mx::float32 || int64_t(inputs[next++].size()) != nqkv))
    throw std::invalid_argument("[decode_layer] qkv bias must be float32 [(heads + 2 kvHeads) headDim]");
  if (spec.has_mask) {
    const auto& m = inputs[next];
    if (m.dtype() != mx::float32 || m.ndim() != 2 || (m.shape(0) != 1 && m.shape(0) != B) ||
        m.shape(1) != kc.shape(2))
      throw std::invalid_argument("[decode_layer] mask must be float32 [B or 1, capacity]");
    ++next;
  }
  {
    static const char* names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    const int64_t qw = int64_t(spec.heads) * D, kw = int64_t(spec.kv_heads) * D;
    const int64_t lk[7] = {H, H, H, qw, H, H, inter}, ln[7] = {qw, kw, kw, H, inter, inter, H};
    for (int g = 0; g < 7; ++g) {
      if (!spec.has_lora[g]) continue;
      const auto& at = inputs[next++];
      const auto& bt = inputs[next++];
      if (at.dtype() != mx::float32 || bt.dtype() != mx::float32 || at.ndim() != 2 || bt.ndim() != 2 ||
          at.shape(1) < 1 || at.shape(0) != lk[g] || bt.shape(0) != at.shape(1) || bt.shape(1) != ln[g])
        throw std::invalid_argument(std::string("[decode_layer] low-rank update of ") + names[g] +
                                    " must be float32 At [" + std::to_string(lk[g]) + ", R] and Bt [R, " +
                                    std::to_string(ln[g]) + "]");
    }
  }
  // Weights are usually evaluated and contiguous already; anything else gets a contiguous copy.
  std::vector<mx::array> ins_c;
  ins_c.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& a = inputs[i];
    const bool ready = a.status() != mx::array::Status::unscheduled && a.flags().row_contiguous;
    ins_c.push_back(i == size_t(kX) || i == size_t(kKeys) || i == size_t(kValues) || ready
                        ? a
                        : mx::contiguous(a, false, *s));
  }
  return mx::array::make_arrays({x.shape(), kc.shape(), vc.shape()}, {mx::float32, mx::float32, mx::float32},
                                std::make_shared<DecodeLayer>(*s, spec), ins_c);
}

}  // namespace valuealign::kernels
