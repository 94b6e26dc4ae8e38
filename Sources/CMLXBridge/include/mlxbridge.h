// CMLXBridge: a thin C interface over the MLX C++ core (mlx::core).
//
// Contract for every function declared here:
// - It returns 0 on success and a non-zero status on failure. On failure the reason (MLX's own
//   message where MLX raised it) is available from mlxb_last_error() on the same thread until the
//   next bridge call on that thread.
// - No C++ exception ever leaves a bridge function: each one catches everything.
// - Array handles returned through `out` parameters are owned by the caller and must be released
//   with mlxb_array_free(). Input handles are borrowed.
#ifndef VALUEALIGN_MLXBRIDGE_H
#define VALUEALIGN_MLXBRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlxb_array_s* mlxb_array;
typedef struct mlxb_vector_s* mlxb_vector;      // an owned list of arrays
typedef struct mlxb_map_s* mlxb_map;            // an owned string -> array map (insertion-ordered)
typedef struct mlxb_strmap_s* mlxb_strmap;      // an owned string -> string map
typedef struct mlxb_gguf_s* mlxb_gguf;          // the result of loading a GGUF file
typedef struct mlxb_closure_s* mlxb_closure;    // a function from arrays to arrays

// ---------------------------------------------------------------- errors and library facts
const char* mlxb_last_error(void);
const char* mlxb_mlx_version(void);
/// The path of the shared object that provides `cblas_sgemm` to this process (to check that
/// OpenBLAS, not the reference BLAS bundled with the wheel, serves MLX's matmuls).
const char* mlxb_blas_provider(void);
/// Calls cblas_sgemm directly: C[m,n] = A[m,k] * B[k,n], row-major, for the benchmark anchor.
int mlxb_blas_sgemm(int m, int n, int k, const float* a, const float* b, float* c);

// ---------------------------------------------------------------- dtypes and devices
typedef enum {
  MLXB_BOOL = 0,
  MLXB_UINT8,
  MLXB_UINT16,
  MLXB_UINT32,
  MLXB_UINT64,
  MLXB_INT8,
  MLXB_INT16,
  MLXB_INT32,
  MLXB_INT64,
  MLXB_FLOAT16,
  MLXB_FLOAT32,
  MLXB_FLOAT64,
  MLXB_BFLOAT16,
  MLXB_COMPLEX64,
} mlxb_dtype;

typedef enum { MLXB_CPU = 0, MLXB_GPU = 1 } mlxb_device_type;

int mlxb_set_default_device(mlxb_device_type type, int index);
int mlxb_default_device(mlxb_device_type* type, int* index);
bool mlxb_device_available(mlxb_device_type type);
bool mlxb_is_cuda_build(void);
int mlxb_synchronize(void);

// ---------------------------------------------------------------- memory
int mlxb_memory_stats(size_t* active, size_t* peak, size_t* cache);
int mlxb_reset_peak_memory(void);
int mlxb_clear_cache(void);
/// glibc malloc's mmap and trim thresholds (bytes) and arena count (0 leaves one as it is):
/// returns a bit mask of the settings glibc accepted (1 mmap, 2 trim, 4 arenas), or -1 where the C
/// library is not glibc. The bridge applies (1 GB, 1 GB, 1) when it loads (bridge_core.cpp says
/// why) unless VALUEALIGN_MALLOC=default.
int mlxb_configure_allocator(size_t mmap_threshold, size_t trim_threshold, int arenas);
/// OpenBLAS's thread count, or -1 when OpenBLAS does not serve cblas in this process.
int mlxb_blas_threads(void);
/// Sets OpenBLAS's thread count; false when OpenBLAS is not loaded or n < 1.
bool mlxb_set_blas_threads(int n);

