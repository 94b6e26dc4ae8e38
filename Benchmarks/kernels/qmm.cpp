// Dev harness for the quantised matmul kernel (kernels::quantized_matmul_rows): checks it against
// x @ dequantize(W)^T for every ISA the CPU supports, then times it against MLX's quantized_matmul
// and float32 matmul (OpenBLAS) on SmolLM2-135M's shapes. Build command: README.md.
//   /tmp/kqmm [--no-bench] [--reps N] [--shape N K bits]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <ctime>
#include <vector>

#include "kernels.h"
#include "kernels/internal.h"

namespace mx = mlx::core;
namespace vk = valuealign::kernels;

static int g_failures = 0;

static mx::array randn(const mx::Shape& s, uint64_t seed, float sd = 1.0f) {
  auto a = mx::multiply(mx::random::normal(s, mx::float32, 0.0f, 1.0f, mx::random::key(seed)), mx::array(sd));
  mx::eval(a);
  return a;
}

struct QW {
  mx::array w, s, b;
  int N, K, group, bits;
};

// Random weights quantised by MLX; float16 scales and biases as in a GGUF file when `half`.
static QW make_qw(int N, int K, int group, int bits, uint64_t seed, bool half = true) {
  auto dense = randn({N, K}, seed, 0.05f);
  if (half) dense = mx::astype(dense, mx::float16);
  auto q = mx::quantize(dense, group, bits);
  mx::eval(q);
  return {q[0], q[1], q[2], N, K, group, bits};
}

static double max_abs_diff(const mx::array& a, const mx::array& b, double* max_ref) {
  auto d = mx::max(mx::abs(mx::subtract(a, b)));
  auto r = mx::max(mx::abs(b));
  mx::eval(d, r);
  if (max_ref) *max_ref = r.item<float>();
  return d.item<float>();
}

static void check_case(int M, int N, int K, int group, int bits, bool half, const mx::Shape& lead) {
  QW q = make_qw(N, K, group, bits, 1000 + N + K + bits, half);
  mx::Shape xs = lead;
  xs.push_back(K);
  auto x = randn(xs, 7 + M);
  auto y = vk::quantized_matmul_rows(x, q.w, q.s, q.b, group, bits);
  auto dense = mx::dequantize(q.w, mx::astype(q.s, mx::float32), mx::astype(q.b, mx::float32), group, bits);
  auto ref = mx::matmul(x, mx::transpose(dense));
  double mr = 0, d = max_abs_diff(y, ref, &mr);
  bool ok = y.shape() == ref.shape() && d <= 1e-5 + 1e-5 * mr * std::sqrt(double(K));
  char buf[160];
  std::snprintf(buf, sizeof buf, "M=%d N=%d K=%d g%d b%d %s", M, N, K, group, bits, half ? "f16" : "f32");
  if (!ok) {
    std::printf("  %-44s max|d| %.3g (max|ref| %.3g) MISMATCH\n", buf, d, mr);
    ++g_failures;
  }
}

static void check_all() {
  int isa_max = vk::isa();
  for (int isa = isa_max; isa >= 0; --isa) {
    vk::set_isa(isa);
    int before = g_failures;
    for (int bits : {4, 8})
      for (int group : {32, 64, 128})
        for (int M : {1, 2, 3, 4, 5, 16, 33})
          for (int N : {1, 3, 17, 64})
            check_case(M, N, group == 128 ? 256 : 192, group, bits, (M + N) % 2 == 0, {M});
    check_case(6, 1537, 576, 32, 4, true, {2, 3});
    check_case(1, 49152, 576, 32, 8, true, {1, 1});
    check_case(16, 576, 1536, 32, 4, true, {16});
    std::printf("isa %d (%s): %s\n", isa, vk::detail::table().name, g_failures == before ? "ok" : "FAILED");
  }
  vk::set_isa(-1);
  {  // Strided and broadcast x.
    QW q = make_qw(19, 128, 32, 4, 21);
    auto dense = mx::dequantize(q.w, mx::astype(q.s, mx::float32), mx::astype(q.b, mx::float32), 32, 4);
    for (auto x : {mx::transpose(randn({128, 3}, 22)), mx::broadcast_to(randn({1, 128}, 23), {4, 128}),
                   mx::slice(randn({2, 5, 256}, 24), {0, 1, 64}, {2, 5, 192})}) {
      auto y = vk::quantized_matmul_rows(x, q.w, q.s, q.b, 32, 4);
      double mr = 0, d = max_abs_diff(y, mx::matmul(x, mx::transpose(dense)), &mr);
      bool ok = d <= 1e-5 + 1e-5 * mr;
      std::printf("  strided x %s: max|d| %.3g%s\n", x.shape().size() == 3 ? "slice" : "2-D", d, ok ? "" : " MISMATCH");
      if (!ok) ++g_failures;
    }
  }
  // VJP with respect to x, scales and biases against the dequantised composition.
  QW q = make_qw(37, 128, 64, 4, 5, false);
  auto x = randn({3, 128}, 6);
  auto cot = randn({3, 37}, 8);
  auto f = [&](const std::vector<mx::array>& p) {
    return std::vector<mx::array>{vk::quantized_matmul_rows(p[0], q.w, p[1], p[2], 64, 4)};
  };
  auto g = [&](const std::vector<mx::array>& p) {
    return std::vector<mx::array>{mx::matmul(p[0], mx::transpose(mx::dequantize(q.w, p[1], p[2], 64, 4)))};
  };
  auto [o1, g1] = mx::vjp(f, {x, q.s, q.b}, {cot});
  auto [o2, g2] = mx::vjp(g, {x, q.s, q.b}, {cot});
  for (int i = 0; i < 3; ++i) {
    double mr = 0, d = max_abs_diff(g1[i], g2[i], &mr);
    std::printf("  vjp input %d: max|d| %.3g (max|ref| %.3g)%s\n", i, d, mr, d <= 1e-4 + 1e-5 * mr ? "" : " MISMATCH");
    if (d > 1e-4 + 1e-5 * mr) ++g_failures;
  }
}

