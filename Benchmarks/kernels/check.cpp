// Dev harness for ValueAlign's CPU kernels (Sources/CMLXBridge/kernels): for every ISA the CPU
// supports, checks each kernel and its VJP against the plain MLX composition and times kernel vs
// MLX. Exits non-zero on any mismatch. Build command: Benchmarks/kernels/README.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels.h"
#include "kernels/internal.h"

namespace mx = mlx::core;
namespace vk = valuealign::kernels;

static int g_failures = 0;
static bool g_quick = false;
static const float kInf = std::numeric_limits<float>::infinity();

// Max |a - b| over elements and whether all satisfy |a - b| <= atol + rtol |b| (NaN == NaN).
struct Cmp {
  double max_abs = 0;
  bool ok = true;
};
static Cmp compare(const mx::array& a_, const mx::array& b_, double atol, double rtol) {
  // Row-contiguous copies: MLX element-wise ops keep a transposed input's strides.
  auto a = mx::contiguous(mx::astype(a_, mx::float32)), b = mx::contiguous(mx::astype(b_, mx::float32));
  mx::eval(a, b);
  Cmp c;
  if (a.shape() != b.shape()) return {kInf, false};
  std::vector<float> av(a.data<float>(), a.data<float>() + a.size());
  std::vector<float> bv(b.data<float>(), b.data<float>() + b.size());
  for (size_t i = 0; i < av.size(); ++i) {
    float x = av[i], y = bv[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (!(std::isnan(x) && std::isnan(y))) c.ok = false, c.max_abs = kInf;
      continue;
    }
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) c.ok = false, c.max_abs = kInf;
      continue;
    }
    double d = std::fabs(double(x) - double(y));
    c.max_abs = std::max(c.max_abs, d);
    if (d > atol + rtol * std::fabs(double(y))) c.ok = false;
  }
  return c;
}

static void report(const std::string& what, const Cmp& c) {
  std::printf("  %-58s max|d| %.3g %s\n", what.c_str(), c.max_abs, c.ok ? "ok" : "MISMATCH");
  if (!c.ok) ++g_failures;
}

static mx::array randn(const mx::Shape& s, uint64_t seed, float sd = 1.0f) {
  auto a = mx::multiply(mx::random::normal(s, mx::float32, 0.0f, 1.0f, mx::random::key(seed)), mx::array(sd));
  mx::eval(a);
  return a;
}

// ---------------------------------------------------------------- references (MLX ops) ----------
static mx::array ref_silu_gate(const mx::array& g, const mx::array& u) {
  return mx::multiply(mx::multiply(g, mx::sigmoid(g)), u);
}

// Softmax that gives zeros for an all -inf row (the kernel's convention).
static mx::array ref_softmax(const mx::array& x) {
  auto dead = mx::equal(mx::max(x, -1, true), mx::array(-kInf));
  auto p = mx::softmax(mx::where(dead, mx::array(0.0f), x), -1, true);
  return mx::where(dead, mx::array(0.0f), p);
}

static mx::array ref_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                               const std::optional<mx::array>& mask) {
  int G = q.shape(1) / k.shape(1);
  auto kr = G > 1 ? mx::repeat(k, G, 1) : k;
  auto vr = G > 1 ? mx::repeat(v, G, 1) : v;
  auto sc = mx::multiply(mx::matmul(q, mx::swapaxes(kr, -1, -2)), mx::array(scale));
  if (mask) {
    if (mask->dtype() == mx::bool_)
      sc = mx::where(*mask, sc, mx::array(-kInf));
    else
      sc = mx::add(sc, *mask);
  }
  int L = q.shape(2), S = k.shape(2);
  if (causal) {
    auto qi = mx::reshape(mx::arange(S - L, S, 1, mx::int32), {L, 1});
    auto kj = mx::reshape(mx::arange(0, S, 1, mx::int32), {1, S});
    sc = mx::where(mx::greater_equal(qi, kj), sc, mx::array(-kInf));
  }
  return mx::matmul(ref_softmax(sc), vr);
}

