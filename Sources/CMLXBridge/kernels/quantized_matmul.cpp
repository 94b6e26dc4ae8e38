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

// Below this many weight bytes one thread does the whole product: waking the pool costs more
// than it saves (a 576x192 4-bit matrix is ~70 KB with its scales).
constexpr int64_t kSerialBytes = int64_t(96) << 10;

thread_local std::vector<float> t_packed_x;

bool supported_layout(int group_size, int bits) {
  return (bits == 4 || bits == 8) && (group_size == 32 || group_size == 64 || group_size == 128);
}

class QuantizedMatmulRows : public mx::UnaryPrimitive {
 public:
  QuantizedMatmulRows(mx::Stream s, int group_size, int bits)
      : mx::UnaryPrimitive(s), group_size_(group_size), bits_(bits) {}

  // inputs: x [..., K] float32, w [N, K*bits/32] uint32, scales and biases [N, K/group] (both
  // float16 or both float32), all row-contiguous.
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    for (auto& a : in) require_row_contiguous(a, "QuantizedMatmulRows");
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
      t->qmm_pack_x(x.data<float>(), t_packed_x.data(), a.M, a.K, bits);
      a.xp = t_packed_x.data();
      const int64_t row_bytes = a.K * bits / 8 + (a.K / group) * int64_t(a.half ? 4 : 8);
      const int64_t tile = t->qmm_tile_n;
      if (row_bytes * a.N < kSerialBytes) return t->qmm(a, 0, a.N);
      const int64_t grain = std::max<int64_t>(tile, kSerialBytes / 2 / std::max<int64_t>(row_bytes, 1));
      parallel_range(a.N, grain, tile, [&](int64_t b, int64_t e) { t->qmm(a, b, e); });
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
                   {mx::contiguous(x, false, *s), mx::contiguous(w, false, *s), mx::contiguous(sc, false, *s),
                    mx::contiguous(bi, false, *s)});
}

}  // namespace valuealign::kernels
