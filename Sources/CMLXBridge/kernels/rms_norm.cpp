// RMSNorm over the last axis as an MLX primitive (RMSNormRows) with its input gradient as a second
// primitive (RMSNormRowsVJP). MLX's CPU backend runs mlx::core::fast::rms_norm as its fallback
// graph, about six single-threaded element-wise ops and reductions forward and more backward; here
// each direction is one vectorised pass over the rows, split across the kernel threads. (No JVP or
// vmap: the Swift API has neither transform.)
#include <algorithm>
#include <cmath>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

// Rows per thread below which one thread does it all (a row is ~H = 576 floats).
constexpr int64_t kGrainElements = 32768;

int64_t grain_rows(int64_t h) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(h, 1)); }

class RMSNormRowsVJP : public mx::UnaryPrimitive {
 public:
  RMSNormRowsVJP(mx::Stream s, float eps) : mx::UnaryPrimitive(s), eps_(eps) {}
  // inputs: x [..., H], w [H], cotangent [..., H]; output dx.
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (auto& a : in) require_row_contiguous(a, "RMSNormRowsVJP");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (auto& a : in) enc.set_input_array(a);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), w = mx::array::unsafe_weak_copy(in[1]),
                  g = mx::array::unsafe_weak_copy(in[2]), dx = mx::array::unsafe_weak_copy(out), t, eps = eps_]() mutable {
      const int64_t h = x.shape(-1), rows = h == 0 ? 0 : int64_t(x.size()) / h;
      const float *xp = x.data<float>(), *wp = w.data<float>(), *gp = g.data<float>();
      float* dp = dx.data<float>();
      parallel_range(rows, grain_rows(h), 1, [&](int64_t r0, int64_t r1) {
        t->rms_norm_bwd_rows(xp + r0 * h, wp, gp + r0 * h, dp + r0 * h, r1 - r0, h, eps);
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("RMSNormRowsVJP"); }
  const char* name() const override { return "ValueAlignRMSNormRowsVJP"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const RMSNormRowsVJP*>(&other);
    return o && o->eps_ == eps_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }

 private:
  float eps_;
};

// 1 / sqrt(mean(x^2) + eps) over the last axis, kept for broadcasting (MLX ops, for the weight's
// gradient: LoRA training freezes the norms).
mx::array inverse_rms(const mx::array& x, float eps, mx::Stream s) {
  return mx::rsqrt(mx::add(mx::mean(mx::square(x, s), -1, true, s), mx::array(eps), s), s);
}

class RMSNormRows : public mx::UnaryPrimitive {
 public:
  RMSNormRows(mx::Stream s, float eps) : mx::UnaryPrimitive(s), eps_(eps) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "RMSNormRows");
    require_row_contiguous(in[1], "RMSNormRows");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in[0]);
    enc.set_input_array(in[1]);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), w = mx::array::unsafe_weak_copy(in[1]),
                  y = mx::array::unsafe_weak_copy(out), t, eps = eps_]() mutable {
      const int64_t h = x.shape(-1), rows = h == 0 ? 0 : int64_t(x.size()) / h;
      const float *xp = x.data<float>(), *wp = w.data<float>();
      float* yp = y.data<float>();
      parallel_range(rows, grain_rows(h), 1,
                     [&](int64_t r0, int64_t r1) { t->rms_norm_rows(xp + r0 * h, wp, yp + r0 * h, r1 - r0, h, eps); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("RMSNormRows"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    auto s = stream();
    const auto& x = primals[0];
    const auto& w = primals[1];
    auto g = mx::contiguous(mx::astype(cotangents[0], mx::float32, s), false, s);
    std::vector<mx::array> res;
    for (int a : argnums) {
      if (a == 0) {
        res.push_back(mx::array(x.shape(), mx::float32, std::make_shared<RMSNormRowsVJP>(s, eps_), {x, w, g}));
      } else {
        // dw = the sum over rows of g * x * r.
        auto gx = mx::multiply(mx::multiply(g, x, s), inverse_rms(x, eps_, s), s);
        res.push_back(mx::reshape(mx::sum(mx::reshape(gx, {-1, x.shape(-1)}, s), 0, false, s), w.shape(), s));
      }
    }
    return res;
  }

  const char* name() const override { return "ValueAlignRMSNormRows"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const RMSNormRows*>(&other);
    return o && o->eps_ == eps_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }

 private:
  float eps_;
};

}  // namespace

mx::array rms_norm(const mx::array& x, const std::optional<mx::array>& weight, float eps) {
  auto s = cpu_stream();
  if (!s || !weight || x.ndim() == 0 || x.dtype() != mx::float32 || weight->dtype() != mx::float32 ||
      weight->ndim() != 1 || weight->shape(0) != x.shape(-1))
    return mx::fast::rms_norm(x, weight, eps);
  auto xc = mx::contiguous(x, false, *s);
  auto wc = mx::contiguous(*weight, false, *s);
  return mx::array(x.shape(), mx::float32, std::make_shared<RMSNormRows>(*s, eps), {xc, wc});
}

}  // namespace valuealign::kernels