// ---------------------------------------------------------------- array lifecycle and facts
void mlxb_array_free(mlxb_array a);
/// A new handle to the same (immutable, lazily evaluated) array.
int mlxb_array_retain(mlxb_array a, mlxb_array* out);
int mlxb_array_ndim(mlxb_array a);
/// Writes up to `capacity` dimensions into `shape`; returns ndim, or -1 on error.
int mlxb_array_shape(mlxb_array a, int* shape, int capacity);
size_t mlxb_array_size(mlxb_array a);
mlxb_dtype mlxb_array_dtype(mlxb_array a);
/// MLX's printed form of the array (evaluates it). The caller frees the string with free().
char* mlxb_array_describe(mlxb_array a);

// ---------------------------------------------------------------- creation and read-back
/// Copies `count` elements of `dtype` from `data` into a new array of the given shape.
int mlxb_array_from_data(const void* data, mlxb_dtype dtype, const int* shape, int ndim, mlxb_array* out);
int mlxb_array_scalar(double value, mlxb_dtype dtype, mlxb_array* out);
int mlxb_full(const int* shape, int ndim, double value, mlxb_dtype dtype, mlxb_array* out);
int mlxb_arange(double start, double stop, double step, mlxb_dtype dtype, mlxb_array* out);
/// Evaluates `a`, converts it to `dtype` and copies `count` elements (row-major) into `dst`.
/// `count` must equal the array's size.
int mlxb_array_read(mlxb_array a, mlxb_dtype dtype, void* dst, size_t count);

// ---------------------------------------------------------------- element-wise and linear algebra
typedef enum {
  MLXB_NEG = 0, MLXB_ABS, MLXB_EXP, MLXB_LOG, MLXB_LOG1P, MLXB_SQRT, MLXB_RSQRT, MLXB_SQUARE,
  MLXB_SIN, MLXB_COS, MLXB_TANH, MLXB_SIGMOID, MLXB_ERF, MLXB_FLOOR, MLXB_CEIL, MLXB_ROUND,
  MLXB_SIGN, MLXB_LOGICAL_NOT, MLXB_STOP_GRADIENT, MLXB_RECIPROCAL, MLXB_EXPM1,
  MLXB_ISNAN, MLXB_ISINF, MLXB_COPY,
} mlxb_unary_op;

typedef enum {
  MLXB_ADD = 0, MLXB_SUBTRACT, MLXB_MULTIPLY, MLXB_DIVIDE, MLXB_POWER, MLXB_MAXIMUM, MLXB_MINIMUM,
  MLXB_EQUAL, MLXB_NOT_EQUAL, MLXB_LESS, MLXB_LESS_EQUAL, MLXB_GREATER, MLXB_GREATER_EQUAL,
  MLXB_LOGICAL_AND, MLXB_LOGICAL_OR, MLXB_FLOOR_DIVIDE, MLXB_REMAINDER, MLXB_MATMUL,
  MLXB_LOGADDEXP,
} mlxb_binary_op;

int mlxb_unary(mlxb_unary_op op, mlxb_array a, mlxb_array* out);
int mlxb_binary(mlxb_binary_op op, mlxb_array a, mlxb_array b, mlxb_array* out);
int mlxb_astype(mlxb_array a, mlxb_dtype dtype, mlxb_array* out);
int mlxb_where(mlxb_array cond, mlxb_array a, mlxb_array b, mlxb_array* out);
int mlxb_clip(mlxb_array a, mlxb_array lo /*nullable*/, mlxb_array hi /*nullable*/, mlxb_array* out);
/// c + alpha * (a @ b) * ... as MLX's addmm: out = beta * c + alpha * (a @ b).
int mlxb_addmm(mlxb_array c, mlxb_array a, mlxb_array b, float alpha, float beta, mlxb_array* out);

// ---------------------------------------------------------------- reductions
typedef enum {
  MLXB_SUM = 0, MLXB_MEAN, MLXB_MAX, MLXB_MIN, MLXB_PROD, MLXB_LOGSUMEXP, MLXB_ALL, MLXB_ANY,
  MLXB_ARGMAX, MLXB_ARGMIN, MLXB_VAR,
} mlxb_reduce_op;

