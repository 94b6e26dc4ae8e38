// Errors, library facts, devices, memory, array lifecycle, creation and read-back.
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "bridge_internal.h"
#include "kernels.h"

using namespace mlxb;

namespace {
thread_local std::string last_error;

extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta, float* c,
                            int ldc);
constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;
}  // namespace

void mlxb::set_error(std::string message) { last_error = std::move(message); }

mx::array mlxb::scalar_of(double value, mx::Dtype dtype) {
  // Converted from double on the CPU (GPUs lack float64), so float64 keeps every digit.
  return mx::astype(mx::array(value, mx::float64), dtype, mx::Device::cpu);
}

mx::Dtype mlxb::to_mlx(mlxb_dtype d) {
  switch (d) {
    case MLXB_BOOL: return mx::bool_;
    case MLXB_UINT8: return mx::uint8;
    case MLXB_UINT16: return mx::uint16;
    case MLXB_UINT32: return mx::uint32;
    case MLXB_UINT64: return mx::uint64;
    case MLXB_INT8: return mx::int8;
    case MLXB_INT16: return mx::int16;
    case MLXB_INT32: return mx::int32;
    case MLXB_INT64: return mx::int64;
    case MLXB_FLOAT16: return mx::float16;
    case MLXB_FLOAT32: return mx::float32;
    case MLXB_FLOAT64: return mx::float64;
    case MLXB_BFLOAT16: return mx::bfloat16;
    case MLXB_COMPLEX64: return mx::complex64;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(static_cast<int>(d)));
}

mlxb_dtype mlxb::from_mlx(mx::Dtype d) {
  switch (d.val()) {
    case mx::Dtype::Val::bool_: return MLXB_BOOL;
    case mx::Dtype::Val::uint8: return MLXB_UINT8;
    case mx::Dtype::Val::uint16: return MLXB_UINT16;
    case mx::Dtype::Val::uint32: return MLXB_UINT32;
    case mx::Dtype::Val::uint64: return MLXB_UINT64;
    case mx::Dtype::Val::int8: return MLXB_INT8;
    case mx::Dtype::Val::int16: return MLXB_INT16;
    case mx::Dtype::Val::int32: return MLXB_INT32;
    case mx::Dtype::Val::int64: return MLXB_INT64;
    case mx::Dtype::Val::float16: return MLXB_FLOAT16;
    case mx::Dtype::Val::float32: return MLXB_FLOAT32;
    case mx::Dtype::Val::float64: return MLXB_FLOAT64;
    case mx::Dtype::Val::bfloat16: return MLXB_BFLOAT16;
    case mx::Dtype::Val::complex64: return MLXB_COMPLEX64;
  }
  return MLXB_FLOAT32;
}

extern "C" {

const char* mlxb_last_error(void) { return last_error.c_str(); }

const char* mlxb_mlx_version(void) {
  static const std::string v = mx::version();
  return v.c_str();
}

const char* mlxb_blas_provider(void) {
  static std::string provider;
  Dl_info info{};
  void* sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
  if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) {
    provider = info.dli_fname;
  } else {
    provider = "unknown";
  }
  return provider.c_str();
}

int mlxb_blas_sgemm(int m, int n, int k, const float* a, const float* b, float* c) {
  return guard("blas_sgemm", [&] {
    if (m <= 0 || n <= 0 || k <= 0 || !a || !b || !c) throw std::invalid_argument("blas_sgemm: bad arguments");
    cblas_sgemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  });
}

int mlxb_blas_threads(void) { return valuealign::kernels::blas_threads(); }

bool mlxb_set_blas_threads(int n) {
  using Set = void (*)(int);
  auto set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set || n < 1) return false;
  set(n);
  return true;
}

int mlxb_configure_allocator(size_t mmap_threshold, size_t trim_threshold, int arenas) {
#if defined(__GLIBC__)
  int done = 0;
  if (mmap_threshold > 0 && mallopt(M_MMAP_THRESHOLD, int(std::min<size_t>(mmap_threshold, 1u << 30))) == 1) done |= 1;
  if (trim_threshold > 0 && mallopt(M_TRIM_THRESHOLD, int(std::min<size_t>(trim_threshold, 1u << 30))) == 1) done |= 2;
  if (arenas > 0 && mallopt(M_ARENA_MAX, arenas) == 1) done |= 4;
  return done;
#else
  (void)mmap_threshold;
  (void)trim_threshold;
  (void)arenas;
  return -1;
#endif
}

namespace {
// MLX allocates every CPU array with malloc and frees it when the array dies. With glibc's
// defaults each block over 128 KB is a fresh mmap (its adaptive threshold only rises past blocks of
// the size already freed) and freed heap tops go back to the kernel, so a training step's
// activations arrive as new pages that the kernel faults in and zeroes one by one (3 million
// faults, 15 s of system time in a 50 s `bench train` run). Before main and before any thread
// exists (a thread keeps the arena it first used): one arena for every thread, blocks up to 1 GB
// from the heap, and up to 1 GB of free heap top kept. A single arena, because other threads'
// arenas grow in heaps of at most 64 MB and map anything bigger (an output head's 100 MB logits)
// afresh. VALUEALIGN_MALLOC=default keeps glibc's settings.
__attribute__((constructor)) void configure_malloc_at_load() {
  const char* e = std::getenv("VALUEALIGN_MALLOC");
  if (e && std::strcmp(e, "default") == 0) return;
  mlxb_configure_allocator(size_t(1) << 30, size_t(1) << 30, 1);
}
}  // namespace

