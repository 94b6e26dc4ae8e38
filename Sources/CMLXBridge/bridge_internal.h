// Internal definitions shared by the bridge's translation units. Not visible to Swift.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "mlx/mlx.h"
#include "mlxbridge.h"

namespace mx = mlx::core;

struct mlxb_array_s {
  mx::array value;
};
struct mlxb_vector_s {
  std::vector<mx::array> items;
};
struct mlxb_map_s {
  std::vector<std::string> keys;
  std::vector<mx::array> values;
};
struct mlxb_strmap_s {
  std::vector<std::string> keys;
  std::vector<std::string> values;
};

namespace mlxb {

void set_error(std::string message);

inline mlxb_array wrap(mx::array a) { return new mlxb_array_s{std::move(a)}; }

mx::Dtype to_mlx(mlxb_dtype d);
mlxb_dtype from_mlx(mx::Dtype d);

/// A zero-dimensional array of `dtype` holding `value` without rounding through float32.
mx::array scalar_of(double value, mx::Dtype dtype);

inline mx::Shape shape_of(const int* shape, int ndim) {
  mx::Shape s;
  s.reserve(ndim > 0 ? ndim : 0);
  for (int i = 0; i < ndim; ++i) s.push_back(shape[i]);
  return s;
}

inline std::vector<int> ints_of(const int* values, int n) {
  return n > 0 ? std::vector<int>(values, values + n) : std::vector<int>{};
}

inline std::vector<mx::array> arrays_of(const mlxb_array* arrays, size_t n) {
  std::vector<mx::array> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(arrays[i]->value);
  return out;
}

/// Runs `body`, turning any C++ exception into a status code and a thread-local message.
template <typename F>
int guard(const char* where, F&& body) noexcept {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    set_error(std::string(e.what()));
  } catch (...) {
    set_error(std::string(where) + ": unknown C++ exception");
  }
  return 1;
}

/// Runs `body` that produces an array and stores it in `*out`.
template <typename F>
int produce(const char* where, mlxb_array* out, F&& body) noexcept {
  if (out == nullptr) {
    set_error(std::string(where) + ": null output pointer");
    return 1;
  }
  return guard(where, [&] { *out = wrap(body()); });
}

}  // namespace mlxb
