// ValueAlign's own vectorised CPU kernels, exposed as MLX custom primitives with VJPs.
// Internal C++ header of the CMLXBridge target (Swift sees only include/mlxbridge.h).
#pragma once
#include <optional>

#include "mlx/mlx.h"

namespace valuealign::kernels {

// silu(gate) * up, element-wise, same shapes. Falls back to MLX ops when the shapes differ, the
// dtype is not float32, or the default device is not the CPU.
mlx::core::array silu_gate(const mlx::core::array& gate, const mlx::core::array& up);
// The same for x [..., 2N] holding gate (first N) and up (last N) in each row -> [..., N]: the
// output of a fused gate/up projection, read and (in the VJP) written without splitting. Throws for
// an odd last axis; non-float32 x or a non-CPU default device get MLX ops.
mlx::core::array silu_gate_halves(const mlx::core::array& x);

// RMSNorm over the last axis, mlx::core::fast::rms_norm's semantics (y = x * w / sqrt(mean(x^2) +
// eps)): one vectorised pass per direction, rows split across the kernel threads; the VJP with
// respect to x is one primitive too. Non-float32 inputs, no weight, or a non-CPU default device go
// to mlx::core::fast::rms_norm.
mlx::core::array rms_norm(const mlx::core::array& x, const std::optional<mlx::core::array>& weight, float eps);

// Softmax over the last axis (float32 fast path; other dtypes fall back to
// mlx::core::softmax(x, -1, true)). A row that is entirely -inf gives zeros (MLX gives NaN).
mlx::core::array softmax_lastaxis(const mlx::core::array& x);

// log_softmax(scale * x)[t] per row: x [N, V] float32 logits, targets [N] integers -> [N]. One pass
// over the logits forward and one backward (dx = scale (g onehot(t) - g softmax(scale x))), where
// log-softmax + take_along_axis in MLX ops make and read several [N, V] arrays. A target outside
// [0, V) gives NaN. Differentiable with respect to x. Non-CPU devices get the MLX composition.
mlx::core::array logsoftmax_pick(const mlx::core::array& x, const mlx::core::array& targets, float scale);

// attention: q [B,H,L,D], k,v [B,Hkv,S,D], H % Hkv == 0 (GQA), out [B,H,L,D] =
// softmax(scale*q@k^T + mask) @ v. causal: query i (of L) attends to keys j <= i + (S - L).
// mask, when given, is additive float (or a bool keep-mask) broadcastable to [B,H,L,S].
// Fully masked rows give zeros. Falls back to mlx::core::fast::scaled_dot_product_attention for
// non-float32 inputs, non-4-D inputs or a non-CPU default device.
mlx::core::array attention(const mlx::core::array& q, const mlx::core::array& k, const mlx::core::array& v,
                           float scale, bool causal, const std::optional<mlx::core::array>& mask);

// x · dequantize(w)^T for MLX affine-quantised w [N, K*bits/32] (uint32) with scales and biases
// [N, K/group_size]: x [..., K] float32 -> [..., N] float32. Made for few rows of x (decode): one
// pass over the packed weights per call, dequantised in registers, columns split across threads.
// Covers bits 4 and 8, group sizes 32, 64 and 128, float16 / float32 / bfloat16 scales; anything
// else (other bit widths or modes, missing biases, non-float32 x, batched w, a non-CPU default
// device) goes to mlx::core::quantized_matmul(..., transpose = true, ...). Differentiable with
// respect to x, scales and biases; asking for the gradient of the packed weight throws.
mlx::core::array quantized_matmul_rows(const mlx::core::array& x, const mlx::core::array& w,
                                       const mlx::core::array& scales, const std::optional<mlx::core::array>& biases,
                                       int group_size, int bits);

// Rotary position embedding, MLX's semantics (mlx::core::fast::rope): x [..., L, D], positions
// (offset + l) * scale, the first `dims` features rotated in adjacent pairs (traditional) or
// halves. One primitive whose VJP is the inverse rotation (MLX's CPU rope is a ~20-op fallback).
// Non-float32 x or a non-CPU default device go to mlx::core::fast::rope.
mlx::core::array rope(const mlx::core::array& x, int dims, bool traditional, float base, float scale, int offset);

// Shape and settings of one fused Llama decode layer (decode_layer.cpp describes the inputs).
struct DecodeLayerSpec {
  int heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-5f;
  int rope_dims = 0;
  bool traditional = false;
  float rope_base = 10000, rope_scale = 1;
  float attn_scale = 1;
  int offset = 0;  // position of the new token; the caches hold positions [0, offset)
  int bits[4] = {4, 4, 4, 4};  // qkv, o, gate_up, down
  int groups[4] = {32, 32, 32, 32};
  bool has_bias = false;
  bool has_mask = false;
  // Low-rank (LoRA) updates of q, k, v, o, gate, up, down: each adds inputs At [K, R] and Bt [R, N].
  bool has_lora[7] = {false, false, false, false, false, false, false};
};

// One decoder layer for one new token per sequence (inference only; CPU only, else throws).
// Returns {y [B, 1, H], keys', values'}; see decode_layer.cpp for the inputs.
std::vector<mlx::core::array> decode_layer(const DecodeLayerSpec& spec, const std::vector<mlx::core::array>& inputs);

// float32 a [..., K] · b^T for b [N, K] (transpose_b: a linear layer's forward) or a · b for
// b [K, N], through cblas_sgemm (blas_matmul.cpp). With more than one kernel thread, a large
// product is cut into one block of the output per thread, one cblas_sgemm each, in parallel while
// OpenBLAS is single-threaded. Differentiable with respect to both. Other dtypes, a b that is not
// 2-D, a 1-D a, or a non-CPU default device go to mlx::core::matmul.
mlx::core::array blas_matmul(const mlx::core::array& a, const mlx::core::array& b, bool transpose_b);
// Splitting on (the default) or off (one cblas_sgemm per product; VALUEALIGN_SPLIT_GEMM=0 starts
// off). Process-wide; the rounding of later products changes with it.
void set_split_gemm(bool on);
// Whether large products are split and run in parallel now (on, more than one kernel thread,
// OpenBLAS single-threaded).
bool split_gemm_active();
// Whether they are split (on, more than one kernel thread), in parallel or not.
bool split_gemm_possible();
// Products split so far in this process.
uint64_t split_gemm_calls();
// OpenBLAS's thread count (openblas_get_num_threads), or -1 when cblas is not OpenBLAS's.
int blas_threads();

// bfloat16 matmuls on AMX tiles for frozen weights (amx_matmul.cpp).
// Whether AMX-BF16 works here (CPUID, OS state, kernel permission, and a probe in a forked child:
// some VMs advertise AMX and fault on it). VALUEALIGN_AMX=0 or set_amx_enabled(false) turn it off.
bool amx_available();
void set_amx_enabled(bool on);
// A float32 matrix w [R, C] packed as the bf16 B operand of bf16_matmul: B = w^T (transpose, the
// forward of a linear layer with weight w) or B = w (its input gradient). Evaluates w.
mlx::core::array pack_bf16(const mlx::core::array& w, bool transpose);
// x [..., k] -> [..., n] = bf16(x) · B with float32 accumulation; forward packs B [k, n], backward
// packs B^T [n, k] (used by the VJP, which is with respect to x only). Throws without AMX.
mlx::core::array bf16_matmul(const mlx::core::array& x, const mlx::core::array& forward,
                             const mlx::core::array& backward, int n, int k);

// Instruction set in use: 0 portable C++, 1 AVX2(+FMA), 2 AVX-512F. Chosen at first use from CPUID.
int isa();
// Force an ISA for tests, for graphs evaluated on the calling thread only; -1 = automatic; throws
// std::invalid_argument if the CPU lacks it.
void set_isa(int isa);

}  // namespace valuealign::kernels
