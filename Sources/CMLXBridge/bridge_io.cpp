// Safetensors and GGUF.
#include <fstream>
#include <unordered_map>

#include "bridge_internal.h"

using namespace mlxb;

struct mlxb_gguf_s {
  std::vector<std::string> array_names;
  std::vector<mx::array> arrays;
  std::vector<std::string> meta_keys;
  std::vector<mx::GGUFMetaData> meta_values;
};

namespace {
void require_readable(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f.good()) throw std::runtime_error(std::string("cannot open file '") + path + "' for reading");
}
}  // namespace

extern "C" {

int mlxb_load_safetensors(const char* path, mlxb_map* arrays, mlxb_strmap* metadata) {
  return guard("load_safetensors", [&] {
    require_readable(path);
    auto [tensors, meta] = mx::load_safetensors(std::string(path));
    auto m = std::make_unique<mlxb_map_s>();
    for (auto& [k, v] : tensors) {
      m->keys.push_back(k);
      m->values.push_back(v);
    }
    // MLX loads lazily: force the reads now so a truncated file fails here, with the path.
    try {
      mx::eval(m->values);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cannot read tensors from '") + path + "': " + e.what());
    }
    auto s = std::make_unique<mlxb_strmap_s>();
    for (auto& [k, v] : meta) {
      s->keys.push_back(k);
      s->values.push_back(v);
    }
    *arrays = m.release();
    *metadata = s.release();
  });
}

int mlxb_save_safetensors(const char* path, mlxb_map arrays, mlxb_strmap metadata) {
  return guard("save_safetensors", [&] {
    std::unordered_map<std::string, mx::array> tensors;
    for (size_t i = 0; i < arrays->keys.size(); ++i) tensors.insert_or_assign(arrays->keys[i], arrays->values[i]);
    std::unordered_map<std::string, std::string> meta;
    if (metadata) {
      for (size_t i = 0; i < metadata->keys.size(); ++i) meta[metadata->keys[i]] = metadata->values[i];
    }
    mx::save_safetensors(std::string(path), std::move(tensors), std::move(meta));
  });
}

int mlxb_load_gguf(const char* path, mlxb_gguf* out) {
  return guard("load_gguf", [&] {
    require_readable(path);
    auto [tensors, meta] = mx::load_gguf(std::string(path));
    auto g = std::make_unique<mlxb_gguf_s>();
    for (auto& [k, v] : tensors) {
      g->array_names.push_back(k);
      g->arrays.push_back(v);
    }
    for (auto& [k, v] : meta) {
      g->meta_keys.push_back(k);
      g->meta_values.push_back(v);
    }
    *out = g.release();
  });
}

void mlxb_gguf_free(mlxb_gguf g) { delete g; }

int mlxb_gguf_arrays(mlxb_gguf g, mlxb_map* out) {
  return guard("gguf_arrays", [&] { *out = new mlxb_map_s{g->array_names, g->arrays}; });
}

size_t mlxb_gguf_meta_count(mlxb_gguf g) { return g->meta_keys.size(); }

const char* mlxb_gguf_meta_key(mlxb_gguf g, size_t i) {
  return i < g->meta_keys.size() ? g->meta_keys[i].c_str() : nullptr;
}

mlxb_meta_kind mlxb_gguf_meta_kind(mlxb_gguf g, size_t i) {
  if (i >= g->meta_values.size()) return MLXB_META_NONE;
  const auto& v = g->meta_values[i];
  if (std::holds_alternative<mx::array>(v)) return MLXB_META_ARRAY;
  if (std::holds_alternative<std::string>(v)) return MLXB_META_STRING;
  if (std::holds_alternative<std::vector<std::string>>(v)) return MLXB_META_STRINGS;
  return MLXB_META_NONE;
}

const char* mlxb_gguf_meta_string(mlxb_gguf g, size_t i) {
  if (i >= g->meta_values.size()) return nullptr;
  auto* s = std::get_if<std::string>(&g->meta_values[i]);
  return s ? s->c_str() : nullptr;
}

int mlxb_gguf_meta_array(mlxb_gguf g, size_t i, mlxb_array* out) {
  return produce("gguf_meta_array", out, [&] {
    if (i >= g->meta_values.size()) throw std::out_of_range("gguf metadata index out of range");
    auto* a = std::get_if<mx::array>(&g->meta_values[i]);
    if (!a) throw std::invalid_argument("gguf metadata '" + g->meta_keys[i] + "' is not an array");
    return *a;
  });
}

size_t mlxb_gguf_meta_strings_count(mlxb_gguf g, size_t i) {
  if (i >= g->meta_values.size()) return 0;
  auto* s = std::get_if<std::vector<std::string>>(&g->meta_values[i]);
  return s ? s->size() : 0;
}

const char* mlxb_gguf_meta_strings_item(mlxb_gguf g, size_t i, size_t j) {
  if (i >= g->meta_values.size()) return nullptr;
  auto* s = std::get_if<std::vector<std::string>>(&g->meta_values[i]);
  return (s && j < s->size()) ? (*s)[j].c_str() : nullptr;
}

}  // extern "C"
