// Element-wise ops, reductions, shapes and indexing, random numbers.
#include <climits>

#include "bridge_internal.h"

using namespace mlxb;

namespace {

mx::array unary(mlxb_unary_op op, const mx::array& a) {
  switch (op) {
    case MLXB_NEG: return mx::negative(a);
    case MLXB_ABS: return mx::abs(a);
    case MLXB_EXP: return mx::exp(a);
    case MLXB_LOG: return mx::log(a);
    case MLXB_LOG1P: return mx::log1p(a);
    case MLXB_SQRT: return mx::sqrt(a);
    case MLXB_RSQRT: return mx::rsqrt(a);
    case MLXB_SQUARE: return mx::square(a);
    case MLXB_SIN: return mx::sin(a);
    case MLXB_COS: return mx::cos(a);
    case MLXB_TANH: return mx::tanh(a);
    case MLXB_SIGMOID: return mx::sigmoid(a);
    case MLXB_ERF: return mx::erf(a);
    case MLXB_FLOOR: return mx::floor(a);
    case MLXB_CEIL: return mx::ceil(a);
    case MLXB_ROUND: return mx::round(a);
    case MLXB_SIGN: return mx::sign(a);
    case MLXB_LOGICAL_NOT: return mx::logical_not(a);
    case MLXB_STOP_GRADIENT: return mx::stop_gradient(a);
    case MLXB_RECIPROCAL: return mx::reciprocal(a);
    case MLXB_EXPM1: return mx::expm1(a);
    case MLXB_ISNAN: return mx::isnan(a);
    case MLXB_ISINF: return mx::isinf(a);
    case MLXB_COPY: return mx::copy(a);
  }
  throw std::invalid_argument("unknown unary op code " + std::to_string(static_cast<int>(op)));
}

mx::array binary(mlxb_binary_op op, const mx::array& a, const mx::array& b) {
  switch (op) {
    case MLXB_ADD: return mx::add(a, b);
    case MLXB_SUBTRACT: return mx::subtract(a, b);
    case MLXB_MULTIPLY: return mx::multiply(a, b);
    case MLXB_DIVIDE: return mx::divide(a, b);
    case MLXB_POWER: return mx::power(a, b);
    case MLXB_MAXIMUM: return mx::maximum(a, b);
    case MLXB_MINIMUM: return mx::minimum(a, b);
    case MLXB_EQUAL: return mx::equal(a, b);
    case MLXB_NOT_EQUAL: return mx::not_equal(a, b);
    case MLXB_LESS: return mx::less(a, b);
    case MLXB_LESS_EQUAL: return mx::less_equal(a, b);
    case MLXB_GREATER: return mx::greater(a, b);
    case MLXB_GREATER_EQUAL: return mx::greater_equal(a, b);
    case MLXB_LOGICAL_AND: return mx::logical_and(a, b);
    case MLXB_LOGICAL_OR: return mx::logical_or(a, b);
    case MLXB_FLOOR_DIVIDE: return mx::floor_divide(a, b);
    case MLXB_REMAINDER: return mx::remainder(a, b);
    case MLXB_MATMUL: return mx::matmul(a, b);
    case MLXB_LOGADDEXP: return mx::logaddexp(a, b);
  }
  throw std::invalid_argument("unknown binary op code " + std::to_string(static_cast<int>(op)));
}

std::vector<int> all_axes(const mx::array& a) {
  std::vector<int> axes(a.ndim());
  for (int i = 0; i < static_cast<int>(a.ndim()); ++i) axes[i] = i;
  return axes;
}

mx::array reduce(mlxb_reduce_op op, const mx::array& a, std::vector<int> axes, bool all, bool keepdims) {
  if (all) axes = all_axes(a);
  switch (op) {
    case MLXB_SUM: return mx::sum(a, axes, keepdims);
    case MLXB_MEAN: return mx::mean(a, axes, keepdims);
    case MLXB_MAX: return mx::max(a, axes, keepdims);
    case MLXB_MIN: return mx::min(a, axes, keepdims);
    case MLXB_PROD: return mx::prod(a, axes, keepdims);
    case MLXB_LOGSUMEXP: return mx::logsumexp(a, axes, keepdims);
    case MLXB_ALL: return mx::all(a, axes, keepdims);
    case MLXB_ANY: return mx::any(a, axes, keepdims);
    case MLXB_VAR: return mx::var(a, axes, keepdims);
    case MLXB_ARGMAX:
    case MLXB_ARGMIN: {
      if (all) return op == MLXB_ARGMAX ? mx::argmax(a, keepdims) : mx::argmin(a, keepdims);
      if (axes.size() != 1) throw std::invalid_argument("argmax/argmin take exactly one axis");
      return op == MLXB_ARGMAX ? mx::argmax(a, axes[0], keepdims) : mx::argmin(a, axes[0], keepdims);
    }
  }
  throw std::invalid_argument("unknown reduction code " + std::to_string(static_cast<int>(op)));
}

std::optional<mx::array> optional_key(mlxb_array key) {
  if (key == nullptr) return std::nullopt;
  return key->value;
}

}  // namespace

