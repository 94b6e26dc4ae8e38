// float32 x · W^T (a linear layer's forward) and x · W (its input gradient) as one MLX primitive
// that calls cblas_sgemm itself, so that a large product can be split across the kernel pool.
//
// Why: during training OpenBLAS runs single-threaded (TrainingBLASThreads in HybridLayers.swift).
// With its own threads on, each GEMM wakes OpenBLAS's workers, which then spin in sched_yield for
// their THREAD_TIMEOUT and hold the cores that our kernel pool (attention, norms, rope, softmax)
// needs: on a 2-core machine the pool's worker is woken onto the caller's core and runs after it.
// Here a product of at least kMinSplitFlops multiply-adds is cut into one block of output columns
// (or rows, for a tall product) per pool thread, one cblas_sgemm each; while OpenBLAS has one
// thread the blocks run in parallel on the pool, whose workers block on a condition variable
// between calls, so nothing spins.
//
// The VJP with respect to x is the same primitive with the other operand layout; with respect to
// W (a trainable weight) it is MLX's matmul. Non-float32 operands, a weight that is not 2-D, or a
// non-CPU default device get mlx::core::matmul.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                            int lda, const float* b, int ldb, float beta, float* c, int ldc);

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// Multiply-adds below which a product runs in one call (splitting costs a wake-up, ~10-50 us on
// the project's VMs; 4e6 multiply-adds take ~50 us at 150 GFLOP/s).
constexpr double kMinSplitFlops = 4e6;

// Splitting on (the default) or off (VALUEALIGN_SPLIT_GEMM=0, set_split_gemm(false)).
std::atomic<bool> g_split{[] {
  const char* env = std::getenv("VALUEALIGN_SPLIT_GEMM");
  return !(env && std::strcmp(env, "0") == 0);
}()};
std::atomic<uint64_t> g_split_calls{0};

// c [M, N] = a [M, K] · op(b), op(b) = b^T for b [N, K] (transpose_b) or b for b [K, N]; all
// row-contiguous.
//
// The blocks of a product depend only on its shape and the pool's size, not on OpenBLAS's thread
// count or on how busy the pool is (then parallel_for runs them on the caller). They run in
// parallel only while OpenBLAS is single-threaded; with OpenBLAS's own threads they run one after
// the other on the caller, each with those threads (two callers into a multi-threaded OpenBLAS at
// once would run two of its thread teams).
void gemm(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool transpose_b) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::memset(c, 0, size_t(M * N) * sizeof(float));
    return;
  }
  auto block = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* bp = transpose_b ? b + n0 * K : b + n0;
    cblas_sgemm(kRowMajor, kNoTrans, transpose_b ? kTrans : kNoTrans, int(m1 - m0), int(n1 - n0), int(K), 1.0f,
                a + m0 * K, int(K), bp, transpose_b ? int(K) : int(N), 0.0f, c + m0 * N + n0, int(N));
  };
  if (!split_gemm_possible() || double(M) * double(N) * double(K) < kMinSplitFlops) return block(0, M, 0, N);
  // Split the longer side: N in multiples of 16 columns (whole SIMD registers for the kernels), M
  // in multiples of 8 rows; parallel_range's ranges, one per pool thread.
  const bool by_columns = N >= M;
  const int64_t extent = by_columns ? N : M, align = by_columns ? 16 : 8;
  const Ranges r = split_ranges(extent, align, align);
  if (r.parts <= 1) return block(0, M, 0, N);
  g_split_calls.fetch_add(1, std::memory_order_relaxed);
  auto run = [&](int64_t p) {
    const int64_t lo = p * r.chunk, hi = std::min(extent, lo + r.chunk);
    if (by_columns) block(0, M, lo, hi); else block(lo, hi, 0, N);
  };
  if (blas_threads() == 1) {
    parallel_for(r.parts, run);
  } else {
    for (int64_t p = 0; p < r.parts; ++p) run(p);
  }
}

