// ValueAlign's own vectorised CPU kernels, exposed as MLX custom primitives with VJPs.
// Internal C++ header of the CMLXBridge target (Swift sees only include/mlxbridge.h).
#pragma once
#include <optional>

#include "mlx/mlx.h"

namespace valuealign::kernels {

// silu(gate) * up, element-wise, same shapes. Falls back to MLX ops when the shapes differ, the
// dtype is not float32, or the default device is not the CPU.
mlx::core::array silu_gate(const mlx::core::array& gate, const mlx::core::array& up);

// Softmax over the last axis (float32 fast path; other dtypes fall back to
// mlx::core::softmax(x, -1, true)). A row that is entirely -inf gives zeros (MLX gives NaN).
mlx::core::array softmax_lastaxis(const mlx::core::array& x);

// attention: q [B,H,L,D], k,v [B,Hkv,S,D], H % Hkv == 0 (GQA), out [B,H,L,D] =
// softmax(scale*q@k^T + mask) @ v. causal: query i (of L) attends to keys j <= i + (S - L).
// mask, when given, is additive float (or a bool keep-mask) broadcastable to [B,H,L,S].
// Fully masked rows give zeros. Falls back to mlx::core::fast::scaled_dot_product_attention for
// non-float32 inputs, non-4-D inputs or a non-CPU default device.
mlx::core::array attention(const mlx::core::array& q, const mlx::core::array& k, const mlx::core::array& v,
                           float scale, bool causal, const std::optional<mlx::core::array>& mask);

// Instruction set in use: 0 portable C++, 1 AVX2(+FMA), 2 AVX-512F. Chosen at first use from CPUID.
int isa();
// Force an ISA for tests; -1 = automatic; throws std::invalid_argument if the CPU lacks it.
void set_isa(int isa);

}  // namespace valuealign::kernels
