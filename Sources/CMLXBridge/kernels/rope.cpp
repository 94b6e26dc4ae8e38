// Rotary position embedding as one MLX primitive (Rope) whose VJP is the inverse rotation.
//
// MLX's CPU build has no rope kernel: mx::fast::rope falls back to a composition of about twenty
// ops (arange, exp, cos, sin, strided slices, multiplies, concatenation) per call, twice per layer,
// in the forward pass and again in the backward pass. This primitive does it in one pass over x,
// with the angles computed once per call, and reads x through its strides (the transposed q/k
// views of attention need no copy).
//
// Semantics are MLX's: for x [..., L, D], position of row l is (offset + l) * scale, angle
// theta_i = position * base^(-i / (dims / 2)) for i < dims / 2; `traditional` rotates the pairs
// (2i, 2i + 1), otherwise (i, i + dims / 2); features past `dims` pass through unchanged.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int64_t kRowGrain = 256;  // rows per thread below which one thread does it all

class Rope : public mx::UnaryPrimitive {
 public:
  Rope(mx::Stream s, int dims, bool traditional, float base, float scale, int offset, bool inverse)
      : mx::UnaryPrimitive(s),
        dims_(dims),
        traditional_(traditional),
        base_(base),
        scale_(scale),
        offset_(offset),
        inverse_(inverse) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc_output(out);
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), y = mx::array::unsafe_weak_copy(out), dims = dims_,
                  traditional = traditional_, base = base_, scale = scale_, offset = offset_,
                  inverse = inverse_]() mutable {
      const int nd = int(x.ndim());
      const int64_t D = x.shape(-1), L = x.shape(-2);
      if (x.size() == 0) return;
      const int64_t half = dims / 2;
      // cos/sin table [L, half], as MLX computes it (float32 positions and inverse frequencies).
      std::vector<float> cs(size_t(L * half)), sn(size_t(L * half));
      const float log_base = std::log(base) / float(half);
      for (int64_t l = 0; l < L; ++l) {
        const float pos = float(offset + l) * scale;
        for (int64_t i = 0; i < half; ++i) {
          const float theta = pos * std::exp(-float(i) * log_base);
          cs[size_t(l * half + i)] = std::cos(theta);
          sn[size_t(l * half + i)] = inverse ? -std::sin(theta) : std::sin(theta);
        }
      }
      const float* src = x.data<float>();
      float* dst = y.data<float>();
      const int64_t rows = int64_t(x.size()) / D;
      const auto& st = x.strides();
      const int64_t sd = st[size_t(nd - 1)];
      const bool contiguous = x.flags().row_contiguous;
      parallel_range(rows, kRowGrain, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          // Offset of row r in x, from its multi-index over the leading axes.
          int64_t off = 0;
          if (contiguous) {
            off = r * D;
          } else {
            int64_t rem = r;
            for (int d = nd - 2; d >= 0; --d) {
              const int64_t n = x.shape(d);
              off += (rem % n) * int64_t(st[size_t(d)]);
              rem /= n;
            }
          }
          const int64_t l = r % L;
          const float* xr = src + off;
          float* yr = dst + r * D;
          const float* c = cs.data() + l * half;
          const float* s = sn.data() + l * half;
          if (traditional) {
            for (int64_t i = 0; i < half; ++i) {
              const float a = xr[(2 * i) * sd], b = xr[(2 * i + 1) * sd];
              yr[2 * i] = a * c[i] - b * s[i];
              yr[2 * i + 1] = a * s[i] + b * c[i];
            }
          } else {
            for (int64_t i = 0; i < half; ++i) {
              const float a = xr[i * sd], b = xr[(i + half) * sd];
              yr[i] = a * c[i] - b * s[i];
              yr[i + half] = a * s[i] + b * c[i];
            }
          }
          for (int64_t k = 2 * half; k < D; ++k) yr[k] = xr[k * sd];
        }
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("Rope"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>&, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    // The rotation is orthogonal: its transpose is the rotation by -theta.
    auto c = mx::astype(cotangents[0], mx::float32, stream());
    std::vector<mx::array> res;
    for (size_t i = 0; i < argnums.size(); ++i)
      res.push_back(mx::array(c.shape(), mx::float32,
                              std::make_shared<Rope>(stream(), dims_, traditional_, base_, scale_, offset_, !inverse_),
                              {c}));
    return res;
  }

  std::vector<mx::array> jvp(const std::vector<mx::array>&, const std::vector<mx::array>& tangents,
                             const std::vector<int>&) override {
    auto t = mx::astype(tangents[0], mx::float32, stream());
    return {mx::array(t.shape(), mx::float32,
                      std::make_shared<Rope>(stream(), dims_, traditional_, base_, scale_, offset_, inverse_), {t})};
  }

  const char* name() const override { return "ValueAlignRope"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const Rope*>(&other);
    return o && o->dims_ == dims_ && o->traditional_ == traditional_ && o->base_ == base_ && o->scale_ == scale_ &&
           o->offset_ == offset_ && o->inverse_ == inverse_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }

 private:
  int dims_;
  bool traditional_;
  float base_;
  float scale_;
  int offset_;
  bool inverse_;
};

}  // namespace

mx::array rope(const mx::array& x, int dims, bool traditional, float base, float scale, int offset) {
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32 || x.ndim() < 2 || dims <= 0 || dims % 2 != 0 || dims > x.shape(-1))
    return mx::fast::rope(x, dims, traditional, base, scale, offset);
  return mx::array(x.shape(), mx::float32, std::make_shared<Rope>(*s, dims, traditional, base, scale, offset, false),
                   {x});
}

}  // namespace valuealign::kernels
