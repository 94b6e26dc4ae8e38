// silu(gate) * up as an MLX primitive (SiluGate) with its VJP as a second primitive
// (SiluGateVJP: dgate and dup in one pass); and the same on one array holding gate and up as the
// two halves of each row (SiluGateHalves, the output of a fused gate/up projection), whose VJP
// writes both halves' gradients into one array (no split and no concatenation).
#include <algorithm>
#include <stdexcept>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int64_t kGrain = 16384;  // elements per thread below which one thread does it all

class SiluGateVJP : public mx::Primitive {
 public:
  explicit SiluGateVJP(mx::Stream s) : mx::Primitive(s) {}
  // inputs: gate, up, cotangent; outputs: dgate, dup
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& out) override {
    for (auto& a : in) require_row_contiguous(a, "SiluGateVJP");
    for (auto& o : out) alloc_output(o);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([g = mx::array::unsafe_weak_copy(in[0]), u = mx::array::unsafe_weak_copy(in[1]),
                  c = mx::array::unsafe_weak_copy(in[2]), dg = mx::array::unsafe_weak_copy(out[0]),
                  du = mx::array::unsafe_weak_copy(out[1]), t]() mutable {
      const float *gp = g.data<float>(), *up = u.data<float>(), *cp = c.data<float>();
      float *dgp = dg.data<float>(), *dup = du.data<float>();
      parallel_range(int64_t(g.size()), kGrain, 64, [&](int64_t b, int64_t e) {
        t->silu_gate_bwd(gp + b, up + b, cp + b, dgp + b, dup + b, e - b);
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override { no_gpu("SiluGateVJP"); }
  const char* name() const override { return "ValueAlignSiluGateVJP"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SiluGateVJP*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    return {in[0].shape(), in[0].shape()};
  }
};

class SiluGate : public mx::UnaryPrimitive {
 public:
  explicit SiluGate(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "SiluGate");
    require_row_contiguous(in[1], "SiluGate");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([g = mx::array::unsafe_weak_copy(in[0]), u = mx::array::unsafe_weak_copy(in[1]),
                  y = mx::array::unsafe_weak_copy(out), t]() mutable {
      const float *gp = g.data<float>(), *up = u.data<float>();
      float* yp = y.data<float>();
      parallel_range(int64_t(g.size()), kGrain, 64,
                     [&](int64_t b, int64_t e) { t->silu_gate_fwd(gp + b, up + b, yp + b, e - b); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("SiluGate"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    auto c = mx::contiguous(mx::astype(cotangents[0], mx::float32, stream()), false, stream());
    auto grads = mx::array::make_arrays({primals[0].shape(), primals[0].shape()}, {mx::float32, mx::float32},
                                        std::make_shared<SiluGateVJP>(stream()), {primals[0], primals[1], c});
    std::vector<mx::array> res;
    for (int a : argnums) res.push_back(grads[a]);
    return res;
  }

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override {
    // d(silu(g) u) = dsilu(g) u tg + silu(g) tu, with dsilu(g) = s (1 + g (1 - s)).
    auto st = stream();
    const auto& g = primals[0];
    const auto& u = primals[1];
    auto s = mx::sigmoid(g, st);
    auto one = mx::array(1.0f);
    std::optional<mx::array> out;
    for (size_t i = 0; i < argnums.size(); ++i) {
      mx::array term = mx::multiply(mx::multiply(g, s, st), tangents[i], st);  // argnum 1 (up)
      if (argnums[i] == 0) {
        auto dsilu = mx::multiply(s, mx::add(one, mx::multiply(g, mx::subtract(one, s, st), st), st), st);
        term = mx::multiply(mx::multiply(dsilu, u, st), tangents[i], st);
      }
      out = out ? mx::add(*out, term, st) : term;
    }
    return {*out};
  }

  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                          const std::vector<int>& axes) override {
    // Element-wise: move both vmapped axes to the front (broadcasting an unmapped input).
    auto g = inputs[0], u = inputs[1];
    if (axes[0] >= 0) g = mx::moveaxis(g, axes[0], 0, stream());
    if (axes[1] >= 0) u = mx::moveaxis(u, axes[1], 0, stream());
    if (axes[0] < 0) g = mx::broadcast_to(mx::expand_dims(g, 0, stream()), u.shape(), stream());
    if (axes[1] < 0) u = mx::broadcast_to(mx::expand_dims(u, 0, stream()), g.shape(), stream());
    return {{silu_gate(g, u)}, {0}};
  }

  const char* name() const override { return "ValueAlignSiluGate"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SiluGate*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }
};

// Rows of x [..., 2N]: gate = the first N values, up = the last N; y [..., N].
class SiluGateHalvesVJP : public mx::UnaryPrimitive {
 public:
  explicit SiluGateHalvesVJP(mx::Stream s) : mx::UnaryPrimitive(s) {}
  // inputs: x [..., 2N], cotangent [..., N]; output dx [..., 2N].
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (auto& a : in) require_row_contiguous(a, "SiluGateHalvesVJP");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in[0]);
    enc.set_input_array(in[1]);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), c = mx::array::unsafe_weak_copy(in[1]),
                  dx = mx::array::unsafe_weak_copy(out), t]() mutable {
      const int64_t n = c.shape(-1), rows = n == 0 ? 0 : int64_t(c.size()) / n;
      const float *xp = x.data<float>(), *cp = c.data<float>();
      float* dp = dx.data<float>();
      parallel_range(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* xr = xp + r * 2 * n;
          float* dr = dp + r * 2 * n;
          t->silu_gate_bwd(xr, xr + n, cp + r * n, dr, dr + n, n);
        }
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("SiluGateHalvesVJP"); }
  const char* name() const override { return "ValueAlignSiluGateHalvesVJP"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SiluGateHalvesVJP*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }
};

class SiluGateHalves : public mx::UnaryPrimitive {
 public:
  explicit SiluGateHalves(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "SiluGateHalves");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in[0]);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), y = mx::array::unsafe_weak_copy(out), t]() mutable {
      const int64_t n = y.shape(-1), rows = n == 0 ? 0 : int64_t(y.size()) / n;
      const float* xp = x.data<float>();
      float* yp = y.data<float>();
      parallel_range(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) t->silu_gate_fwd(xp + r * 2 * n, xp + r * 2 * n + n, yp + r * n, n);
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("SiluGateHalves"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>&, const std::vector<mx::array>&) override {
    auto c = mx::contiguous(mx::astype(cotangents[0], mx::float32, stream()), false, stream());
    return {mx::array(primals[0].shape(), mx::float32, std::make_shared<SiluGateHalvesVJP>(stream()), {primals[0], c})};
  }

  const char* name() const override { return "ValueAlignSiluGateHalves"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SiluGateHalves*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    auto shape = in[0].shape();
    shape.back() /= 2;
    return {shape};
  }
};

}  // namespace

mx::array silu_gate(const mx::array& gate, const mx::array& up) {
  auto s = cpu_stream();
  if (!s || gate.dtype() != mx::float32 || up.dtype() != mx::float32 || gate.shape() != up.shape())
    return mx::multiply(mx::multiply(gate, mx::sigmoid(gate)), up);
  auto g = mx::contiguous(gate, false, *s);
  auto u = mx::contiguous(up, false, *s);
  return mx::array(gate.shape(), mx::float32, std::make_shared<SiluGate>(*s), {g, u});
}

mx::array silu_gate_halves(const mx::array& x) {
  if (x.ndim() == 0 || x.shape(-1) % 2 != 0)
    throw std::invalid_argument("[silu_gate_halves] the last axis must have an even length (gate, then up)");
  const int n = x.shape(-1) / 2;
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32) {
    auto parts = mx::split(x, 2, -1);
    return mx::multiply(mx::multiply(parts[0], mx::sigmoid(parts[0])), parts[1]);
  }
  auto shape = x.shape();
  shape.back() = n;
  return mx::array(shape, mx::float32, std::make_shared<SiluGateHalves>(*s), {mx::contiguous(x, false, *s)});
}

}  // namespace valuealign::kernels
