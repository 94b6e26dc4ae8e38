// y = x · dequantize(W)^T for MLX affine-quantised W (4 or 8 bits, groups of 32/64/128) as an MLX
// primitive (QuantizedMatmulRows). Made for decode: few rows of x, weights streamed from memory
// once per call and dequantised in registers (simd_kernels_impl.h, qmm). Gradients: x (through
// MLX ops on the dequantised matrix), scales and biases; none for the packed weight.
#include <algorithm>
#include <string>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

thread_local std::vector<float> t_packed_x;
thread_local std::vector<float> t_strided_x;

// dst = the elements of a float32 array of any strides, in row-major order.
void gather(const mx::array& a, float* dst) {
  const float* src = a.data<float>();
  const int nd = int(a.ndim());
  if (nd == 0) {
    dst[0] = src[0];
    return;
  }
  std::vector<int64_t> idx(size_t(nd), 0);
  const int64_t last = a.shape(-1), last_stride = a.strides()[size_t(nd - 1)];
  for (size_t done = 0; done < a.size(); done += size_t(last)) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; ++d) off += idx[size_t(d)] * int64_t(a.strides()[size_t(d)]);
    for (int64_t k = 0; k < last; ++k) *dst++ = src[off + k * last_stride];
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[size_t(d)] < a.shape(d)) break;
      idx[size_t(d)] = 0;
    }
  }
}

// a itself when it is already computed and row-contiguous (weights usually are), else a
// contiguous copy: each extra graph node costs a scheduling step on every call.
mx::array contiguous_input(const mx::array& a, mx::Stream s) {
  if (a.status() != mx::array::Status::unscheduled && a.flags().row_contiguous) return a;
  return mx::contiguous(a, false, s);
}

bool supported_layout(int group_size, int bits) {
  return (bits == 4 || bits == 8) && (group_size == 32 || group_size == 64 || group_size == 128);
}

class QuantizedMatmulRows : public mx::UnaryPrimitive {
 public:
  QuantizedMatmulRows(mx::Stream s, int group_size, int bits)
      : mx::UnaryPrimitive(s), group_size_(group_size), bits_(bits) {}