/// Reduces over `axes` (all axes when naxes < 0). ARGMAX/ARGMIN take exactly one axis or all.
int mlxb_reduce(mlxb_reduce_op op, mlxb_array a, const int* axes, int naxes, bool keepdims, mlxb_array* out);
int mlxb_softmax(mlxb_array a, const int* axes, int naxes, bool precise, mlxb_array* out);
int mlxb_cumsum(mlxb_array a, int axis, bool reverse, bool inclusive, mlxb_array* out);

// ---------------------------------------------------------------- shapes and indexing
int mlxb_reshape(mlxb_array a, const int* shape, int ndim, mlxb_array* out);
int mlxb_transpose(mlxb_array a, const int* axes, int naxes /* <0: reverse all */, mlxb_array* out);
int mlxb_swapaxes(mlxb_array a, int axis1, int axis2, mlxb_array* out);
int mlxb_expand_dims(mlxb_array a, const int* axes, int naxes, mlxb_array* out);
int mlxb_squeeze(mlxb_array a, const int* axes, int naxes /* <0: all size-1 axes */, mlxb_array* out);
int mlxb_broadcast_to(mlxb_array a, const int* shape, int ndim, mlxb_array* out);
int mlxb_concatenate(const mlxb_array* arrays, size_t n, int axis, mlxb_array* out);
int mlxb_stack(const mlxb_array* arrays, size_t n, int axis, mlxb_array* out);
/// Splits at the given indices along `axis` (n_indices + 1 parts).
int mlxb_split(mlxb_array a, const int* indices, int n_indices, int axis, mlxb_vector* out);
int mlxb_split_equal(mlxb_array a, int parts, int axis, mlxb_vector* out);
/// Strided slice; start/stop/strides have one entry per axis.
int mlxb_slice(mlxb_array a, const int* start, const int* stop, const int* strides, int ndim, mlxb_array* out);
int mlxb_slice_update(mlxb_array a, mlxb_array update, const int* start, const int* stop, const int* strides, int ndim, mlxb_array* out);
/// take(a, indices, axis); axis == INT32_MIN takes from the flattened array.
int mlxb_take(mlxb_array a, mlxb_array indices, int axis, mlxb_array* out);
int mlxb_take_along_axis(mlxb_array a, mlxb_array indices, int axis, mlxb_array* out);
int mlxb_put_along_axis(mlxb_array a, mlxb_array indices, mlxb_array values, int axis, mlxb_array* out);
int mlxb_sort(mlxb_array a, int axis, mlxb_array* out);
int mlxb_argsort(mlxb_array a, int axis, mlxb_array* out);
int mlxb_argpartition(mlxb_array a, int kth, int axis, mlxb_array* out);
int mlxb_topk(mlxb_array a, int k, int axis, mlxb_array* out);
int mlxb_tri(int n, int m, int k, mlxb_dtype dtype, mlxb_array* out);
int mlxb_tril(mlxb_array a, int k, mlxb_array* out);
int mlxb_triu(mlxb_array a, int k, mlxb_array* out);
int mlxb_pad(mlxb_array a, const int* low, const int* high, int ndim, mlxb_array value, mlxb_array* out);
int mlxb_repeat(mlxb_array a, int repeats, int axis, mlxb_array* out);
int mlxb_flatten(mlxb_array a, int start_axis, int end_axis, mlxb_array* out);
int mlxb_contiguous(mlxb_array a, mlxb_array* out);