// Median microseconds of fn() over reps calls after 3 warm-ups.
static double median_us(const std::function<void(int)>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn(i);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn(i);
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape {
  const char* name;
  int N, K, bits;
  int per_token;
};

static const Shape kShapes[] = {
    {"q,o 576->576", 576, 576, 4, 60},       {"k,v 576->192", 192, 576, 4, 60},
    {"gate,up 576->1536", 1536, 576, 4, 60}, {"down 1536->576", 576, 1536, 4, 30},
    {"head 576->49152 (8-bit)", 49152, 576, 8, 1},
};

static int64_t qbytes(const QW& q) { return int64_t(q.w.nbytes() + q.s.nbytes() + q.b.nbytes()); }

static void bench(int reps) {
  std::printf("\n%-26s %3s | %9s %9s %9s | %8s %8s | GB/s ours cold\n", "shape", "M", "ours hot", "ours cold", "kernel",
              "mlx qmm", "f32 blas");
  for (const Shape& sh : kShapes) {
    // Enough copies that the cold loop streams >= 96 MB (weights cannot stay in the 32 MB L3).
    QW first = make_qw(sh.N, sh.K, 32, sh.bits, 11);
    int copies = int(std::max<int64_t>(1, (int64_t(96) << 20) / qbytes(first)));
    std::vector<QW> qs{first};
    for (int c = 1; c < copies; ++c) qs.push_back(make_qw(sh.N, sh.K, 32, sh.bits, 11 + c));
    auto dense = mx::astype(mx::dequantize(first.w, first.s, first.b, 32, sh.bits), mx::float32);
    mx::eval(dense);
    for (int M : {1, 4, 16}) {
      auto x = randn({M, sh.K}, 3);
      double hot = median_us([&](int) { mx::eval(vk::quantized_matmul_rows(x, first.w, first.s, first.b, 32, sh.bits)); }, reps);
      double cold = median_us(
          [&](int i) {
            const QW& q = qs[size_t(i) % qs.size()];
            mx::eval(vk::quantized_matmul_rows(x, q.w, q.s, q.b, 32, sh.bits));
          },
          std::max<int>(reps, copies));
      // The bare kernel on hot weights, without MLX's graph and scheduling.
      std::vector<float> y(size_t(M) * sh.N), xp(size_t(M) * sh.K);
      double kern = median_us(
          [&](int) {
            const auto& t = vk::detail::table();
            vk::detail::QmmArgs a;
            a.M = M, a.N = sh.N, a.K = sh.K, a.group = 32, a.bits = sh.bits, a.half = true;
            a.w = reinterpret_cast<const uint8_t*>(first.w.data<uint32_t>());
            a.scales = first.s.data<void>(), a.biases = first.b.data<void>();
            t.qmm_pack_x(x.data<float>(), xp.data(), M, sh.K, sh.bits);
            a.xp = xp.data(), a.y = y.data();
            int64_t tile = t.qmm_tile_n;
            vk::detail::parallel_range(sh.N, std::max<int64_t>(tile, sh.N / 2), tile,
                                       [&](int64_t b, int64_t e) { t.qmm(a, b, e); });
          },
          reps);
      double mlx = median_us([&](int) { mx::eval(mx::quantized_matmul(x, first.w, first.s, first.b, true, 32, sh.bits)); },
                             std::max(3, reps / 4));
      double f32 = median_us([&](int) { mx::eval(mx::matmul(x, mx::transpose(dense))); }, reps);
      std::printf("%-26s %3d | %9.1f %9.1f %9.1f | %8.1f %8.1f | %.1f\n", sh.name, M, hot, cold, kern, mlx, f32,
                  double(qbytes(first)) / cold / 1e3);
    }
  }
}

// One decode token's matmuls (30 layers x 7 + head), all with distinct weights, evaluated one by
// one as an eager decode would.
static void token(int reps) {
  std::vector<std::pair<const Shape*, QW>> mats;
  for (int l = 0; l < 30; ++l)
    for (int i : {0, 1, 1, 0, 2, 2, 3}) mats.push_back({&kShapes[i], make_qw(kShapes[i].N, kShapes[i].K, 32, 4, 100 + l * 7 + i)});
  mats.push_back({&kShapes[4], make_qw(49152, 576, 32, 8, 99)});
  int64_t total = 0;
  for (auto& m : mats) total += qbytes(m.second);
  auto x576 = randn({1, 576}, 1), x1536 = randn({1, 1536}, 2);
  double us = median_us(
      [&](int) {
        for (auto& m : mats) {
          const QW& q = m.second;
          mx::eval(vk::quantized_matmul_rows(q.K == 576 ? x576 : x1536, q.w, q.s, q.b, 32, q.bits));
        }
      },
      std::max(5, reps / 10));
  std::printf("\none token's 211 matmuls, M=1, eval each: %.2f ms (%.1f MB of weights, %.1f GB/s)\n", us / 1e3,
              double(total) / 1e6, double(total) / us / 1e3);
}

static double thread_us() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

// The bare kernel, one thread, hot weights: minimum over reps (kernel efficiency, less noise).
static void micro(int reps, const std::vector<Shape>& shapes) {
  const auto& t = vk::detail::table();
  std::printf("\nbare kernel (%s), one thread, min of %d (thread CPU time)\n", t.name, reps);
  for (const Shape& sh : shapes) {
    QW q = make_qw(sh.N, sh.K, 32, sh.bits, 11);
    for (int M : {1, 4, 16}) {
      auto x = randn({M, sh.K}, 3);
      std::vector<float> y(size_t(M) * sh.N), xp(size_t(M) * sh.K);
      vk::detail::QmmArgs a;
      a.M = M, a.N = sh.N, a.K = sh.K, a.group = 32, a.bits = sh.bits, a.half = true;
      a.w = reinterpret_cast<const uint8_t*>(q.w.data<uint32_t>());
      a.scales = q.s.data<void>(), a.biases = q.b.data<void>();
      a.xp = xp.data(), a.y = y.data();
      // Thread CPU time: the box is shared, and time spent descheduled must not count.
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        double t0 = thread_us();
        t.qmm_pack_x(x.data<float>(), xp.data(), M, sh.K, sh.bits);
        t.qmm(a, 0, sh.N);
        best = std::min(best, thread_us() - t0);
      }
      std::printf("%-26s M=%2d %9.1f us  %6.1f GB/s  %6.1f GFLOP/s\n", sh.name, M, best, double(qbytes(q)) / best / 1e3,
                  2.0 * M * sh.N * sh.K / best / 1e3);
    }
  }
}

int main(int argc, char** argv) {
  bool run_bench = true, micro_only = false;
  std::vector<Shape> extra;
  int reps = 200;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-bench")) run_bench = false;
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--shape") && i + 3 < argc) {
      extra.push_back({"custom", std::atoi(argv[i + 1]), std::atoi(argv[i + 2]), std::atoi(argv[i + 3]), 0});
      i += 3;
    }
    if (!std::strcmp(argv[i], "--micro")) micro_only = true;
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) vk::set_isa(std::atoi(argv[++i]));
  }
  if (micro_only) {
    micro(reps, extra.empty() ? std::vector<Shape>(std::begin(kShapes), std::end(kShapes)) : extra);
    return 0;
  }
  check_all();
  if (run_bench) {
    bench(reps);
    token(reps);
  }
  std::printf("%s\n", g_failures ? "FAILURES" : "all checks passed");
  return g_failures ? 1 : 0;
}
