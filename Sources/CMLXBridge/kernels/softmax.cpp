// Softmax over the last axis as an MLX primitive (Softmax) with its VJP / JVP
// y * (g - sum(g * y)) as a second primitive (SoftmaxBackward).
#include <algorithm>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int64_t kGrain = 16384;  // elements per thread below which one thread does it all

// Runs fn(row_begin, row_end) over the rows of an [nrows, n] array, split across threads.
template <class F>
void over_rows(int64_t nrows, int64_t n, F&& fn) {
  int64_t rows_grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1));
  parallel_range(nrows, rows_grain, 1, [&](int64_t b, int64_t e) { fn(b, e); });
}

// inputs: y (softmax output), g (cotangent or tangent); output: y * (g - sum(g * y)).
class SoftmaxBackward : public mx::UnaryPrimitive {
 public:
  explicit SoftmaxBackward(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "SoftmaxBackward");
    require_row_contiguous(in[1], "SoftmaxBackward");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([y = mx::array::unsafe_weak_copy(in[0]), g = mx::array::unsafe_weak_copy(in[1]),
                  dx = mx::array::unsafe_weak_copy(out), t]() mutable {
      int64_t n = y.shape(-1), nrows = n ? int64_t(y.size()) / n : 0;
      const float *yp = y.data<float>(), *gp = g.data<float>();
      float* dp = dx.data<float>();
      over_rows(nrows, n, [&](int64_t b, int64_t e) { t->softmax_bwd_rows(yp + b * n, gp + b * n, dp + b * n, e - b, n); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("SoftmaxBackward"); }
  const char* name() const override { return "ValueAlignSoftmaxBackward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const SoftmaxBackward*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }
};

mx::array softmax_backward(const mx::array& y, const mx::array& g, mx::Stream s) {
  auto gc = mx::contiguous(mx::astype(g, mx::float32, s), false, s);
  return mx::array(y.shape(), mx::float32, std::make_shared<SoftmaxBackward>(s), {y, gc});
}

class Softmax : public mx::UnaryPrimitive {
 public:
  explicit Softmax(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "Softmax");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), y = mx::array::unsafe_weak_copy(out), t]() mutable {
      int64_t n = x.shape(-1), nrows = n ? int64_t(x.size()) / n : 0;
      const float* xp = x.data<float>();
      float* yp = y.data<float>();
      over_rows(nrows, n, [&](int64_t b, int64_t e) { t->softmax_rows(xp + b * n, yp + b * n, e - b, n); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("Softmax"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>&, const std::vector<mx::array>& cotangents,
                             const std::vector<int>&, const std::vector<mx::array>& outputs) override {
    return {softmax_backward(outputs[0], cotangents[0], stream())};
  }
  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>&) override {
    // The JVP of softmax has the same form: y * (t - sum(t * y)).
    auto y = mx::array(primals[0].shape(), mx::float32, std::make_shared<Softmax>(stream()), {primals[0]});
    return {softmax_backward(y, tangents[0], stream())};
  }
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                          const std::vector<int>& axes) override {
    auto x = inputs[0];
    int ax = axes[0];
    if (ax >= 0 && ax == int(x.ndim()) - 1) {  // the vmapped axis is the softmax axis: move it away
      x = mx::moveaxis(x, ax, 0, stream());
      ax = 0;
    }
    return {{softmax_lastaxis(x)}, {ax}};
  }
  const char* name() const override { return "ValueAlignSoftmax"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return dynamic_cast<const Softmax*>(&other) != nullptr;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }
};

}  // namespace

mx::array softmax_lastaxis(const mx::array& x) {
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32 || x.ndim() == 0) return mx::softmax(x, -1, true);
  auto xc = mx::contiguous(x, false, *s);
  return mx::array(x.shape(), mx::float32, std::make_shared<Softmax>(*s), {xc});
}

}  // namespace valuealign::kernels
