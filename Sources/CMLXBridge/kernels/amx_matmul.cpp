// bfloat16 matmuls on Intel AMX tiles, for frozen weights (LoRA training, scoring).
//
// y[M, N] = x[M, K] · B[K, N] where B comes pre-packed from a float32 weight matrix W (B = W^T
// for a linear layer's forward, y = x W^T; B = W for its input gradient, dx = dy W). x is rounded
// to bfloat16 per call, products accumulate in float32 (TDPBF16PS): the precision of PyTorch's
// bf16 autocast. The AMX tiles do one 16x16x32 product per instruction; Benchmarks/kernels
// (check.cpp) times this against MLX's float32 matmul through OpenBLAS.
//
// Packed layout of B (uint16 bf16 bits): [N_pad / 16][K_pad / 32][16 rows][32 lanes]: tile
// (nb, kb) holds B[kb*32 + 2r + (c & 1), nb*16 + c / 2] at row r, lane c (the VNNI pairing AMX
// expects for its B operand); N is padded to a multiple of 32 and K to a multiple of 32 with zeros.
//
// The primitive takes {x, pack(W^T), pack(W)} so its VJP with respect to x is the same
// primitive with the packs swapped; the packs themselves have no gradient (frozen weights).
//
// AMX needs the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM) and a hypervisor that passes
// the tile state through: some VMs advertise AMX in CPUID and fault on its first instruction.
// amx_available() therefore probes once in a forked child before any use; VALUEALIGN_AMX=0 turns
// the path off.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
#include <cpuid.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#define VA_AMX_POSSIBLE 1
#else
#define VA_AMX_POSSIBLE 0
#endif

#include "../kernels.h"
#include "internal.h"
#include "primitive_util.h"

namespace valuealign::kernels {
namespace {

namespace mx = mlx::core;
using namespace detail;

constexpr int64_t kTileRows = 16;  // rows of an A or C tile, k-pairs of a B tile
constexpr int64_t kTileK = 32;     // bf16 values along K per tile
constexpr int64_t kTileElems = kTileRows * kTileK;

inline int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

// float -> bfloat16 bits, round to nearest even (NaN stays NaN).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

#if VA_AMX_POSSIBLE

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw")
#endif

struct TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0-3: C (2 x 2 blocks of 16 x 16 float32), 4-5: A (16 rows x 32 bf16), 6-7: B (16 k-pairs x
// 16 columns x 2).
void load_config() {
  alignas(64) TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// Rows [m0, m1) (whole 16-row blocks) of x (float32, row stride K) to bf16 A tiles: row block ib,
// K block kb at a + (ib * KB + kb) * 512, 16 rows x 32 values each, so every tile the kernel loads
// is 1 KB of consecutive memory (one stream for the prefetchers, where a row-major A gives 16
// streams per tile, 32 per step). Rows past M and columns past K are zeros.
void convert_rows(const float* x, int64_t K, int64_t Kp, int64_t m0, int64_t m1, int64_t M, uint16_t* a) {
  const int64_t KB = Kp / kTileK;
  const __m512i round = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  for (int64_t m = m0; m < m1; ++m) {
    uint16_t* base = a + (m / kTileRows) * KB * kTileElems + (m % kTileRows) * kTileK;
    if (m >= M) {
      for (int64_t kb = 0; kb < KB; ++kb) std::memset(base + kb * kTileElems, 0, kTileK * 2);
      continue;
    }
    const float* src = x + m * K;
    for (int64_t kb = 0; kb < KB; ++kb) {
      uint16_t* dst = base + kb * kTileElems;
      const int64_t k0 = kb * kTileK;
      for (int64_t h = 0; h < kTileK; h += 16) {
        const int64_t k = k0 + h;
        __m512i u;
        if (k + 16 <= K) {
          u = _mm512_castps_si512(_mm512_loadu_ps(src + k));
        } else {
          const int64_t left = std::max<int64_t>(0, K - k);
          u = _mm512_castps_si512(_mm512_maskz_loadu_ps(__mmask16((1u << left) - 1u), src + k));
        }
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(round, lsb)), 16);
        // NaN lanes: keep them NaN (quiet bit set).
        __mmask16 nan = _mm512_cmp_ps_mask(_mm512_castsi512_ps(u), _mm512_castsi512_ps(u), _CMP_UNORD_Q);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + h), _mm512_cvtepi32_epi16(r));
      }
    }
  }
}

