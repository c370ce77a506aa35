#include "work_pool.h"

namespace srgan {

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkPool::Drain(Job& job) {
  for (int chunk = job.next.fetch_add(1, std::memory_order_relaxed); chunk < job.chunks;
       chunk = job.next.fetch_add(1, std::memory_order_relaxed)) {
    (*job.fn)(chunk);
  }
}

void WorkPool::Worker(int index) {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || (job_ != nullptr && generation_ != seen); });
    if (stop_) return;
    seen = generation_;
    Job* job = job_;
    if (index >= job->helpers) continue;  // fewer threads asked for than the pool has
    job->refs++;
    lock.unlock();
    Drain(*job);
    lock.lock();
    if (--job->refs == 0) released_.notify_one();
  }
}

void WorkPool::Run(int chunks, int threads, const std::function<void(int)>& fn) {
  if (threads <= 1 || chunks <= 1) {
    for (int chunk = 0; chunk < chunks; chunk++) fn(chunk);
    return;
  }
  // Pool threads are only ever added: a smaller `threads` later just leaves some of them asleep more.
  while (static_cast<int>(threads_.size()) < threads - 1) {
    const int index = static_cast<int>(threads_.size());
    threads_.emplace_back([this, index] { Worker(index); });
  }
  Job job;
  job.fn = &fn;
  job.chunks = chunks;
  job.helpers = threads - 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    generation_++;
  }
  wake_.notify_all();
  Drain(job);
  std::unique_lock<std::mutex> lock(mu_);
  job_ = nullptr;  // a pool thread that wakes from now on finds nothing to do
  // Every chunk has been claimed; the ones still running belong to pool threads holding a reference,
  // which they drop under the mutex after their last chunk (so their writes are visible to us).
  released_.wait(lock, [&] { return job.refs == 0; });
}

}  // namespace srgan