class BlasMatmul : public mx::UnaryPrimitive {
 public:
  BlasMatmul(mx::Stream s, bool transpose_b) : mx::UnaryPrimitive(s), transpose_b_(transpose_b) {}

  // inputs: a [..., K], b [N, K] (transpose_b) or [K, N]; output [..., N].
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    require_row_contiguous(in[0], "BlasMatmul");
    require_row_contiguous(in[1], "BlasMatmul");
    alloc_output(out);
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_input_array(in[0]);
    enc.set_input_array(in[1]);
    enc.set_output_array(out);
    enc.dispatch([a = mx::array::unsafe_weak_copy(in[0]), b = mx::array::unsafe_weak_copy(in[1]),
                  c = mx::array::unsafe_weak_copy(out), tb = transpose_b_]() mutable {
      const int64_t K = a.shape(-1), N = tb ? b.shape(0) : b.shape(1);
      const int64_t M = K == 0 ? int64_t(c.size()) / std::max<int64_t>(N, 1) : int64_t(a.size()) / K;
      gemm(a.data<float>(), b.data<float>(), c.data<float>(), M, N, K, tb);
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("BlasMatmul"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    auto s = stream();
    const auto& a = primals[0];
    const auto& b = primals[1];
    const int64_t K = a.shape(-1);
    const int N = transpose_b_ ? b.shape(0) : b.shape(1);
    auto g = mx::contiguous(mx::astype(cotangents[0], mx::float32, s), false, s);
    std::vector<mx::array> res;
    for (int arg : argnums) {
      if (arg == 0) {
        // da = g · op(b)^T: g [..., N] times b [N, K] as it is (transpose_b) or b^T.
        res.push_back(mx::array(a.shape(), mx::float32, std::make_shared<BlasMatmul>(s, !transpose_b_), {g, b}));
      } else {
        auto g2 = mx::reshape(g, {-1, N}, s);
        auto a2 = mx::reshape(a, {-1, int(K)}, s);
        res.push_back(transpose_b_ ? mx::matmul(mx::transpose(g2, s), a2, s) : mx::matmul(mx::transpose(a2, s), g2, s));
      }
    }
    return res;
  }

  const char* name() const override { return "ValueAlignBlasMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const BlasMatmul*>(&other);
    return o && o->transpose_b_ == transpose_b_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    auto shape = in[0].shape();
    shape.back() = transpose_b_ ? in[1].shape(0) : in[1].shape(1);
    return {shape};
  }

 private:
  bool transpose_b_;
};

}  // namespace

mx::array blas_matmul(const mx::array& a, const mx::array& b, bool transpose_b) {
  auto s = cpu_stream();
  auto fallback = [&] { return mx::matmul(a, transpose_b ? mx::transpose(b) : b); };
  if (!s || a.dtype() != mx::float32 || b.dtype() != mx::float32 || a.ndim() < 2 || b.ndim() != 2) return fallback();
  const int64_t K = a.shape(-1), N = transpose_b ? b.shape(0) : b.shape(1);
  if ((transpose_b ? b.shape(1) : b.shape(0)) != K) return fallback();  // MLX's message for the mismatch
  const int64_t M = K == 0 ? 0 : int64_t(a.size()) / K;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX) return fallback();
  auto shape = a.shape();
  shape.back() = int(N);
  return mx::array(shape, mx::float32, std::make_shared<BlasMatmul>(*s, transpose_b),
                   {mx::contiguous(a, false, *s), mx::contiguous(b, false, *s)});
}

int blas_threads() {
  using Get = int (*)();
  static const Get get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : -1;
}

void set_split_gemm(bool on) { g_split.store(on, std::memory_order_relaxed); }

bool split_gemm_possible() { return g_split.load(std::memory_order_relaxed) && num_threads() > 1; }

bool split_gemm_active() { return split_gemm_possible() && blas_threads() == 1; }

uint64_t split_gemm_calls() { return g_split_calls.load(std::memory_order_relaxed); }

}  // namespace valuealign::kernels