// ---------------------------------------------------------------- timing ------------------------
static double time_ms(const std::function<std::vector<mx::array>()>& f, int reps) {
  for (int i = 0; i < 2; ++i) mx::eval(f());
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    mx::eval(f());
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---------------------------------------------------------------- checks ------------------------
static void check_exp() {
  const auto& t = vk::detail::table();
  std::vector<float> x, y;
  for (float v = -103.0f; v <= 88.7f; v += 0.00731f) x.push_back(v);
  x.push_back(-kInf);
  x.push_back(kInf);
  x.push_back(-1000.0f);
  x.push_back(1000.0f);
  y.resize(x.size());
  t.exp(x.data(), y.data(), int64_t(x.size()));
  double max_rel = 0;
  bool ok = true;
  for (size_t i = 0; i < x.size(); ++i) {
    double ref = std::exp(double(x[i]));
    if (ref < 1.2e-38) {  // denormal range: absolute error only
      if (std::fabs(y[i] - ref) > 1.2e-38) ok = false;
      continue;
    }
    if (std::isinf(ref) || ref > 3.4e38) {
      if (!(std::isinf(y[i]) || std::fabs(y[i] - ref) / ref < 1e-6)) ok = false;
      continue;
    }
    max_rel = std::max(max_rel, std::fabs(y[i] - ref) / ref);
  }
  float nan = std::nanf(""), ny;
  t.exp(&nan, &ny, 1);
  if (!std::isnan(ny)) ok = false;
  if (max_rel > 1e-6) ok = false;
  std::printf("  %-58s max rel %.3g %s\n", "exp on [-103, 88.7] + inf/-inf/NaN", max_rel, ok ? "ok" : "MISMATCH");
  if (!ok) ++g_failures;
}

static void check_silu_gate() {
  std::vector<mx::Shape> shapes = {{492, 1536}, {7, 13}, {1}, {3, 17, 5}, {1000003}};
  uint64_t seed = 10;
  for (auto& s : shapes) {
    auto g = randn(s, seed++, 4.0f), u = randn(s, seed++), c = randn(s, seed++);
    std::string tag = "silu_gate " + std::to_string(g.size()) + " elems";
    report(tag + " fwd", compare(vk::silu_gate(g, u), ref_silu_gate(g, u), 1e-6, 2e-6));
    auto fk = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::silu_gate(a[0], a[1])}; };
    auto fr = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{ref_silu_gate(a[0], a[1])}; };
    auto gk = mx::vjp(fk, {g, u}, {c}).second, gr = mx::vjp(fr, {g, u}, {c}).second;
    report(tag + " vjp dgate", compare(gk[0], gr[0], 1e-5, 1e-5));
    report(tag + " vjp dup", compare(gk[1], gr[1], 1e-6, 2e-6));
  }
  // Non-contiguous inputs (a transposed view) and extreme values.
  auto g = mx::transpose(randn({64, 96}, 99, 30.0f)), u = mx::transpose(randn({64, 96}, 98));
  report("silu_gate transposed input, |g| up to ~100", compare(vk::silu_gate(g, u), ref_silu_gate(g, u), 1e-5, 2e-6));
  // JVP and vmap of the primitive.
  auto g2 = randn({5, 19}, 97), u2 = randn({5, 19}, 96), tg = randn({5, 19}, 95), tu = randn({5, 19}, 94);
  auto jk = mx::jvp([](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::silu_gate(a[0], a[1])}; }, {g2, u2}, {tg, tu}).second[0];
  auto jr = mx::jvp([](const std::vector<mx::array>& a) { return std::vector<mx::array>{ref_silu_gate(a[0], a[1])}; }, {g2, u2}, {tg, tu}).second[0];
  report("silu_gate jvp", compare(jk, jr, 1e-6, 1e-5));
  auto u0 = mx::reshape(mx::slice(u2, {0, 0}, {1, 19}), {19});
  auto vm = mx::vmap([](const mx::array& a, const mx::array& b) { return vk::silu_gate(a, b); }, 1, -1)(mx::transpose(g2), u0);
  report("silu_gate vmap (in_axes 1, -1)", compare(vm, ref_silu_gate(g2, mx::broadcast_to(u0, {5, 19})), 1e-6, 2e-6));
  // float16 falls back to MLX ops.
  auto gh = mx::astype(g2, mx::float16), uh = mx::astype(u2, mx::float16);
  report("silu_gate float16 fallback", compare(vk::silu_gate(gh, uh), ref_silu_gate(gh, uh), 0, 0));
}

