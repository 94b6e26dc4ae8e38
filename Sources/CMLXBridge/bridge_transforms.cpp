// Lists, maps, evaluation, closures called back into Swift, compile, value_and_grad and vjp.
#include <cstring>
#include <memory>

#include "mlx/compile_impl.h"
#include "bridge_internal.h"

using namespace mlxb;

namespace {
using ArrayFn = std::function<std::vector<mx::array>(const std::vector<mx::array>&)>;

/// Owns a Swift context and calls its release function exactly once.
struct ContextOwner {
  void* context;
  mlxb_context_release release;
  ContextOwner(void* c, mlxb_context_release r) : context(c), release(r) {}
  ContextOwner(const ContextOwner&) = delete;
  ContextOwner& operator=(const ContextOwner&) = delete;
  ~ContextOwner() {
    if (release != nullptr) release(context);
  }
};
}  // namespace

struct mlxb_closure_s {
  ArrayFn fn;
  std::shared_ptr<ContextOwner> owner;
  std::shared_ptr<mlxb_closure_s> wrapped;  // for compiled closures: the traced closure
  bool compiled = false;
};

namespace {

ArrayFn callback_function(mlxb_closure_fn fn, void* context) {
  return [fn, context](const std::vector<mx::array>& inputs) {
    std::vector<mlxb_array> handles;
    handles.reserve(inputs.size());
    for (const auto& a : inputs) handles.push_back(new mlxb_array_s{a});
    mlxb_vector_s outputs;
    int status = fn(context, handles.data(), handles.size(), &outputs);
    for (auto h : handles) delete h;
    if (status != 0) throw std::runtime_error("callback failed");
    return std::move(outputs.items);
  };
}

}  // namespace

extern "C" {

// ------------------------------------------------------------------------- lists and maps
int mlxb_vector_new(mlxb_vector* out) {
  return guard("vector_new", [&] { *out = new mlxb_vector_s{}; });
}
void mlxb_vector_free(mlxb_vector v) { delete v; }
size_t mlxb_vector_size(mlxb_vector v) { return v ? v->items.size() : 0; }
int mlxb_vector_get(mlxb_vector v, size_t i, mlxb_array* out) {
  return produce("vector_get", out, [&] {
    if (i >= v->items.size()) throw std::out_of_range("vector_get: index out of range");
    return v->items[i];
  });
}
int mlxb_vector_push(mlxb_vector v, mlxb_array a) {
  return guard("vector_push", [&] { v->items.push_back(a->value); });
}

int mlxb_map_new(mlxb_map* out) {
  return guard("map_new", [&] { *out = new mlxb_map_s{}; });
}
void mlxb_map_free(mlxb_map m) { delete m; }
size_t mlxb_map_size(mlxb_map m) { return m ? m->keys.size() : 0; }
const char* mlxb_map_key(mlxb_map m, size_t i) { return i < m->keys.size() ? m->keys[i].c_str() : nullptr; }
int mlxb_map_value(mlxb_map m, size_t i, mlxb_array* out) {
  return produce("map_value", out, [&] {
    if (i >= m->values.size()) throw std::out_of_range("map_value: index out of range");
    return m->values[i];
  });
}
int mlxb_map_insert(mlxb_map m, const char* key, mlxb_array a) {
  return guard("map_insert", [&] {
    m->keys.emplace_back(key);
    m->values.push_back(a->value);
  });
}

int mlxb_strmap_new(mlxb_strmap* out) {
  return guard("strmap_new", [&] { *out = new mlxb_strmap_s{}; });
}
void mlxb_strmap_free(mlxb_strmap m) { delete m; }
size_t mlxb_strmap_size(mlxb_strmap m) { return m ? m->keys.size() : 0; }
const char* mlxb_strmap_key(mlxb_strmap m, size_t i) { return i < m->keys.size() ? m->keys[i].c_str() : nullptr; }
const char* mlxb_strmap_value(mlxb_strmap m, size_t i) {
  return i < m->values.size() ? m->values[i].c_str() : nullptr;
}
int mlxb_strmap_insert(mlxb_strmap m, const char* key, const char* value) {
  return guard("strmap_insert", [&] {
    m->keys.emplace_back(key);
    m->values.emplace_back(value);
  });
}

// ------------------------------------------------------------------------- evaluation
int mlxb_eval(const mlxb_array* arrays, size_t n) {
  return guard("eval", [&] { mx::eval(arrays_of(arrays, n)); });
}

int mlxb_async_eval(const mlxb_array* arrays, size_t n) {
  return guard("async_eval", [&] { mx::async_eval(arrays_of(arrays, n)); });
}

// ------------------------------------------------------------------------- closures
int mlxb_closure_new(mlxb_closure_fn fn, void* context, mlxb_context_release release, mlxb_closure* out) {
  return guard("closure_new", [&] {
    auto owner = std::make_shared<ContextOwner>(context, release);
    if (fn == nullptr) throw std::invalid_argument("closure_new: null function");
    auto c = new mlxb_closure_s{};
    c->fn = callback_function(fn, context);
    c->owner = owner;
    *out = c;
  });
}

void mlxb_closure_free(mlxb_closure c) {
  if (c == nullptr) return;
  if (c->compiled) {
    try {
      mx::detail::compile_erase(mx::detail::compile_cache(), reinterpret_cast<std::uintptr_t>(c));
    } catch (...) {
    }
  }
  delete c;
}

int mlxb_closure_apply(mlxb_closure c, const mlxb_array* inputs, size_t n, mlxb_vector* out) {
  return guard("closure_apply", [&] { *out = new mlxb_vector_s{c->fn(arrays_of(inputs, n))}; });
}

int mlxb_compile(mlxb_closure c, mlxb_closure* out) {
  return guard("compile", [&] {
    auto compiled = new mlxb_closure_s{};
    // Keep the traced closure alive as long as the compiled one; its address is the cache key.
    auto traced = std::make_shared<mlxb_closure_s>(*c);
    compiled->wrapped = traced;
    compiled->owner = c->owner;
    compiled->compiled = true;
    compiled->fn = mx::detail::compile(traced->fn, reinterpret_cast<std::uintptr_t>(compiled));
    *out = compiled;
  });
}

int mlxb_value_and_grad(mlxb_closure c, const mlxb_array* inputs, size_t n, const int* argnums, size_t n_argnums,
                        mlxb_vector* values, mlxb_vector* grads) {
  return guard("value_and_grad", [&] {
    std::vector<int> nums(argnums, argnums + n_argnums);
    auto vg = mx::value_and_grad(c->fn, nums);
    auto [v, g] = vg(arrays_of(inputs, n));
    *values = new mlxb_vector_s{std::move(v)};
    *grads = new mlxb_vector_s{std::move(g)};
  });
}

int mlxb_vjp(mlxb_closure c, const mlxb_array* primals, size_t n_primals, const mlxb_array* cotangents,
             size_t n_cotangents, mlxb_vector* outputs, mlxb_vector* vjps) {
  return guard("vjp", [&] {
    auto [o, v] = mx::vjp(c->fn, arrays_of(primals, n_primals), arrays_of(cotangents, n_cotangents));
    *outputs = new mlxb_vector_s{std::move(o)};
    *vjps = new mlxb_vector_s{std::move(v)};
  });
}

}  // extern "C"