// C tiles 0-3 (rows of A tiles a0 / a1 by columns of B tiles b0 / b1) += the products of K blocks
// [kb0, kb1): A in tile order (convert_rows), B packed (pack_bf16).
inline void accumulate_2x2(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0, const uint16_t* b1, int64_t kb0,
                           int64_t kb1) {
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    _tile_loadd(4, a0 + kb * kTileElems, 64);
    _tile_loadd(5, a1 + kb * kTileElems, 64);
    _tile_loadd(6, b0 + kb * kTileElems, 64);
    _tile_loadd(7, b1 + kb * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

// C block pairs [j0, j1) (32 columns each) for all row blocks: y = a · B.
void amx_blocks(const uint16_t* a, int64_t Mp, int64_t Kp, const uint16_t* b, int64_t j0, int64_t j1, float* y,
                int64_t M, int64_t N) {
  load_config();
  const int64_t KB = Kp / kTileK;
  alignas(64) float c[32 * 32];
  for (int64_t j = j0; j < j1; ++j) {
    const uint16_t* b0 = b + (2 * j) * KB * kTileElems;
    const uint16_t* b1 = b + (2 * j + 1) * KB * kTileElems;
    for (int64_t i = 0; i < Mp; i += 32) {
      const uint16_t* a0 = a + (i / kTileRows) * KB * kTileElems;
      const uint16_t* a1 = a0 + KB * kTileElems;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      accumulate_2x2(a0, a1, b0, b1, 0, KB);
      const int64_t rows = std::min<int64_t>(32, M - i), n0 = j * 32, cols = std::min<int64_t>(32, N - n0);
      if (rows == 32 && cols == 32) {
        // A whole block: straight into y.
        float* yb = y + i * N + n0;
        _tile_stored(0, yb, N * 4);
        _tile_stored(1, yb + 16, N * 4);
        _tile_stored(2, yb + 16 * N, N * 4);
        _tile_stored(3, yb + 16 * N + 16, N * 4);
        continue;
      }
      _tile_stored(0, c, 128);
      _tile_stored(1, c + 16, 128);
      _tile_stored(2, c + 16 * 32, 128);
      _tile_stored(3, c + 16 * 32 + 16, 128);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(y + (i + r) * N + n0, c + r * 32, size_t(cols) * 4);
    }
  }
  _tile_release();
}

// The same product for a long K (an output head's input gradient: K = 49152 against M = 512,
// N = 576): amx_blocks would stream a column pair's whole B (3 MB) from memory again for every
// 32-row block. Here K goes in chunks of kChunkTiles tiles; within a chunk each 32-row block of A
// (32 KB, L1) meets every column pair of the thread's range, whose B chunk (up to ~300 KB) stays in
// L2, and the partial sums live in a scratch block c [Mp, 32 * (j1 - j0)] (tile loads and stores
// once per chunk). Every byte of A and B is read from memory once per thread.
constexpr int64_t kChunkTiles = 16;

void amx_blocks_long_k(const uint16_t* a, int64_t Mp, int64_t Kp, const uint16_t* b, int64_t j0, int64_t j1, float* y,
                       int64_t M, int64_t N) {
  load_config();
  const int64_t KB = Kp / kTileK, width = 32 * (j1 - j0);
  const int64_t ldc = width * 4;  // bytes
  std::unique_ptr<float[]> c(new float[size_t(Mp * width)]);
  for (int64_t kc = 0; kc < KB; kc += kChunkTiles) {
    const int64_t kend = std::min(KB, kc + kChunkTiles);
    for (int64_t i = 0; i < Mp; i += 32) {
      const uint16_t* a0 = a + (i / kTileRows) * KB * kTileElems;
      const uint16_t* a1 = a0 + KB * kTileElems;
      for (int64_t j = j0; j < j1; ++j) {
        const uint16_t* b0 = b + (2 * j) * KB * kTileElems;
        const uint16_t* b1 = b + (2 * j + 1) * KB * kTileElems;
        float* cb = c.get() + i * width + (j - j0) * 32;
        if (kc == 0) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, cb, ldc);
          _tile_loadd(1, cb + 16, ldc);
          _tile_loadd(2, cb + 16 * width, ldc);
          _tile_loadd(3, cb + 16 * width + 16, ldc);
        }
        accumulate_2x2(a0, a1, b0, b1, kc, kend);
        _tile_stored(0, cb, ldc);
        _tile_stored(1, cb + 16, ldc);
        _tile_stored(2, cb + 16 * width, ldc);
        _tile_stored(3, cb + 16 * width + 16, ldc);
      }
    }
  }
  _tile_release();
  const int64_t n0 = j0 * 32, cols = std::min(N, j1 * 32) - n0;
  for (int64_t r = 0; r < M; ++r) std::memcpy(y + r * N + n0, c.get() + r * width, size_t(cols) * 4);
}