// ---------------------------------------------------------------- random
/// A PRNG key from a seed (MLX's threefry keys).
int mlxb_random_key(uint64_t seed, mlxb_array* out);
int mlxb_random_seed(uint64_t seed);
/// Splits a key into `num` keys, shape [num, 2].
int mlxb_random_split(mlxb_array key, int num, mlxb_array* out);
/// `key` may be NULL (the global generator).
int mlxb_random_normal(const int* shape, int ndim, mlxb_dtype dtype, float loc, float scale, mlxb_array key, mlxb_array* out);
int mlxb_random_uniform(const int* shape, int ndim, mlxb_dtype dtype, float low, float high, mlxb_array key, mlxb_array* out);
int mlxb_random_categorical(mlxb_array logits, int axis, mlxb_array key, mlxb_array* out);
int mlxb_random_bernoulli(mlxb_array p, const int* shape, int ndim, mlxb_array key, mlxb_array* out);
int mlxb_random_randint(int low, int high, const int* shape, int ndim, mlxb_dtype dtype, mlxb_array key, mlxb_array* out);

// ---------------------------------------------------------------- fast kernels
int mlxb_rms_norm(mlxb_array x, mlxb_array weight /*nullable*/, float eps, mlxb_array* out);
int mlxb_layer_norm(mlxb_array x, mlxb_array weight /*nullable*/, mlxb_array bias /*nullable*/, float eps, mlxb_array* out);
int mlxb_rope(mlxb_array x, int dims, bool traditional, float base, float scale, int offset, mlxb_array* out);
/// MLX's scaled-dot-product attention. mask_mode: "" or "causal"; `mask` (nullable) is an
/// additive float mask or a boolean keep-mask broadcastable to [B, H, L, S].
int mlxb_sdpa(mlxb_array q, mlxb_array k, mlxb_array v, float scale, const char* mask_mode, mlxb_array mask, mlxb_array* out);
int mlxb_quantized_matmul(mlxb_array x, mlxb_array w, mlxb_array scales, mlxb_array biases /*nullable*/, bool transpose, int group_size, int bits, mlxb_array* out);
/// Affine quantisation: out receives [w_q, scales, biases].
int mlxb_quantize(mlxb_array w, int group_size, int bits, mlxb_vector* out);
int mlxb_dequantize(mlxb_array w, mlxb_array scales, mlxb_array biases /*nullable*/, int group_size, int bits, mlxb_array* out);

// ---------------------------------------------------------------- ValueAlign's own CPU kernels
// Vectorised kernels written as MLX primitives (with VJPs) for the element-wise and attention
// work where MLX's CPU backend is slow on x86. On other backends, or for dtypes a kernel does
// not cover, they fall back to the equivalent composition of MLX ops.
/// silu(gate) * up.
int mlxb_silu_gate(mlxb_array gate, mlxb_array up, mlxb_array* out);
/// silu(x[..., :N]) * x[..., N:] for x [..., 2N].
int mlxb_silu_gate_halves(mlxb_array x, mlxb_array* out);
/// Softmax over the last axis.
int mlxb_softmax_lastaxis(mlxb_array x, mlxb_array* out);
/// log_softmax(scale * logits)[target] per row: logits [N, V] float32, targets [N] integers -> [N];
/// differentiable with respect to the logits (one pass forward, one backward).
int mlxb_logsoftmax_pick(mlxb_array logits, mlxb_array targets, float scale, mlxb_array* out);
/// Attention over [B, H, L, D] queries and [B, Hkv, S, D] keys/values (H a multiple of Hkv),
/// causal when `causal`, with an optional additive mask broadcastable to [B, H, L, S].
int mlxb_attention(mlxb_array q, mlxb_array k, mlxb_array v, float scale, bool causal, mlxb_array mask /*nullable*/, mlxb_array* out);
/// x @ dequantize(w)^T for few rows of float32 x and 4- or 8-bit affine-quantised w (groups of
/// 32/64/128), dequantised in registers; other layouts fall back to mlxb_quantized_matmul.
int mlxb_quantized_matmul_rows(mlxb_array x, mlxb_array w, mlxb_array scales, mlxb_array biases /*nullable*/, int group_size, int bits, mlxb_array* out);
/// Rotary embedding (same arguments and results as mlxb_rope) as one primitive whose gradient is
/// the inverse rotation; MLX's CPU rope is a composition of ~20 ops.
int mlxb_rope_kernel(mlxb_array x, int dims, bool traditional, float base, float scale, int offset, mlxb_array* out);

