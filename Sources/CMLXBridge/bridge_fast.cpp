// MLX's fast kernels, quantisation, and ValueAlign's own kernels (kernels.h).
#include "bridge_internal.h"
#include "kernels.h"

using namespace mlxb;

namespace {
std::optional<mx::array> optional_array(mlxb_array a) {
  if (a == nullptr) return std::nullopt;
  return a->value;
}
}  // namespace

extern "C" {

int mlxb_rms_norm(mlxb_array x, mlxb_array weight, float eps, mlxb_array* out) {
  return produce("rms_norm", out, [&] { return valuealign::kernels::rms_norm(x->value, optional_array(weight), eps); });
}

int mlxb_layer_norm(mlxb_array x, mlxb_array weight, mlxb_array bias, float eps, mlxb_array* out) {
  return produce("layer_norm", out, [&] {
    return mx::fast::layer_norm(x->value, optional_array(weight), optional_array(bias), eps);
  });
}

int mlxb_rope(mlxb_array x, int dims, bool traditional, float base, float scale, int offset, mlxb_array* out) {
  return produce("rope", out, [&] { return mx::fast::rope(x->value, dims, traditional, base, scale, offset); });
}

int mlxb_sdpa(mlxb_array q, mlxb_array k, mlxb_array v, float scale, const char* mask_mode, mlxb_array mask,
              mlxb_array* out) {
  return produce("scaled_dot_product_attention", out, [&] {
    return mx::fast::scaled_dot_product_attention(q->value, k->value, v->value, scale,
                                                  mask_mode ? std::string(mask_mode) : std::string(),
                                                  optional_array(mask));
  });
}

int mlxb_quantized_matmul(mlxb_array x, mlxb_array w, mlxb_array scales, mlxb_array biases, bool transpose,
                          int group_size, int bits, mlxb_array* out) {
  return produce("quantized_matmul", out, [&] {
    return mx::quantized_matmul(x->value, w->value, scales->value, optional_array(biases), transpose, group_size,
                                bits);
  });
}

int mlxb_quantize(mlxb_array w, int group_size, int bits, mlxb_vector* out) {
  return guard("quantize", [&] { *out = new mlxb_vector_s{mx::quantize(w->value, group_size, bits)}; });
}

int mlxb_dequantize(mlxb_array w, mlxb_array scales, mlxb_array biases, int group_size, int bits, mlxb_array* out) {
  return produce("dequantize", out, [&] {
    return mx::dequantize(w->value, scales->value, optional_array(biases), group_size, bits);
  });
}

int mlxb_silu_gate(mlxb_array gate, mlxb_array up, mlxb_array* out) {
  return produce("silu_gate", out, [&] { return valuealign::kernels::silu_gate(gate->value, up->value); });
}

int mlxb_silu_gate_halves(mlxb_array x, mlxb_array* out) {
  return produce("silu_gate_halves", out, [&] { return valuealign::kernels::silu_gate_halves(x->value); });
}

int mlxb_logsoftmax_pick(mlxb_array logits, mlxb_array targets, float scale, mlxb_array* out) {
  return produce("logsoftmax_pick", out, [&] { return valuealign::kernels::logsoftmax_pick(logits->value, targets->value, scale); });
}

int mlxb_softmax_lastaxis(mlxb_array x, mlxb_array* out) {
  return produce("softmax_lastaxis", out, [&] { return valuealign::kernels::softmax_lastaxis(x->value); });
}

int mlxb_attention(mlxb_array q, mlxb_array k, mlxb_array v, float scale, bool causal, mlxb_array mask,
                   mlxb_array* out) {
  return produce("attention", out, [&] {
    return valuealign::kernels::attention(q->value, k->value, v->value, scale, causal, optional_array(mask));
  });
}

int mlxb_quantized_matmul_rows(mlxb_array x, mlxb_array w, mlxb_array scales, mlxb_array biases, int group_size,
                               int bits, mlxb_array* out) {
  return produce("quantized_matmul_rows", out, [&] {
    return valuealign::kernels::quantized_matmul_rows(x->value, w->value, scales->value, optional_array(biases),
                                                      group_size, bits);
  });
}

int mlxb_rope_kernel(mlxb_array x, int dims, bool traditional, float base, float scale, int offset, mlxb_array* out) {
  return produce("rope", out, [&] { return valuealign::kernels::rope(x->value, dims, traditional, base, scale, offset); });
}

int mlxb_decode_layer(const mlxb_decode_layer_spec* spec, const mlxb_array* inputs, size_t n_inputs, mlxb_vector* out) {
  return guard("decode_layer", [&] {
    if (spec == nullptr || inputs == nullptr || out == nullptr) throw std::invalid_argument("[decode_layer] null argument");
    valuealign::kernels::DecodeLayerSpec s;
    s.heads = spec->heads;
    s.kv_heads = spec->kv_heads;
    s.head_dim = spec->head_dim;
    s.eps = spec->eps;
    s.rope_dims = spec->rope_dims;
    s.traditional = spec->rope_traditional;
    s.rope_base = spec->rope_base;
    s.rope_scale = spec->rope_scale;
    s.attn_scale = spec->attention_scale;
    s.offset = spec->offset;
    for (int i = 0; i < 4; ++i) {
      s.bits[i] = spec->bits[i];
      s.groups[i] = spec->groups[i];
    }
    for (int i = 0; i < 7; ++i) s.has_lora[i] = spec->has_lora[i];
    s.has_bias = spec->has_bias;
    s.has_mask = spec->has_mask;
    *out = new mlxb_vector_s{valuealign::kernels::decode_layer(s, arrays_of(inputs, n_inputs))};
  });
}

int mlxb_amx_available(void) {
  try {
    return valuealign::kernels::amx_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int mlxb_set_amx_enabled(bool on) {
  return guard("set_amx_enabled", [&] { valuealign::kernels::set_amx_enabled(on); });
}

int mlxb_pack_bf16(mlxb_array w, bool transpose, mlxb_array* out) {
  return produce("pack_bf16", out, [&] { return valuealign::kernels::pack_bf16(w->value, transpose); });
}

int mlxb_bf16_matmul(mlxb_array x, mlxb_array forward, mlxb_array backward, int n, int k, mlxb_array* out) {
  return produce("bf16_matmul", out, [&] {
    return valuealign::kernels::bf16_matmul(x->value, forward->value, backward->value, n, k);
  });
}

int mlxb_blas_matmul(mlxb_array a, mlxb_array b, bool transpose_b, mlxb_array* out) {
  return produce("blas_matmul", out, [&] { return valuealign::kernels::blas_matmul(a->value, b->value, transpose_b); });
}

int mlxb_set_split_gemm(bool on) {
  return guard("set_split_gemm", [&] { valuealign::kernels::set_split_gemm(on); });
}

uint64_t mlxb_split_gemm_calls(void) { return valuealign::kernels::split_gemm_calls(); }

int mlxb_split_gemm_possible(void) {
  try {
    return valuealign::kernels::split_gemm_possible() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int mlxb_split_gemm_active(void) {
  try {
    return valuealign::kernels::split_gemm_active() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int mlxb_kernel_isa(void) {
  try {
    return valuealign::kernels::isa();
  } catch (...) {
    return 0;
  }
}

int mlxb_set_kernel_isa(int isa) {
  return guard("set_kernel_isa", [&] { valuealign::kernels::set_isa(isa); });
}

}  // extern "C"
