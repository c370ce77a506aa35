// A small pool for train_ops' loops: the caller and up to (threads − 1) pool threads claim chunks of
// a job from an atomic counter, and the caller waits only for chunks that a pool thread has claimed.
//
// Why not an OpenMP parallel region, as oneDNN uses: a region ends in a barrier that waits for every
// thread of the team, including one the OS has not scheduled yet. On a 2-core machine shared with
// other work (our patch loaders, other processes), each region then waited for a time slice: a batch
// norm that takes 2.5 ms on one thread took 7–15 ms on two (measured, load average 2.3). Here a pool
// thread that wakes late finds no chunk left and goes back to sleep; nobody waits for it.
//
// Invariants:
//  - One pool per core instance (per Node environment), driven only from that environment's JS thread:
//    Run is never called concurrently with itself.
//  - A job lives on Run's stack. A pool thread takes it (and a reference) only under the mutex while
//    it is published; Run retracts it under the mutex and then waits until every reference is
//    dropped, so no pool thread touches a job after Run returns.
//  - Chunking is the caller's: results that are reduced per chunk do not depend on the thread count
//    or on which thread ran which chunk.

#ifndef SRGAN_WORK_POOL_H
#define SRGAN_WORK_POOL_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace srgan {

class WorkPool {
 public:
  WorkPool() = default;
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;
  ~WorkPool();

  /**
   * Runs fn(chunk) for every chunk in [0, chunks), each exactly once, on the calling thread and up to
   * threads − 1 pool threads (started on first use, kept until the pool is destroyed). Returns when
   * all chunks are done. fn must not throw.
   */
  void Run(int chunks, int threads, const std::function<void(int)>& fn);

 private:
  struct Job {
    const std::function<void(int)>* fn;
    int chunks;
    int helpers;  // pool threads 0 .. helpers − 1 may take part
    std::atomic<int> next{0};
    int refs = 0;  // pool threads holding the job; guarded by mu_
  };

  void Worker(int index);
  /** Claims and runs chunks of `job` until none is left. */
  static void Drain(Job& job);

  std::mutex mu_;
  std::condition_variable wake_;      // pool threads: a job was published, or stop
  std::condition_variable released_;  // Run: a pool thread dropped its reference
  Job* job_ = nullptr;                // the published job, or null; guarded by mu_
  uint64_t generation_ = 0;           // bumped per published job; guarded by mu_
  bool stop_ = false;                 // guarded by mu_
  std::vector<std::thread> threads_;  // touched only by the driving thread
};

}  // namespace srgan

#endif  // SRGAN_WORK_POOL_H