static void check_softmax() {
  std::vector<mx::Shape> shapes = {{9, 492, 492}, {5, 33}, {1, 1}, {4, 1000}, {2, 3, 17}};
  uint64_t seed = 20;
  for (auto& s : shapes) {
    auto x = randn(s, seed++, 3.0f), c = randn(s, seed++);
    std::string tag = "softmax " + std::to_string(x.size() / x.shape(-1)) + "x" + std::to_string(x.shape(-1));
    report(tag + " fwd", compare(vk::softmax_lastaxis(x), mx::softmax(x, -1, true), 1e-7, 1e-5));
    auto fk = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::softmax_lastaxis(a[0])}; };
    auto fr = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{mx::softmax(a[0], -1, true)}; };
    report(tag + " vjp", compare(mx::vjp(fk, {x}, {c}).second[0], mx::vjp(fr, {x}, {c}).second[0], 1e-6, 1e-4));
  }
  // -inf entries, a fully -inf row (zeros expected), a transposed input.
  auto x = randn({6, 37}, 30);
  auto col = mx::reshape(mx::arange(37), {1, 37});
  auto row = mx::reshape(mx::arange(6), {6, 1});
  auto masked = mx::where(mx::logical_or(mx::greater(col, mx::multiply(row, mx::array(7))), mx::equal(row, mx::array(0))),
                          mx::array(-kInf), x);
  report("softmax with -inf entries and a fully -inf row", compare(vk::softmax_lastaxis(masked), ref_softmax(masked), 1e-7, 1e-5));
  auto xt = mx::transpose(randn({40, 24}, 31));
  report("softmax transposed input", compare(vk::softmax_lastaxis(xt), mx::softmax(xt, -1, true), 1e-7, 1e-5));
  auto xh = mx::astype(x, mx::float16);
  report("softmax float16 fallback", compare(vk::softmax_lastaxis(xh), mx::softmax(xh, -1, true), 0, 0));
  auto t = randn({6, 37}, 33);
  auto jk = mx::jvp([](const mx::array& a) { return vk::softmax_lastaxis(a); }, x, t).second;
  auto jr = mx::jvp([](const mx::array& a) { return mx::softmax(a, -1, true); }, x, t).second;
  report("softmax jvp", compare(jk, jr, 1e-6, 1e-4));
  auto x3 = randn({4, 6, 37}, 34);
  auto vm = mx::vmap([](const mx::array& a) { return vk::softmax_lastaxis(a); }, 2)(x3);
  report("softmax vmap over the last axis", compare(vm, mx::softmax(mx::moveaxis(x3, 2, 0), -1, true), 1e-7, 1e-5));
  auto c = randn({6, 37}, 32);
  auto fk = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::softmax_lastaxis(a[0])}; };
  auto fr = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{ref_softmax(a[0])}; };
  report("softmax vjp with -inf entries", compare(mx::vjp(fk, {masked}, {c}).second[0], mx::vjp(fr, {masked}, {c}).second[0], 1e-6, 1e-4));
}

struct AttnCase {
  int B, H, Hkv, L, S, D, Dv;
  bool causal;
  int mask;  // 0 none, 1 additive [L,S], 2 bool [B,1,L,S] with fully masked rows, 3 additive [B,H,L,S] + grad
  bool transposed_q;
};