/// Settings of one fused Llama decode layer (mlxb_decode_layer).
typedef struct {
  int heads, kv_heads, head_dim;
  float eps;
  int rope_dims;
  bool rope_traditional;
  float rope_base, rope_scale;
  float attention_scale;
  int offset;     /// position of the new token; the caches hold [0, offset)
  int bits[4];    /// packed weights: qkv, o, gate_up, down
  int groups[4];
  bool has_bias;  /// inputs[17] is the qkv bias
  bool has_mask;  /// then an additive [B or 1, capacity] mask
  bool has_lora[7]; /// then, for each of q, k, v, o, gate, up, down marked here, a low-rank update
                    /// of its output y += (x At) Bt: At [in, R] and Bt [R, out] float32 (LoRA's
                    /// A^T and scale * B^T)
} mlxb_decode_layer_spec;

/// One Llama decoder layer for one new token per sequence (inference, CPU only). inputs: x
/// [B, 1, H], input and post-attention norm weights, then (codes, scales, biases) of the packed
/// qkv, o, gate_up and down weights, the key and value caches [B, kvHeads, capacity, headDim],
/// then the optional qkv bias and mask and the low-rank updates. out receives [y, keys', values'].
int mlxb_decode_layer(const mlxb_decode_layer_spec* spec, const mlxb_array* inputs, size_t n_inputs, mlxb_vector* out);

/// 1 when bfloat16 matmuls on Intel AMX tiles work in this process (probed once), else 0.
int mlxb_amx_available(void);
/// Turns the AMX path off (false) or back to automatic (true), for tests and comparisons.
int mlxb_set_amx_enabled(bool on);
/// Packs a float32 matrix w [R, C] as the bf16 operand B of mlxb_bf16_matmul: B = w^T when
/// transpose (a linear layer's forward), else B = w (its input gradient). Evaluates w.
int mlxb_pack_bf16(mlxb_array w, bool transpose, mlxb_array* out);
/// x [..., k] -> [..., n] = bf16(x) · B, float32 accumulation (AMX); forward = pack of B [k, n],
/// backward = pack of B^T [n, k]. Differentiable with respect to x only.
int mlxb_bf16_matmul(mlxb_array x, mlxb_array forward, mlxb_array backward, int n, int k, mlxb_array* out);

/// float32 a [..., K] · b^T (b [N, K], transpose_b) or a · b (b [K, N]) through cblas_sgemm; a
/// large product is cut into one block per kernel thread, run in parallel while OpenBLAS is
/// single-threaded. Differentiable; other dtypes or devices get MLX's matmul.
int mlxb_blas_matmul(mlxb_array a, mlxb_array b, bool transpose_b, mlxb_array* out);
/// That splitting on (the default) or off; process-wide.
int mlxb_set_split_gemm(bool on);
/// Products split so far in this process.
uint64_t mlxb_split_gemm_calls(void);
/// 1 when large products are split and run in parallel now, else 0.
int mlxb_split_gemm_active(void);
/// 1 when they are split (in parallel or not), else 0.
int mlxb_split_gemm_possible(void);

/// Which instruction set the kernels use: 0 portable, 1 AVX2, 2 AVX-512.
int mlxb_kernel_isa(void);
/// Forces an instruction set (for tests); a value above what the CPU supports is an error.
/// -1 restores automatic selection.
int mlxb_set_kernel_isa(int isa);

// ---------------------------------------------------------------- array lists and maps
int mlxb_vector_new(mlxb_vector* out);
void mlxb_vector_free(mlxb_vector v);
size_t mlxb_vector_size(mlxb_vector v);
/// A new handle to element i.
int mlxb_vector_get(mlxb_vector v, size_t i, mlxb_array* out);
int mlxb_vector_push(mlxb_vector v, mlxb_array a);

