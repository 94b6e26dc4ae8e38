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

// Picked log-softmax: inputs {x [N, V] float32, targets [N] int32, lse [N], g [N]} -> dx [N, V].
class LogSoftmaxPickBackward : public mx::UnaryPrimitive {
 public:
  LogSoftmaxPickBackward(mx::Stream s, float a) : mx::UnaryPrimitive(s), a_(a) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (const auto& i : in) require_row_contiguous(i, "LogSoftmaxPickBackward");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    for (const auto& i : in) enc.set_input_array(i);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), tg = mx::array::unsafe_weak_copy(in[1]),
                  lse = mx::array::unsafe_weak_copy(in[2]), g = mx::array::unsafe_weak_copy(in[3]),
                  dx = mx::array::unsafe_weak_copy(out), t, a = a_]() mutable {
      const int64_t n = x.shape(-1), nrows = n ? int64_t(x.size()) / n : 0;
      const float *xp = x.data<float>(), *lp = lse.data<float>(), *gp = g.data<float>();
      const int32_t* tp = tg.data<int32_t>();
      float* dp = dx.data<float>();
      over_rows(nrows, n, [&](int64_t b, int64_t e) {
        t->logsoftmax_pick_bwd_rows(xp + b * n, tp + b, lp + b, gp + b, nullptr, dp + b * n, e - b, n, a);
      });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("LogSoftmaxPickBackward"); }
  const char* name() const override { return "ValueAlignLogSoftmaxPickBackward"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const LogSoftmaxPickBackward*>(&other);
    return o && o->a_ == a_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override { return {in[0].shape()}; }

 private:
  float a_;
};

// inputs {x [N, V] float32, targets [N] int32} -> {log softmax(a x)[t] [N], logsumexp(a x) [N]}.
class LogSoftmaxPick : public mx::Primitive {
 public:
  LogSoftmaxPick(mx::Stream s, float a) : mx::Primitive(s), a_(a) {}
  void eval_cpu(const std::vector<mx::array>& in, std::vector<mx::array>& outs) override {
    require_row_contiguous(in[0], "LogSoftmaxPick");
    require_row_contiguous(in[1], "LogSoftmaxPick");
    for (auto& o : outs) alloc_output(o);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in[0]);
    enc.set_input_array(in[1]);
    enc.set_output_array(outs[0]);
    enc.set_output_array(outs[1]);
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), tg = mx::array::unsafe_weak_copy(in[1]),
                  o = mx::array::unsafe_weak_copy(outs[0]), lse = mx::array::unsafe_weak_copy(outs[1]), t,
                  a = a_]() mutable {
      const int64_t n = x.shape(-1), nrows = n ? int64_t(x.size()) / n : 0;
      const float* xp = x.data<float>();
      const int32_t* tp = tg.data<int32_t>();
      float *op = o.data<float>(), *lp = lse.data<float>();
      over_rows(nrows, n, [&](int64_t b, int64_t e) { t->logsoftmax_pick_rows(xp + b * n, tp + b, op + b, lp + b, e - b, n, a); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override { no_gpu("LogSoftmaxPick"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override {
    // The lse output is internal (logsoftmax_pick() returns only the picked values), so its
    // cotangent is ignored.
    auto s = stream();
    std::vector<mx::array> res;
    for (int arg : argnums) {
      if (arg != 0) throw std::invalid_argument("[logsoftmax_pick] the targets are integers: no gradient for them");
      auto g = mx::contiguous(mx::astype(cotangents[0], mx::float32, s), false, s);
      res.push_back(mx::array(primals[0].shape(), mx::float32, std::make_shared<LogSoftmaxPickBackward>(s, a_),
                              {primals[0], primals[1], outputs[1], g}));
    }
    return res;
  }
  const char* name() const override { return "ValueAlignLogSoftmaxPick"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const LogSoftmaxPick*>(&other);
    return o && o->a_ == a_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    return {in[1].shape(), in[1].shape()};
  }

 private:
  float a_;
};

}  // namespace

mx::array softmax_lastaxis(const mx::array& x) {
  auto s = cpu_stream();
  if (!s || x.dtype() != mx::float32 || x.ndim() == 0) return mx::softmax(x, -1, true);
  auto xc = mx::contiguous(x, false, *s);
  return mx::array(x.shape(), mx::float32, std::make_shared<Softmax>(*s), {xc});
}

mx::array logsoftmax_pick(const mx::array& x, const mx::array& targets, float scale) {
  if (x.ndim() != 2) throw std::invalid_argument("[logsoftmax_pick] logits must be [rows, vocabulary], got " + std::to_string(x.ndim()) + "-D");
  if (targets.ndim() != 1 || targets.shape(0) != x.shape(0))
    throw std::invalid_argument("[logsoftmax_pick] targets must be [" + std::to_string(x.shape(0)) + "], one per row of the logits");
  if (!(scale > 0)) throw std::invalid_argument("[logsoftmax_pick] scale must be positive");
  if (!mx::issubdtype(targets.dtype(), mx::integer)) throw std::invalid_argument("[logsoftmax_pick] targets must be integers");
  auto s = cpu_stream();
  if (!s) {
    // MLX ops elsewhere (GPU): log_softmax(a x) picked.
    auto z = scale == 1.0f ? x : mx::multiply(x, mx::array(scale));
    auto lp = mx::subtract(z, mx::logsumexp(z, -1, true));
    return mx::reshape(mx::take_along_axis(lp, mx::reshape(mx::astype(targets, mx::int32), {-1, 1}), -1), {-1});
  }
  auto xc = mx::contiguous(mx::astype(x, mx::float32, *s), false, *s);
  auto tc = mx::contiguous(mx::stop_gradient(mx::astype(targets, mx::int32, *s), *s), false, *s);
  auto outs = mx::array::make_arrays({targets.shape(), targets.shape()}, {mx::float32, mx::float32},
                                     std::make_shared<LogSoftmaxPick>(*s, scale), {xc, tc});
  return outs[0];
}

}  // namespace valuealign::kernels