static void check_attention() {
  std::vector<AttnCase> cases = {
      {1, 9, 3, 492, 492, 64, 64, true, 0, false},  {4, 9, 3, 256, 256, 64, 64, true, 0, false},
      {2, 4, 2, 37, 53, 40, 40, true, 0, false},    {2, 4, 4, 17, 17, 24, 24, false, 0, false},
      {1, 6, 2, 33, 70, 64, 64, true, 1, false},    {2, 2, 1, 20, 30, 16, 16, false, 2, false},
      {2, 2, 1, 20, 30, 16, 16, true, 2, false},    {1, 2, 2, 5, 3, 8, 8, true, 0, false},
      {1, 2, 1, 10, 12, 16, 24, true, 0, false},    {2, 3, 3, 19, 19, 32, 32, false, 3, true},
      {1, 1, 1, 1, 1, 4, 4, true, 0, false},        {1, 4, 2, 130, 131, 80, 80, false, 1, true},
  };
  uint64_t seed = 40;
  for (auto& cs : cases) {
    auto q = randn({cs.B, cs.H, cs.L, cs.D}, seed++);
    if (cs.transposed_q) q = mx::swapaxes(randn({cs.B, cs.L, cs.H, cs.D}, seed++), 1, 2);
    auto k = randn({cs.B, cs.Hkv, cs.S, cs.D}, seed++), v = randn({cs.B, cs.Hkv, cs.S, cs.Dv}, seed++);
    auto c = randn({cs.B, cs.H, cs.L, cs.Dv}, seed++);
    float scale = 1.0f / std::sqrt(float(cs.D));
    std::optional<mx::array> mask;
    if (cs.mask == 1) mask = randn({cs.L, cs.S}, seed++);
    if (cs.mask == 2) {
      // keep-mask with rows 3 and 7 of batch 0 fully masked
      auto keep = mx::greater(mx::random::uniform({cs.B, 1, cs.L, cs.S}, mx::random::key(seed++)), mx::array(0.3f));
      auto rows = mx::reshape(mx::arange(cs.L), {1, 1, cs.L, 1});
      auto bidx = mx::reshape(mx::arange(cs.B), {cs.B, 1, 1, 1});
      auto dead = mx::logical_and(mx::equal(bidx, mx::array(0)),
                                  mx::logical_or(mx::equal(rows, mx::array(3)), mx::equal(rows, mx::array(7))));
      mask = mx::logical_and(keep, mx::logical_not(dead));
    }
    if (cs.mask == 3) mask = randn({cs.B, cs.H, cs.L, cs.S}, seed++);
    char tag[160];
    std::snprintf(tag, sizeof tag, "attn B%d H%d/%d L%d S%d D%d/%d%s%s%s", cs.B, cs.H, cs.Hkv, cs.L, cs.S, cs.D, cs.Dv,
                  cs.causal ? " causal" : "", cs.mask == 1 ? " +mask" : cs.mask == 2 ? " boolmask" : cs.mask == 3 ? " +fullmask" : "",
                  cs.transposed_q ? " qT" : "");
    report(std::string(tag) + " fwd",
           compare(vk::attention(q, k, v, scale, cs.causal, mask), ref_attention(q, k, v, scale, cs.causal, mask), 2e-5, 1e-4));
    bool mask_grad = cs.mask == 3;
    auto fk = [&](const std::vector<mx::array>& a) {
      return std::vector<mx::array>{vk::attention(a[0], a[1], a[2], scale, cs.causal, mask_grad ? std::optional<mx::array>(a[3]) : mask)};
    };
    auto fr = [&](const std::vector<mx::array>& a) {
      return std::vector<mx::array>{ref_attention(a[0], a[1], a[2], scale, cs.causal, mask_grad ? std::optional<mx::array>(a[3]) : mask)};
    };
    std::vector<mx::array> prim = {q, k, v};
    if (mask_grad) prim.push_back(*mask);
    auto gk = mx::vjp(fk, prim, {c}).second, gr = mx::vjp(fr, prim, {c}).second;
    const char* names[] = {" dq", " dk", " dv", " dmask"};
    for (size_t i = 0; i < gk.size(); ++i) report(std::string(tag) + names[i], compare(gk[i], gr[i], 1e-4, 1e-3));
  }
  // The fallback path (float16) still runs.
  auto q = mx::astype(randn({1, 2, 8, 16}, 90), mx::float16), k = mx::astype(randn({1, 1, 8, 16}, 91), mx::float16);
  auto v = mx::astype(randn({1, 1, 8, 16}, 92), mx::float16);
  report("attn float16 fallback (vs reference in float32)",
         compare(vk::attention(q, k, v, 0.25f, true, std::nullopt), ref_attention(mx::astype(q, mx::float32), mx::astype(k, mx::float32), mx::astype(v, mx::float32), 0.25f, true, std::nullopt), 5e-3, 5e-3));
}