// Tests AMX in this process's context: permission, then one tile product (may fault).
bool amx_try() {
  constexpr long kReqPerm = 0x1023, kXtileData = 18;
  if (syscall(SYS_arch_prctl, kReqPerm, kXtileData) != 0) return false;
  alignas(64) uint16_t a[kTileElems], b[kTileElems];
  alignas(64) float c[256];
  for (int i = 0; i < kTileElems; ++i) a[i] = b[i] = 0x3f80;  // 1.0
  load_config();
  _tile_zero(0);
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 64);
  _tile_dpbf16ps(0, 4, 6);
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0] == 32.0f && c[255] == 32.0f;
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

bool cpuid_has_amx() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
  if (!tile || !bf16) return false;
  // The OS must enable the tile state in XCR0 (bits 17 and 18).
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & (3u << 17)) == (3u << 17);
}

bool detect_amx() {
  if (const char* e = std::getenv("VALUEALIGN_AMX"); e && std::string(e) == "0") return false;
  if (!cpuid_has_amx()) return false;
  // Probe in a child first: a VM that advertises AMX but does not pass it through kills the
  // child (SIGILL/SIGSEGV), not us.
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) _exit(amx_try() ? 0 : 1);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  return amx_try();  // the permission is per process: ask for it here too
}

#else
bool detect_amx() { return false; }
void amx_blocks(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t, int64_t) {
  throw std::logic_error("AMX is not available on this platform");
}
void amx_blocks_long_k(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t, int64_t) {
  throw std::logic_error("AMX is not available on this platform");
}
void convert_rows(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*) {
  throw std::logic_error("AMX is not available on this platform");
}
#endif

std::atomic<int> amx_forced{-1};

class AmxMatmul : public mx::UnaryPrimitive {
 public:
  // x [..., K] -> [..., N]; inputs {x, pack of B [K, N], pack of B^T [N, K]}.
  AmxMatmul(mx::Stream s, int64_t n, int64_t k) : mx::UnaryPrimitive(s), n_(n), k_(k) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    alloc_output(out);
    auto& enc = mx::cpu::get_command_encoder(stream());
    const auto& x = in[0];
    const auto& b = in[1];
    require_row_contiguous(x, "bf16_matmul");
    require_row_contiguous(b, "bf16_matmul");
    enc.set_input_array(x);
    enc.set_input_array(b);
    enc.set_output_array(out);
    enc.dispatch([x = mx::array::unsafe_weak_copy(x), b = mx::array::unsafe_weak_copy(b),
                  y = mx::array::unsafe_weak_copy(out), N = n_, K = k_]() mutable {
      const int64_t M = int64_t(x.size()) / K;
      if (M == 0 || N == 0) return;
      const int64_t Mp = round_up(M, 32), Kp = round_up(K, kTileK), Np = round_up(N, 32);
      // Every element is written by convert_rows (padding included): no zero fill.
      std::unique_ptr<uint16_t[]> a(new uint16_t[size_t(Mp * Kp)]);
      const float* xs = x.data<float>();
      parallel_range(Mp, 64, 32, [&](int64_t m0, int64_t m1) { convert_rows(xs, K, Kp, m0, m1, M, a.get()); });
      const uint16_t* bs = b.data<uint16_t>();
      float* ys = y.data<float>();
      // Long K: chunked (amx_blocks_long_k says why). 4096 = where one column pair's B (256 KB)
      // stops fitting next to A's rows in L2.
      const auto blocks = Kp > 4096 ? amx_blocks_long_k : amx_blocks;
      parallel_range(Np / 32, 1, 1, [&](int64_t j0, int64_t j1) { blocks(a.get(), Mp, Kp, bs, j0, j1, ys, M, N); });
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override { no_gpu("bf16_matmul"); }

  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    std::vector<mx::array> res;
    for (int a : argnums) {
      if (a != 0) throw std::invalid_argument("[bf16_matmul] the packed weights are frozen: no gradient for them");
      auto c = mx::astype(cotangents[0], mx::float32, stream());
      if (!c.flags().row_contiguous) c = mx::contiguous(c, false, stream());
      res.push_back(mx::array(primals[0].shape(), mx::float32, std::make_shared<AmxMatmul>(stream(), k_, n_),
                              {c, primals[2], primals[1]}));
    }
    return res;
  }

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override {
    for (int a : argnums)
      if (a != 0) throw std::invalid_argument("[bf16_matmul] the packed weights are frozen: no derivative for them");
    auto t = mx::contiguous(mx::astype(tangents[0], mx::float32, stream()), false, stream());
    auto shape = primals[0].shape();
    shape.back() = int(n_);
    return {mx::array(shape, mx::float32, std::make_shared<AmxMatmul>(stream(), n_, k_), {t, primals[1], primals[2]})};
  }

  const char* name() const override { return "ValueAlignBF16Matmul"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto* o = dynamic_cast<const AmxMatmul*>(&other);
    return o && o->n_ == n_ && o->k_ == k_;
  }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& in) override {
    auto shape = in[0].shape();
    shape.back() = int(n_);
    return {shape};
  }