int mlxb_map_new(mlxb_map* out);
void mlxb_map_free(mlxb_map m);
size_t mlxb_map_size(mlxb_map m);
/// Key i is valid until the map is freed; value i is a new handle.
const char* mlxb_map_key(mlxb_map m, size_t i);
int mlxb_map_value(mlxb_map m, size_t i, mlxb_array* out);
int mlxb_map_insert(mlxb_map m, const char* key, mlxb_array a);

int mlxb_strmap_new(mlxb_strmap* out);
void mlxb_strmap_free(mlxb_strmap m);
size_t mlxb_strmap_size(mlxb_strmap m);
const char* mlxb_strmap_key(mlxb_strmap m, size_t i);
const char* mlxb_strmap_value(mlxb_strmap m, size_t i);
int mlxb_strmap_insert(mlxb_strmap m, const char* key, const char* value);

// ---------------------------------------------------------------- transforms
int mlxb_eval(const mlxb_array* arrays, size_t n);
int mlxb_async_eval(const mlxb_array* arrays, size_t n);

/// A function called back from the bridge. `inputs` are borrowed for the duration of the call;
/// the callee appends its results to `outputs`. Return 0 on success; on failure return non-zero
/// (the callee keeps its own error: the bridge reports "callback failed").
typedef int (*mlxb_closure_fn)(void* context, const mlxb_array* inputs, size_t n_inputs, mlxb_vector outputs);
typedef void (*mlxb_context_release)(void* context);

/// Wraps a callback; `release` (nullable) is called with `context` when the closure is freed.
int mlxb_closure_new(mlxb_closure_fn fn, void* context, mlxb_context_release release, mlxb_closure* out);
void mlxb_closure_free(mlxb_closure c);
int mlxb_closure_apply(mlxb_closure c, const mlxb_array* inputs, size_t n, mlxb_vector* out);
/// MLX's compile of `c` (shapeless = false). The compiled closure keeps `c` alive.
int mlxb_compile(mlxb_closure c, mlxb_closure* out);
/// value_and_grad of the closure's first output with respect to inputs[argnums[i]].
int mlxb_value_and_grad(mlxb_closure c, const mlxb_array* inputs, size_t n, const int* argnums, size_t n_argnums,
                        mlxb_vector* values, mlxb_vector* grads);
/// Vector-Jacobian product of the closure at `primals` with `cotangents` (one per output).
int mlxb_vjp(mlxb_closure c, const mlxb_array* primals, size_t n_primals, const mlxb_array* cotangents,
             size_t n_cotangents, mlxb_vector* outputs, mlxb_vector* vjps);

// ---------------------------------------------------------------- io
int mlxb_load_safetensors(const char* path, mlxb_map* arrays, mlxb_strmap* metadata);
int mlxb_save_safetensors(const char* path, mlxb_map arrays, mlxb_strmap metadata /*nullable*/);
int mlxb_load_gguf(const char* path, mlxb_gguf* out);
void mlxb_gguf_free(mlxb_gguf g);
/// The tensors (quantised tensors appear as NAME.weight / NAME.scales / NAME.biases).
int mlxb_gguf_arrays(mlxb_gguf g, mlxb_map* out);
size_t mlxb_gguf_meta_count(mlxb_gguf g);
typedef enum { MLXB_META_NONE = 0, MLXB_META_ARRAY, MLXB_META_STRING, MLXB_META_STRINGS } mlxb_meta_kind;
const char* mlxb_gguf_meta_key(mlxb_gguf g, size_t i);
mlxb_meta_kind mlxb_gguf_meta_kind(mlxb_gguf g, size_t i);
const char* mlxb_gguf_meta_string(mlxb_gguf g, size_t i);
int mlxb_gguf_meta_array(mlxb_gguf g, size_t i, mlxb_array* out);
size_t mlxb_gguf_meta_strings_count(mlxb_gguf g, size_t i);
const char* mlxb_gguf_meta_strings_item(mlxb_gguf g, size_t i, size_t j);

#ifdef __cplusplus
}
#endif

#endif