// ---------------------------------------------------------------- benchmarks --------------------
static void bench(bool with_mlx) {
  int reps = g_quick ? 5 : 20;
  auto line = [&](const char* what, double k, double m) {
    if (m > 0)
      std::printf("  %-44s kernel %8.3f ms   MLX %8.3f ms   x%.1f\n", what, k, m, m / k);
    else
      std::printf("  %-44s kernel %8.3f ms\n", what, k);
  };
  {
    auto g = randn({492, 1536}, 1), u = randn({492, 1536}, 2), c = randn({492, 1536}, 3);
    double k = time_ms([&] { return std::vector<mx::array>{vk::silu_gate(g, u)}; }, reps);
    double m = with_mlx ? time_ms([&] { return std::vector<mx::array>{ref_silu_gate(g, u)}; }, reps) : 0;
    line("silu_gate 492x1536 fwd", k, m);
    auto fk = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::silu_gate(a[0], a[1])}; };
    auto fr = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{ref_silu_gate(a[0], a[1])}; };
    k = time_ms([&] { return mx::vjp(fk, {g, u}, {c}).second; }, reps);
    m = with_mlx ? time_ms([&] { return mx::vjp(fr, {g, u}, {c}).second; }, reps) : 0;
    line("silu_gate 492x1536 fwd+vjp", k, m);
  }
  {
    auto x = randn({9, 492, 492}, 4, 3.0f), c = randn({9, 492, 492}, 5);
    double k = time_ms([&] { return std::vector<mx::array>{vk::softmax_lastaxis(x)}; }, reps);
    double m = with_mlx ? time_ms([&] { return std::vector<mx::array>{mx::softmax(x, -1, true)}; }, reps) : 0;
    line("softmax 9x492x492 fwd", k, m);
    auto fk = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::softmax_lastaxis(a[0])}; };
    auto fr = [](const std::vector<mx::array>& a) { return std::vector<mx::array>{mx::softmax(a[0], -1, true)}; };
    k = time_ms([&] { return mx::vjp(fk, {x}, {c}).second; }, reps);
    m = with_mlx ? time_ms([&] { return mx::vjp(fr, {x}, {c}).second; }, reps) : 0;
    line("softmax 9x492x492 fwd+vjp", k, m);
  }
  struct Cfg { int B, H, Hkv, L, S; };
  for (Cfg cf : {Cfg{1, 9, 3, 492, 492}, Cfg{4, 9, 3, 256, 256}, Cfg{1, 9, 3, 1, 492}}) {
    int D = 64;
    auto q = randn({cf.B, cf.H, cf.L, D}, 6), k = randn({cf.B, cf.Hkv, cf.S, D}, 7), v = randn({cf.B, cf.Hkv, cf.S, D}, 8);
    auto c = randn({cf.B, cf.H, cf.L, D}, 9);
    float scale = 0.125f;
    char what[96];
    std::snprintf(what, sizeof what, "causal attn B%d H%d/%d L%d S%d D64", cf.B, cf.H, cf.Hkv, cf.L, cf.S);
    double kt = time_ms([&] { return std::vector<mx::array>{vk::attention(q, k, v, scale, true, std::nullopt)}; }, reps);
    double mt = with_mlx ? time_ms([&] { return std::vector<mx::array>{mx::fast::scaled_dot_product_attention(q, k, v, scale, "causal")}; }, reps) : 0;
    line((std::string(what) + " fwd").c_str(), kt, mt);
    auto fk = [&](const std::vector<mx::array>& a) { return std::vector<mx::array>{vk::attention(a[0], a[1], a[2], scale, true, std::nullopt)}; };
    auto fr = [&](const std::vector<mx::array>& a) { return std::vector<mx::array>{mx::fast::scaled_dot_product_attention(a[0], a[1], a[2], scale, "causal")}; };
    kt = time_ms([&] { return mx::vjp(fk, {q, k, v}, {c}).second; }, reps);
    mt = with_mlx ? time_ms([&] { return mx::vjp(fr, {q, k, v}, {c}).second; }, reps) : 0;
    line((std::string(what) + " fwd+vjp").c_str(), kt, mt);
  }
}

