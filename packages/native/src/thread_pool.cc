// The built-in product's worker threads: a fixed set that runs `task(i)` for i < count together with the calling
// thread, created on first use.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "kernels.h"

namespace kotune {

namespace {

int BuiltinThreadCount() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  const int asked = env ? std::atoi(env) : 0;
  const int threads = asked > 0 ? asked : static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(threads, 1, 64);
}

}  // namespace

const int kBuiltinThreads = BuiltinThreadCount();

namespace {

// A fixed set of worker threads that run `task(i)` for i < count together with the calling thread. Created
// on first use and never destroyed (the workers wait on a condition variable; process exit ends them).
class Pool {
 public:
  explicit Pool(int threads) {
    for (int t = 1; t < threads; t++) std::thread([this] { Work(); }).detach();
    workers_ = threads - 1;
  }

  void Run(int count, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> one_at_a_time(run_mutex_);  // Node worker threads share this process-wide pool
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = count;
      next_ = 0;
      busy_ = workers_;
      generation_++;
    }
    start_.notify_all();
    Drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
    task_ = nullptr;
  }

 private:
  // Takes tasks until none is left.
  void Drain() {
    for (int i = next_++; i < count_; i = next_++) (*task_)(i);
  }

  void Work() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      Drain();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int count_ = 0;
  std::atomic<int> next_{0};
  int workers_ = 0, busy_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

void RunOnPool(int count, const std::function<void(int)>& task) {
  static Pool* pool = new Pool(kBuiltinThreads);
  pool->Run(count, task);
}

}  // namespace kotune