// ------------------------------------------------------------------------- devices and memory
int mlxb_set_default_device(mlxb_device_type type, int index) {
  return guard("set_default_device", [&] {
    auto t = type == MLXB_GPU ? mx::Device::gpu : mx::Device::cpu;
    if (!mx::is_available(mx::Device(t, index))) {
      throw std::invalid_argument(std::string("device ") + (type == MLXB_GPU ? "gpu" : "cpu") + ":" +
                                  std::to_string(index) +
                                  " is not available in this build of MLX (build with "
                                  "VALUEALIGN_MLX_BACKEND=cuda for GPUs)");
    }
    mx::set_default_device(mx::Device(t, index));
  });
}

int mlxb_default_device(mlxb_device_type* type, int* index) {
  return guard("default_device", [&] {
    auto d = mx::default_device();
    if (type) *type = d.type == mx::Device::gpu ? MLXB_GPU : MLXB_CPU;
    if (index) *index = d.index;
  });
}

bool mlxb_device_available(mlxb_device_type type) {
  try {
    return mx::is_available(mx::Device(type == MLXB_GPU ? mx::Device::gpu : mx::Device::cpu));
  } catch (...) {
    return false;
  }
}

bool mlxb_is_cuda_build(void) {
#ifdef VALUEALIGN_CUDA
  return true;
#else
  return false;
#endif
}

int mlxb_synchronize(void) {
  return guard("synchronize", [] { mx::synchronize(); });
}

int mlxb_memory_stats(size_t* active, size_t* peak, size_t* cache) {
  return guard("memory_stats", [&] {
    if (active) *active = mx::get_active_memory();
    if (peak) *peak = mx::get_peak_memory();
    if (cache) *cache = mx::get_cache_memory();
  });
}

int mlxb_reset_peak_memory(void) {
  return guard("reset_peak_memory", [] { mx::reset_peak_memory(); });
}

int mlxb_clear_cache(void) {
  return guard("clear_cache", [] { mx::clear_cache(); });
}

// ------------------------------------------------------------------------- arrays
void mlxb_array_free(mlxb_array a) { delete a; }

int mlxb_array_retain(mlxb_array a, mlxb_array* out) {
  return produce("retain", out, [&] { return a->value; });
}

int mlxb_array_ndim(mlxb_array a) { return a ? static_cast<int>(a->value.ndim()) : -1; }

int mlxb_array_shape(mlxb_array a, int* shape, int capacity) {
  if (!a) return -1;
  const auto& s = a->value.shape();
  for (int i = 0; i < capacity && i < static_cast<int>(s.size()); ++i) shape[i] = s[i];
  return static_cast<int>(s.size());
}

size_t mlxb_array_size(mlxb_array a) { return a ? a->value.size() : 0; }

mlxb_dtype mlxb_array_dtype(mlxb_array a) { return from_mlx(a->value.dtype()); }

char* mlxb_array_describe(mlxb_array a) {
  std::string text;
  int status = guard("describe", [&] {
    std::ostringstream os;
    os << a->value;
    text = os.str();
  });
  if (status != 0) text = std::string("<array: ") + last_error + ">";
  return strdup(text.c_str());
}

int mlxb_array_from_data(const void* data, mlxb_dtype dtype, const int* shape, int ndim, mlxb_array* out) {
  return produce("array_from_data", out, [&] {
    auto s = shape_of(shape, ndim);
    size_t count = 1;
    for (auto d : s) {
      if (d < 0) throw std::invalid_argument("array_from_data: negative dimension " + std::to_string(d));
      count *= static_cast<size_t>(d);
    }
    auto dt = to_mlx(dtype);
    // Copy the caller's bytes into an MLX-owned buffer: Swift memory must not be aliased.
    size_t bytes = count * dt.size();
    void* copy = std::malloc(bytes > 0 ? bytes : 1);
    if (copy == nullptr) throw std::bad_alloc();
    if (bytes > 0) std::memcpy(copy, data, bytes);
    return mx::array(copy, std::move(s), dt, [](void* p) { std::free(p); });
  });
}

int mlxb_array_scalar(double value, mlxb_dtype dtype, mlxb_array* out) {
  return produce("array_scalar", out, [&] { return scalar_of(value, to_mlx(dtype)); });
}

int mlxb_full(const int* shape, int ndim, double value, mlxb_dtype dtype, mlxb_array* out) {
  return produce("full", out, [&] {
    auto dt = to_mlx(dtype);
    return mx::full(shape_of(shape, ndim), scalar_of(value, dt), dt);
  });
}

int mlxb_arange(double start, double stop, double step, mlxb_dtype dtype, mlxb_array* out) {
  return produce("arange", out, [&] { return mx::arange(start, stop, step, to_mlx(dtype)); });
}

int mlxb_array_read(mlxb_array a, mlxb_dtype dtype, void* dst, size_t count) {
  return guard("array_read", [&] {
    if (a->value.size() != count) {
      throw std::invalid_argument("array_read: array has " + std::to_string(a->value.size()) +
                                  " elements, destination has " + std::to_string(count));
    }
    auto dt = to_mlx(dtype);
    mx::array x = a->value.dtype() == dt ? a->value : mx::astype(a->value, dt);
    // Evaluated and row-contiguous already (the common case: a result the caller just computed):
    // copy straight out. Otherwise make a row-major copy first. Building a `contiguous` node for
    // every read cost a trip through the stream's scheduler (~60 us) even when nothing was to do.
    if (!x.is_available()) x.eval();
    if (!x.flags().row_contiguous) {
      x = mx::contiguous(x);
      x.eval();
    }
    if (!x.flags().row_contiguous) throw std::runtime_error("array_read: array is not row-contiguous");
    if (count > 0) std::memcpy(dst, x.data<char>(), count * dt.size());
  });
}

}  // extern "C"