// bf16 matmuls on AMX (amx_matmul.cpp) against MLX's float32 matmul (OpenBLAS) on the shapes of
// SmolLM2's layers and output head at 1024 / 512 rows; only where AMX works.
static void bench_amx() {
  if (!vk::amx_available()) {
    std::printf("AMX: not available here (amx_available() is false), no bf16 timings\n");
    return;
  }
  int reps = g_quick ? 5 : 20;
  std::printf("AMX bf16 matmul vs MLX float32 matmul (x [M, K] · W^T, W [N, K]):\n");
  struct Shape { int m, k, n; };
  for (Shape sh : {Shape{1024, 576, 576}, Shape{1024, 576, 1536}, Shape{1024, 1536, 576}, Shape{1024, 576, 192},
                   Shape{1024, 192, 576}, Shape{512, 576, 49152}, Shape{512, 49152, 576}}) {
    auto x = randn({sh.m, sh.k}, 11), w = randn({sh.n, sh.k}, 12);
    auto fwd = vk::pack_bf16(w, true), bwd = vk::pack_bf16(w, false);
    double a = time_ms([&] { return std::vector<mx::array>{vk::bf16_matmul(x, fwd, bwd, sh.n, sh.k)}; }, reps);
    double b = time_ms([&] { return std::vector<mx::array>{mx::matmul(x, mx::transpose(w))}; }, reps);
    double flop = 2.0 * sh.m * sh.k * sh.n;
    std::printf("  %5d x %5d x %5d   AMX %7.1f GFLOP/s   MLX float32 %7.1f GFLOP/s   x%.2f\n", sh.m, sh.k, sh.n,
                flop / a / 1e6, flop / b / 1e6, b / a);
  }
}

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads();

// blas_matmul (blas_matmul.cpp) on the float32 products of a DPO step on SmolLM2 (768 token rows
// of the layers, 512 of the head; forward x · W^T and input gradient dy · W) in three settings:
// MLX's matmul with OpenBLAS's own threads, the same with OpenBLAS single-threaded, and
// blas_matmul split over the kernel pool with OpenBLAS single-threaded (training's setting).
// `--gemm` runs only this.
static void bench_gemm() {
  const int reps = g_quick ? 5 : 20;
  const int threads = openblas_get_num_threads();
  std::printf("float32 GEMM, OpenBLAS %d threads / 1 thread / 1 thread per block of blas_matmul over %d kernel threads (GFLOP/s):\n",
              threads, vk::detail::num_threads());
  struct Shape { const char* name; int m, k, n; bool transpose; };
  for (Shape sh : {Shape{"q/o fwd", 768, 576, 576, true}, Shape{"k/v fwd", 768, 576, 192, true},
                   Shape{"gate/up fwd", 768, 576, 1536, true}, Shape{"down fwd", 768, 1536, 576, true},
                   Shape{"q/o dx", 768, 576, 576, false}, Shape{"gate/up dx", 768, 1536, 576, false},
                   Shape{"down dx", 768, 576, 1536, false}, Shape{"head fwd", 512, 576, 49152, true},
                   Shape{"head dx", 512, 49152, 576, false}}) {
    auto x = randn({sh.m, sh.k}, 11);
    auto w = sh.transpose ? randn({sh.n, sh.k}, 12) : randn({sh.k, sh.n}, 12);
    mx::eval({x, w});
    auto mlx = [&] { return std::vector<mx::array>{mx::matmul(x, sh.transpose ? mx::transpose(w) : w)}; };
    openblas_set_num_threads(threads);
    double a = time_ms(mlx, reps);
    openblas_set_num_threads(1);
    double b = time_ms(mlx, reps);
    double c = time_ms([&] { return std::vector<mx::array>{vk::blas_matmul(x, w, sh.transpose)}; }, reps);
    openblas_set_num_threads(threads);
    const double flop = 2.0 * sh.m * sh.k * sh.n;
    std::printf("  %-11s %4d x %5d x %5d   %6.1f   %6.1f   %6.1f   split/OpenBLAS-threads x%.2f\n", sh.name, sh.m,
                sh.k, sh.n, flop / a / 1e6, flop / b / 1e6, flop / c / 1e6, a / c);
  }
}

