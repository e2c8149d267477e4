// The built-in product's worker threads: a fixed set that runs `task(i)` for i < count together with the calling
// thread, created on first use.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#include "kernels.h"

namespace kotune {

namespace {

#if defined(__linux__)
// The CPUs this process may run on (taskset, a container's cpuset), 0 if unknown.
int AffinityCpus() {
  for (int size = 1024; size <= (1 << 16); size *= 2) {
    cpu_set_t* set = CPU_ALLOC(size);
    if (!set) return 0;
    const size_t bytes = CPU_ALLOC_SIZE(size);
    CPU_ZERO_S(bytes, set);
    const int status = sched_getaffinity(0, bytes, set);
    const int count = status == 0 ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (status == 0) return count;
    if (errno != EINVAL) return 0;  // EINVAL: the kernel's mask is wider than `size`; try a wider one
  }
  return 0;
}

// The CPU time a container may use, in whole CPUs rounded up (a quota of 1.5 CPUs runs 2 threads), 0 if unlimited
// or unknown: cgroup v2's cpu.max ("max 100000" or "150000 100000") in this process's cgroup and every cgroup above
// it, else cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us.
int QuotaCpus() {
  auto quota_of = [](const std::string& text) -> double {  // "quota period" or "max period"
    std::istringstream in(text);
    std::string quota;
    double period = 0;
    if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
    const double q = std::atof(quota.c_str());
    return q > 0 ? q / period : 0;
  };
  auto read = [](const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return file ? text.str() : std::string();
  };
  double cpus = 0;
  auto take = [&](double limit) {
    if (limit > 0 && (cpus == 0 || limit < cpus)) cpus = limit;
  };
  std::ifstream cgroups("/proc/self/cgroup");
  std::string line;
  while (std::getline(cgroups, line)) {
    // "0::/path" (v2), or "N:cpu,cpuacct:/path" (v1)
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      for (;;) {  // cgroup v2: this cgroup and the ones above it, up to the root
        take(quota_of(read("/sys/fs/cgroup" + path + "/cpu.max")));
        if (path.empty() || path == "/") break;
        path = path.substr(0, path.rfind('/'));
      }
    } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {
      for (const std::string& mount : {"/sys/fs/cgroup/" + controllers + path, "/sys/fs/cgroup/cpu" + path, std::string("/sys/fs/cgroup/cpu")}) {
        const std::string quota = read(mount + "/cpu.cfs_quota_us"), period = read(mount + "/cpu.cfs_period_us");
        if (quota.empty() || period.empty()) continue;
        if (std::atof(quota.c_str()) > 0) take(std::atof(quota.c_str()) / std::atof(period.c_str()));
        break;
      }
    }
  }
  return cpus > 0 ? static_cast<int>(std::ceil(cpus - 1e-9)) : 0;
}
#endif

// OMP_NUM_THREADS where set (the user's word, as PyTorch and OpenBLAS take it), else the CPUs this process may
// use: its affinity mask, at most its container's CPU quota; std::thread's count where neither can be read.
int BuiltinThreadCount() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  const int asked = env ? std::atoi(env) : 0;
  if (asked > 0) return std::clamp(asked, 1, 64);
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__linux__)
  if (const int affinity = AffinityCpus(); affinity > 0) cpus = affinity;
  if (const int quota = QuotaCpus(); quota > 0) cpus = std::min(cpus, quota);
#endif
  return std::clamp(cpus, 1, 64);
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