extern "C" {

int mlxb_unary(mlxb_unary_op op, mlxb_array a, mlxb_array* out) {
  return produce("unary", out, [&] { return unary(op, a->value); });
}

int mlxb_binary(mlxb_binary_op op, mlxb_array a, mlxb_array b, mlxb_array* out) {
  return produce("binary", out, [&] { return binary(op, a->value, b->value); });
}

int mlxb_astype(mlxb_array a, mlxb_dtype dtype, mlxb_array* out) {
  return produce("astype", out, [&] { return mx::astype(a->value, to_mlx(dtype)); });
}

int mlxb_where(mlxb_array cond, mlxb_array a, mlxb_array b, mlxb_array* out) {
  return produce("where", out, [&] { return mx::where(cond->value, a->value, b->value); });
}

int mlxb_clip(mlxb_array a, mlxb_array lo, mlxb_array hi, mlxb_array* out) {
  return produce("clip", out, [&] {
    std::optional<mx::array> l, h;
    if (lo) l = lo->value;
    if (hi) h = hi->value;
    return mx::clip(a->value, l, h);
  });
}

int mlxb_addmm(mlxb_array c, mlxb_array a, mlxb_array b, float alpha, float beta, mlxb_array* out) {
  return produce("addmm", out, [&] { return mx::addmm(c->value, a->value, b->value, alpha, beta); });
}

int mlxb_reduce(mlxb_reduce_op op, mlxb_array a, const int* axes, int naxes, bool keepdims, mlxb_array* out) {
  return produce("reduce", out, [&] { return reduce(op, a->value, ints_of(axes, naxes), naxes < 0, keepdims); });
}

int mlxb_softmax(mlxb_array a, const int* axes, int naxes, bool precise, mlxb_array* out) {
  return produce("softmax", out, [&] {
    auto ax = naxes < 0 ? all_axes(a->value) : ints_of(axes, naxes);
    return mx::softmax(a->value, ax, precise);
  });
}

int mlxb_cumsum(mlxb_array a, int axis, bool reverse, bool inclusive, mlxb_array* out) {
  return produce("cumsum", out, [&] { return mx::cumsum(a->value, axis, reverse, inclusive); });
}

// ------------------------------------------------------------------------- shapes
int mlxb_reshape(mlxb_array a, const int* shape, int ndim, mlxb_array* out) {
  return produce("reshape", out, [&] { return mx::reshape(a->value, shape_of(shape, ndim)); });
}

int mlxb_transpose(mlxb_array a, const int* axes, int naxes, mlxb_array* out) {
  return produce("transpose", out, [&] {
    return naxes < 0 ? mx::transpose(a->value) : mx::transpose(a->value, ints_of(axes, naxes));
  });
}

int mlxb_swapaxes(mlxb_array a, int axis1, int axis2, mlxb_array* out) {
  return produce("swapaxes", out, [&] { return mx::swapaxes(a->value, axis1, axis2); });
}

int mlxb_expand_dims(mlxb_array a, const int* axes, int naxes, mlxb_array* out) {
  return produce("expand_dims", out, [&] { return mx::expand_dims(a->value, ints_of(axes, naxes)); });
}

int mlxb_squeeze(mlxb_array a, const int* axes, int naxes, mlxb_array* out) {
  return produce("squeeze", out, [&] {
    return naxes < 0 ? mx::squeeze(a->value) : mx::squeeze(a->value, ints_of(axes, naxes));
  });
}

int mlxb_broadcast_to(mlxb_array a, const int* shape, int ndim, mlxb_array* out) {
  return produce("broadcast_to", out, [&] { return mx::broadcast_to(a->value, shape_of(shape, ndim)); });
}

int mlxb_concatenate(const mlxb_array* arrays, size_t n, int axis, mlxb_array* out) {
  return produce("concatenate", out, [&] { return mx::concatenate(arrays_of(arrays, n), axis); });
}

int mlxb_stack(const mlxb_array* arrays, size_t n, int axis, mlxb_array* out) {
  return produce("stack", out, [&] { return mx::stack(arrays_of(arrays, n), axis); });
}

int mlxb_split(mlxb_array a, const int* indices, int n_indices, int axis, mlxb_vector* out) {
  return guard("split", [&] {
    auto parts = mx::split(a->value, shape_of(indices, n_indices), axis);
    *out = new mlxb_vector_s{std::move(parts)};
  });
}

int mlxb_split_equal(mlxb_array a, int parts, int axis, mlxb_vector* out) {
  return guard("split", [&] {
    auto result = mx::split(a->value, parts, axis);
    *out = new mlxb_vector_s{std::move(result)};
  });
}

int mlxb_slice(mlxb_array a, const int* start, const int* stop, const int* strides, int ndim, mlxb_array* out) {
  return produce("slice", out, [&] {
    return mx::slice(a->value, shape_of(start, ndim), shape_of(stop, ndim), shape_of(strides, ndim));
  });
}

int mlxb_slice_update(mlxb_array a, mlxb_array update, const int* start, const int* stop, const int* strides, int ndim,
                      mlxb_array* out) {
  return produce("slice_update", out, [&] {
    return mx::slice_update(a->value, update->value, shape_of(start, ndim), shape_of(stop, ndim),
                            shape_of(strides, ndim));
  });
}

int mlxb_take(mlxb_array a, mlxb_array indices, int axis, mlxb_array* out) {
  return produce("take", out, [&] {
    return axis == INT_MIN ? mx::take(a->value, indices->value) : mx::take(a->value, indices->value, axis);
  });
}

int mlxb_take_along_axis(mlxb_array a, mlxb_array indices, int axis, mlxb_array* out) {
  return produce("take_along_axis", out, [&] { return mx::take_along_axis(a->value, indices->value, axis); });
}

int mlxb_put_along_axis(mlxb_array a, mlxb_array indices, mlxb_array values, int axis, mlxb_array* out) {
  return produce("put_along_axis", out,
                 [&] { return mx::put_along_axis(a->value, indices->value, values->value, axis); });
}

int mlxb_sort(mlxb_array a, int axis, mlxb_array* out) {
  return produce("sort", out, [&] { return mx::sort(a->value, axis); });
}

int mlxb_argsort(mlxb_array a, int axis, mlxb_array* out) {
  return produce("argsort", out, [&] { return mx::argsort(a->value, axis); });
}

int mlxb_argpartition(mlxb_array a, int kth, int axis, mlxb_array* out) {
  return produce("argpartition", out, [&] { return mx::argpartition(a->value, kth, axis); });
}

int mlxb_topk(mlxb_array a, int k, int axis, mlxb_array* out) {
  return produce("topk", out, [&] { return mx::topk(a->value, k, axis); });
}

int mlxb_tri(int n, int m, int k, mlxb_dtype dtype, mlxb_array* out) {
  return produce("tri", out, [&] { return mx::tri(n, m, k, to_mlx(dtype)); });
}

int mlxb_tril(mlxb_array a, int k, mlxb_array* out) {
  return produce("tril", out, [&] { return mx::tril(a->value, k); });
}

int mlxb_triu(mlxb_array a, int k, mlxb_array* out) {
  return produce("triu", out, [&] { return mx::triu(a->value, k); });
}

int mlxb_pad(mlxb_array a, const int* low, const int* high, int ndim, mlxb_array value, mlxb_array* out) {
  return produce("pad", out, [&] {
    std::vector<int> axes(ndim);
    for (int i = 0; i < ndim; ++i) axes[i] = i;
    return mx::pad(a->value, axes, shape_of(low, ndim), shape_of(high, ndim), value->value);
  });
}

int mlxb_repeat(mlxb_array a, int repeats, int axis, mlxb_array* out) {
  return produce("repeat", out, [&] { return mx::repeat(a->value, repeats, axis); });
}

int mlxb_flatten(mlxb_array a, int start_axis, int end_axis, mlxb_array* out) {
  return produce("flatten", out, [&] { return mx::flatten(a->value, start_axis, end_axis); });
}

int mlxb_contiguous(mlxb_array a, mlxb_array* out) {
  return produce("contiguous", out, [&] { return mx::contiguous(a->value); });
}

// ------------------------------------------------------------------------- random
int mlxb_random_key(uint64_t seed, mlxb_array* out) {
  return produce("random_key", out, [&] { return mx::random::key(seed); });
}

int mlxb_random_seed(uint64_t seed) {
  return guard("random_seed", [&] { mx::random::seed(seed); });
}

int mlxb_random_split(mlxb_array key, int num, mlxb_array* out) {
  return produce("random_split", out, [&] { return mx::random::split(key->value, num); });
}

int mlxb_random_normal(const int* shape, int ndim, mlxb_dtype dtype, float loc, float scale, mlxb_array key,
                       mlxb_array* out) {
  return produce("random_normal", out, [&] {
    auto dt = to_mlx(dtype);
    return mx::random::normal(shape_of(shape, ndim), dt, mx::array(loc, dt), mx::array(scale, dt), optional_key(key));
  });
}

int mlxb_random_uniform(const int* shape, int ndim, mlxb_dtype dtype, float low, float high, mlxb_array key,
                        mlxb_array* out) {
  return produce("random_uniform", out, [&] {
    auto dt = to_mlx(dtype);
    return mx::random::uniform(mx::array(low, dt), mx::array(high, dt), shape_of(shape, ndim), dt, optional_key(key));
  });
}

int mlxb_random_categorical(mlxb_array logits, int axis, mlxb_array key, mlxb_array* out) {
  return produce("random_categorical", out, [&] { return mx::random::categorical(logits->value, axis, optional_key(key)); });
}

int mlxb_random_bernoulli(mlxb_array p, const int* shape, int ndim, mlxb_array key, mlxb_array* out) {
  return produce("random_bernoulli", out,
                 [&] { return mx::random::bernoulli(p->value, shape_of(shape, ndim), optional_key(key)); });
}

int mlxb_random_randint(int low, int high, const int* shape, int ndim, mlxb_dtype dtype, mlxb_array key,
                        mlxb_array* out) {
  return produce("random_randint", out, [&] {
    return mx::random::randint(mx::array(low), mx::array(high), shape_of(shape, ndim), to_mlx(dtype), optional_key(key));
  });
}

}  // extern "C"