// The packed-weight matmul (quantized_matmul_rows) on SmolLM2's decode shapes, weights cold (a
// ring of matrices larger than the caches, as in a decode step), against the float32 MLX matmul of
// the dequantised weights (also cold): GFLOP/s per row count. `--qmm` runs only this.
static void bench_qmm() {
  const int reps = g_quick ? 10 : 40;
  std::printf("quantized_matmul_rows vs MLX float32 matmul, cold weights (GFLOP/s):\n");
  struct Shape { const char* name; int k, n, bits; };
  for (Shape sh : {Shape{"qkv", 576, 960, 4}, Shape{"o", 576, 576, 4}, Shape{"gate_up", 576, 3072, 4},
                   Shape{"down", 1536, 576, 4}, Shape{"head", 576, 49152, 8}}) {
    const int64_t bytes = int64_t(sh.k) * sh.n * 4;
    const int ring = std::getenv("QMM_HOT") ? 1 : int(std::max<int64_t>(2, (int64_t(256) << 20) / bytes));
    std::vector<std::vector<mx::array>> q;
    std::vector<mx::array> dense;
    for (int r = 0; r < ring; ++r) {
      auto w = randn({sh.n, sh.k}, 100 + uint64_t(r), 0.05f);
      auto p = mx::quantize(w, 32, sh.bits);
      mx::eval(p);
      q.push_back(p);
      if (r < 4 || bytes * r < (int64_t(512) << 20)) {
        auto d = mx::dequantize(p[0], p[1], p[2], 32, sh.bits);
        mx::eval(d);
        dense.push_back(d);
      }
    }
    std::printf("  %-8s %5d -> %5d %d-bit:", sh.name, sh.k, sh.n, sh.bits);
    for (int m : {1, 4, 8, 16, 32, 64}) {
      auto x = randn({m, sh.k}, 7);
      mx::eval(x);
      int i = 0, j = 0;
      double a = time_ms([&] {
        auto& p = q[size_t(i++ % ring)];
        return std::vector<mx::array>{vk::quantized_matmul_rows(x, p[0], p[1], p[2], 32, sh.bits)};
      }, reps);
      double b = time_ms([&] {
        return std::vector<mx::array>{mx::matmul(x, mx::transpose(dense[size_t(j++ % int(dense.size()))]))};
      }, reps);
      const double flop = 2.0 * m * sh.k * sh.n;
      std::printf("  M=%d %.0f (f32 %.0f)", m, flop / a / 1e6, flop / b / 1e6);
    }
    std::printf("\n");
  }
}

int main(int argc, char** argv) {
  bool do_bench = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-bench") do_bench = false;
    if (a == "--quick") g_quick = true;
    if (a == "--qmm") {
      bench_qmm();
      return 0;
    }
    if (a == "--amx") {
      bench_amx();
      return 0;
    }
    if (a == "--gemm") {
      bench_gemm();
      return 0;
    }
  }
  std::printf("kernel threads: %d, auto ISA: %d\n", vk::detail::num_threads(), vk::isa());
  try {
    for (int level = 2; level >= 0; --level) {
      try {
        vk::set_isa(level);
      } catch (const std::invalid_argument& e) {
        std::printf("ISA %d: not supported by this CPU, skipped (%s)\n", level, e.what());
        continue;
      }
      std::printf("ISA %d (%s)\n", level, vk::detail::table().name);
      check_exp();
      check_silu_gate();
      check_softmax();
      check_attention();
      if (do_bench) bench(level == 2 || (level == vk::isa()));
    }
    vk::set_isa(-1);
    if (do_bench) bench_amx();
    bool threw = false;
    try {
      vk::set_isa(7);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    if (!threw) {
      std::printf("set_isa(7) did not throw\n");
      ++g_failures;
    }
  } catch (const std::exception& e) {
    std::printf("exception: %s\n", e.what());
    return 2;
  }
  std::printf(g_failures ? "FAILED: %d mismatches\n" : "all checks passed\n", g_failures);
  return g_failures ? 1 : 0;
}
