// A small persistent thread pool for the kernels: num_threads() - 1 workers plus the calling
// thread (MLX's CPU stream thread). One parallel call at a time; nested or concurrent calls run
// serially in the caller.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "internal.h"

namespace valuealign::kernels::detail {
namespace {

thread_local bool t_in_pool = false;

int configured_threads() {
  if (const char* env = std::getenv("VALUEALIGN_KERNEL_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : int(std::min(hc, 64u));
}

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { worker(); });
  }
  int size() const { return n_; }

  void run(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 1 || n_ <= 1 || t_in_pool) return serial(n, fn);
    std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
    if (!call.owns_lock()) return serial(n, fn);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      total_ = n;
      next_.store(0, std::memory_order_relaxed);
      active_ = 0;
      open_ = true;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    t_in_pool = true;
    work();
    t_in_pool = false;
    // Wait only for the workers that joined this call. One that wakes later (on a busy machine
    // a wake-up can take far longer than the work) finds the call closed and never touches fn.
    std::unique_lock<std::mutex> lk(m_);
    open_ = false;
    done_cv_.wait(lk, [this] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static void serial(int64_t n, const std::function<void(int64_t)>& fn) {
    for (int64_t i = 0; i < n; ++i) fn(i);
  }

  void work() {
    for (;;) {
      int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= total_) return;
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
        next_.store(total_, std::memory_order_relaxed);
      }
    }
  }

  void worker() {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (!open_) continue;
        ++active_;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--active_ == 0) done_cv_.notify_one();
      }
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t total_ = 0;
  int active_ = 0;     // workers inside the current call
  bool open_ = false;  // the current call still accepts workers
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  // Never destroyed: the workers block on a condition variable until the process exits.
  static Pool* p = new Pool(configured_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, const std::function<void(int64_t)>& fn) { pool().run(n, fn); }

Ranges split_ranges(int64_t n, int64_t grain, int64_t align) {
  if (n <= 0) return {n, 1};
  grain = std::max<int64_t>(grain, 1);
  align = std::max<int64_t>(align, 1);
  int64_t parts = std::min<int64_t>(num_threads(), n / grain);
  if (parts <= 1) return {n, 1};
  int64_t chunk = (n + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  return {chunk, (n + chunk - 1) / chunk};
}

void parallel_range(int64_t n, int64_t grain, int64_t align, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const Ranges r = split_ranges(n, grain, align);
  if (r.parts <= 1) return fn(0, n);
  parallel_for(r.parts, [&](int64_t p) { fn(p * r.chunk, std::min(n, (p + 1) * r.chunk)); });
}

}  // namespace valuealign::kernels::detail