 private:
  int64_t n_, k_;
};

}  // namespace

bool amx_available() {
  const int f = amx_forced.load(std::memory_order_relaxed);
  static const bool detected = [] {
    try {
      return detect_amx();
    } catch (...) {
      return false;
    }
  }();
  if (f == 0) return false;
  return detected;
}

void set_amx_enabled(bool on) { amx_forced.store(on ? -1 : 0, std::memory_order_relaxed); }

mx::array pack_bf16(const mx::array& w, bool transpose) {
  if (w.ndim() != 2) throw std::invalid_argument("[pack_bf16] expects a 2-D matrix, got " + std::to_string(w.ndim()) + "-D");
  auto wf = mx::contiguous(mx::astype(w, mx::float32), false);
  mx::eval(wf);
  // B [K, N]: B = W^T (transpose) or W.
  const int64_t R = wf.shape(0), C = wf.shape(1);
  const int64_t K = transpose ? C : R, N = transpose ? R : C;
  const int64_t Kp = round_up(K, kTileK), Np = round_up(N, 32), KB = Kp / kTileK;
  // Written in place and handed to MLX without a copy.
  std::unique_ptr<uint16_t, decltype(&std::free)> buffer(
      static_cast<uint16_t*>(std::malloc(size_t(Np * Kp) * sizeof(uint16_t))), &std::free);
  if (!buffer) throw std::bad_alloc();
  uint16_t* p = buffer.get();
  const float* src = wf.data<float>();
  parallel_range(Np / kTileRows, 4, 1, [&](int64_t nb0, int64_t nb1) {
    for (int64_t nb = nb0; nb < nb1; ++nb) {
      for (int64_t kb = 0; kb < KB; ++kb) {
        uint16_t* tile = p + (nb * KB + kb) * kTileElems;
        // Element (k, n) of the block goes to row k / 2, lane 2 n + k % 2; read w along its rows.
        for (int64_t a = 0; a < kTileRows; ++a) {
          for (int64_t b = 0; b < kTileK; ++b) {
            // transpose: w[n, k] is read along k; else w[k, n] is read along n.
            int64_t kl, nl;
            if (transpose) {
              nl = a;
              kl = b;
            } else {
              kl = (a * kTileK + b) / kTileRows;
              nl = (a * kTileK + b) % kTileRows;
            }
            const int64_t k = kb * kTileK + kl, n = nb * kTileRows + nl;
            float v = 0;
            if (k < K && n < N) v = transpose ? src[n * C + k] : src[k * C + n];
            tile[(kl / 2) * kTileK + 2 * nl + (kl & 1)] = to_bf16(v);
          }
        }
      }
    }
  });
  return mx::array(buffer.release(), mx::Shape{int(Np / kTileRows), int(KB), int(kTileElems)}, mx::uint16, [](void* q) { std::free(q); });
}

mx::array bf16_matmul(const mx::array& x, const mx::array& forward, const mx::array& backward, int n, int k) {
  if (!amx_available()) throw std::runtime_error("[bf16_matmul] AMX is not available on this CPU (see amx_available)");
  auto s = cpu_stream();
  if (!s) throw std::runtime_error("[bf16_matmul] runs on the CPU only");
  if (x.ndim() < 1 || x.shape(-1) != k)
    throw std::invalid_argument("[bf16_matmul] x's last axis is " + std::to_string(x.ndim() ? x.shape(-1) : 0) +
                                ", the weight's input width is " + std::to_string(k));
  auto check = [](const mx::array& p, int64_t K, int64_t N, const char* which) {
    const int64_t Kp = round_up(K, kTileK), Np = round_up(N, 32);
    if (p.dtype() != mx::uint16 || p.ndim() != 3 || p.shape(0) != Np / kTileRows || p.shape(1) != Kp / kTileK ||
        p.shape(2) != kTileElems)
      throw std::invalid_argument(std::string("[bf16_matmul] the ") + which + " pack does not fit a " + std::to_string(K) +
                                  " x " + std::to_string(N) + " product (use pack_bf16)");
  };
  check(forward, k, n, "forward");
  check(backward, n, k, "backward");
  auto xc = mx::contiguous(mx::astype(x, mx::float32, *s), false, *s);
  auto shape = x.shape();
  shape.back() = n;
  return mx::array(shape, mx::float32, std::make_shared<AmxMatmul>(*s, n, k), {xc, forward, backward});
}

}  // namespace valuealign::kernels