  // inputs: x [..., K] float32 (any strides), w [N, K*bits/32] uint32, scales and biases
  // [N, K/group] (both float16 or both float32), row-contiguous.
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (size_t i = 1; i < in.size(); ++i) require_row_contiguous(in[i], "QuantizedMatmulRows");
    alloc_output(out);
    const Table* t = &table();
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.dispatch([x = mx::array::unsafe_weak_copy(in[0]), w = mx::array::unsafe_weak_copy(in[1]),
                  sc = mx::array::unsafe_weak_copy(in[2]), bi = mx::array::unsafe_weak_copy(in[3]),
                  y = mx::array::unsafe_weak_copy(out), t, group = group_size_, bits = bits_]() mutable {
      QmmArgs a;
      a.K = x.shape(-1);
      a.M = a.K ? int64_t(x.size()) / a.K : 0;
      a.N = w.shape(0);
      if (a.M == 0 || a.N == 0) return;
      a.w = reinterpret_cast<const uint8_t*>(w.data<uint32_t>());
      a.half = sc.dtype() == mx::float16;
      a.scales = sc.data<void>();
      a.biases = bi.data<void>();
      a.group = group;
      a.bits = bits;
      a.y = y.data<float>();
      size_t n = size_t(a.M * a.K);
      if (t_packed_x.size() < n) t_packed_x.resize(n);
      const float* xs = x.data<float>();
      if (!x.flags().row_contiguous) {
        // A strided view: gather it in row-major order first (x is small).
        if (t_strided_x.size() < n) t_strided_x.resize(n);
        gather(x, t_strided_x.data());
        xs = t_strided_x.data();
      }
      t->qmm_pack_x(xs, t_packed_x.data(), a.M, a.K, bits);
      a.xp = t_packed_x.data();
      qmm_parallel(*t, a);
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("QuantizedMatmulRows"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    auto s = stream();
    const auto& x = primals[0];
    const auto& w = primals[1];
    const auto& scales = primals[2];
    const auto& biases = primals[3];
    auto cot = mx::astype(cotangents[0], mx::float32, s);
    const int N = w.shape(0), K = x.shape(-1), G = scales.shape(1);
    std::vector<mx::array> res;
    std::optional<mx::array> gx;  // cot^T x, [N, K], shared by the scale and bias gradients
    auto outer = [&]() -> const mx::array& {
      if (!gx) {
        auto c2 = mx::reshape(cot, {-1, N}, s);
        auto x2 = mx::reshape(x, {-1, K}, s);
        gx = mx::matmul(mx::transpose(c2, {1, 0}, s), x2, s);
      }
      return *gx;
    };
    for (int a : argnums) {
      if (a == 0) {
        auto dense = mx::dequantize(w, scales, biases, group_size_, bits_, "affine", std::nullopt, mx::float32, s);
        res.push_back(mx::matmul(cot, dense, s));
      } else if (a == 1) {
        throw std::invalid_argument("[quantized_matmul_rows] no gradient with respect to the packed quantized weight");
      } else {
        // d/d scale(n, g) = sum over the group of gx(n, k) * code(n, k); d/d bias(n, g) = sum of gx(n, k).
        auto per_group = [&](const mx::array& v) {
          return mx::sum(mx::reshape(v, {N, G, group_size_}, s), -1, false, s);
        };
        mx::array grad = a == 3 ? per_group(outer()) : per_group(mx::multiply(outer(), codes(w, N, G, s), s));
        res.push_back(mx::astype(grad, primals[a].dtype(), s));
      }
    }
    return res;
  }

  const char* name() const override { return "ValueAlignQuantizedMatmulRows"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const QuantizedMatmulRows*>(&other);
    return o && o->group_size_ == group_size_ && o->bits_ == bits_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    mx::Shape shape = in[0].shape();
    shape.back() = in[1].shape(0);
    return {shape};
  }

 private:
  // The integer codes of w as float32 [N, K] (dequantised with scale 1 and bias 0).
  mx::array codes(const mx::array& w, int N, int G, mx::Stream s) const {
    auto ones = mx::ones({N, G}, mx::float32, s);
    auto zeros = mx::zeros({N, G}, mx::float32, s);
    return mx::dequantize(w, ones, zeros, group_size_, bits_, "affine", std::nullopt, std::nullopt, s);
  }

  int group_size_;
  int bits_;
};

}  // namespace

namespace detail {

// Below this much work (weight bytes times blocks of 4 rows of x) one thread does the whole
// product: waking the pool costs more than it saves (a 576x192 4-bit matrix is ~70 KB with its
// scales).
constexpr int64_t kSerialBytes = int64_t(96) << 10;
// Work unit of the threads, in weight bytes.
constexpr int64_t kChunkBytes = int64_t(48) << 10;

void qmm_parallel(const Table& t, const QmmArgs& a) {
  const int64_t row_bytes = a.K * a.bits / 8 + (a.K / a.group) * int64_t(a.half ? 4 : 8);
  const int64_t tile = t.qmm_tile_n;
  if (row_bytes * a.N * std::max<int64_t>(1, a.M / 4) < kSerialBytes) return t.qmm(a, 0, a.N);
  // Chunks of ~kChunkBytes, claimed dynamically: a worker that wakes late still takes its share.
  int64_t chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(row_bytes, 1));
  chunk = std::max<int64_t>(1, chunk / tile) * tile;
  const int64_t parts = (a.N + chunk - 1) / chunk;
  parallel_for(parts, [&](int64_t p) { t.qmm(a, p * chunk, std::min(a.N, (p + 1) * chunk)); });
}

}  // namespace detail

mx::array quantized_matmul_rows(const mx::array& x, const mx::array& w, const mx::array& scales,
                                const std::optional<mx::array>& biases, int group_size, int bits) {
  auto s = cpu_stream();
  auto fallback = [&] { return mx::quantized_matmul(x, w, scales, biases, true, group_size, bits); };
  if (!s || !biases || !supported_layout(group_size, bits) || x.dtype() != mx::float32 || x.ndim() < 1 ||
      w.dtype() != mx::uint32 || w.ndim() != 2 || scales.ndim() != 2 || biases->shape() != scales.shape() ||
      biases->dtype() != scales.dtype() || !mx::issubdtype(scales.dtype(), mx::floating))
    return fallback();
  const int K = x.shape(-1), N = w.shape(0);
  if (K == 0 || K % group_size != 0 || int64_t(w.shape(1)) * 32 != int64_t(K) * bits ||
      scales.shape(0) != N || scales.shape(1) != K / group_size)
    return fallback();  // MLX reports the shape error
  auto sc = scales, bi = *biases;
  if (sc.dtype() != mx::float16 && sc.dtype() != mx::float32) {
    sc = mx::astype(sc, mx::float32, *s);
    bi = mx::astype(bi, mx::float32, *s);
  }
  mx::Shape shape = x.shape();
  shape.back() = N;
  return mx::array(shape, mx::float32, std::make_shared<QuantizedMatmulRows>(*s, group_size, bits),
                   {x, contiguous_input(w, *s), contiguous_input(sc, *s), contiguous_input(bi, *s)});
}

}  // namespace valuealign::kernels
