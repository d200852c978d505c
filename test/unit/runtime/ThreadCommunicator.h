// Communicators between threads of one test process: every collective of
// comm::Communicator on shared memory, for running several ranks' executors or
// checkpoint writers as threads (fast and deterministic; the Gloo communicator has its
// own tests across processes). Sums add the ranks' values in rank order, so every rank
// gets identical bits. A rank that does not arrive within the timeout makes the others
// fail, never hang. Point to point goes through mailboxes per (sender, receiver, tag):
// a send queues a copy and returns, a recv waits for the oldest within the timeout.
#pragma once

#include "runtime/comm/Communicator.h"
#include "runtime/support/MeshCoordinates.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace apc::testing {

class ThreadGroup {
public:
  explicit ThreadGroup(int size, std::chrono::milliseconds timeout = std::chrono::seconds(20))
      : size_(size), timeout_(timeout), posted_(size_t(size)) {}

  int size() const { return size_; }
  // Everyone posts a pointer, waits for the others, and may then read everyone's.
  Status exchange(int rank, const void *mine, std::vector<const void *> &all) {
    posted_[size_t(rank)] = mine;
    APC_RETURN_IF_ERROR(sync());
    all = posted_;
    return Status::ok();
  }
  // A barrier; also the end of the reads of an exchange.
  Status sync() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (broken_)
      return Status::error("the thread group is broken");
    uint64_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return Status::ok();
    }
    if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != generation || broken_; }) ||
        broken_) {
      broken_ = true;
      cv_.notify_all();
      return Status::error("a rank of the thread group did not arrive");
    }
    return Status::ok();
  }

  // Point to point.
  void post(int from, int to, uint32_t tag, const void *data, size_t bytes) {
    const auto *begin = static_cast<const uint8_t *>(data);
    {
      std::lock_guard<std::mutex> lock(mailMutex_);
      mail_[{from, to, tag}].emplace_back(begin, begin + bytes);
    }
    mailCv_.notify_all();
  }
  Status take(int from, int to, uint32_t tag, void *data, size_t bytes) {
    std::string who = "recv from rank " + std::to_string(from) + " (tag " + std::to_string(tag) +
                      ") on rank " + std::to_string(to);
    std::unique_lock<std::mutex> lock(mailMutex_);
    auto &queue = mail_[{from, to, tag}];
    if (queue.empty() && from == to)
      return Status::error(who + ": nothing was sent to this rank by itself with tag " +
                           std::to_string(tag));
    if (!mailCv_.wait_for(lock, timeout_, [&] { return !queue.empty(); }))
      return Status::error(who + ": rank " + std::to_string(from) + " sent nothing within " +
                           std::to_string(timeout_.count()) + " ms");
    if (queue.front().size() != bytes)
      return Status::error(who + ": rank " + std::to_string(from) + " sent " +
                           std::to_string(queue.front().size()) + " bytes with tag " +
                           std::to_string(tag) + " but this rank receives " +
                           std::to_string(bytes) + " (sizes must match; nothing was written)");
    if (bytes)
      std::memcpy(data, queue.front().data(), bytes);
    queue.pop_front();
    return Status::ok();
  }
  // Messages sent and not yet received (for tests).
  size_t inFlight() {
    std::lock_guard<std::mutex> lock(mailMutex_);
    size_t n = 0;
    for (const auto &[key, queue] : mail_)
      n += queue.size();
    return n;
  }

private:
  int size_;
  std::chrono::milliseconds timeout_;
  std::vector<const void *> posted_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool broken_ = false;
  std::mutex mailMutex_;
  std::condition_variable mailCv_;
  std::map<std::tuple<int, int, uint32_t>, std::deque<std::vector<uint8_t>>> mail_;
};

class ThreadCommunicator final : public comm::Communicator {
public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }

  Status allReduceSum(float *data, size_t count) override { return reduce(data, count, sum<float>); }
  Status allReduceSum(double *data, size_t count) override {
    return reduce(data, count, sum<double>);
  }
  Status allReduceMax(float *data, size_t count) override {
    return reduce(data, count, [](float a, float b) {
      return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
    });
  }
  Status allGather(const void *in, void *out, size_t bytesPerRank) override {
    std::vector<const void *> all;
    APC_RETURN_IF_ERROR(group_->exchange(rank_, in, all));
    for (size_t q = 0; q < all.size(); ++q)
      if (bytesPerRank)
        std::memcpy(static_cast<uint8_t *>(out) + q * bytesPerRank, all[q], bytesPerRank);
    return group_->sync();
  }
  Status reduceScatterSum(const float *in, float *out, size_t countPerRank) override {
    std::vector<const void *> all;
    APC_RETURN_IF_ERROR(group_->exchange(rank_, in, all));
    std::vector<float> mine(countPerRank, 0.0f);
    for (size_t i = 0; i < countPerRank; ++i) {
      float s = 0;
      for (size_t q = 0; q < all.size(); ++q)
        s = q ? s + static_cast<const float *>(all[q])[size_t(rank_) * countPerRank + i]
              : static_cast<const float *>(all[q])[size_t(rank_) * countPerRank + i];
      mine[i] = s;
    }
    APC_RETURN_IF_ERROR(group_->sync());
    std::copy(mine.begin(), mine.end(), out);
    return Status::ok();
  }
  Status broadcast(void *data, size_t bytes, int root) override {
    if (root < 0 || root >= size())
      return Status::error("broadcast: bad root");
    std::vector<const void *> all;
    APC_RETURN_IF_ERROR(group_->exchange(rank_, data, all));
    if (rank_ != root && bytes)
      std::memcpy(data, all[size_t(root)], bytes);
    ++broadcasts;
    return group_->sync();
  }
  Status barrier() override { return group_->sync(); }
  Status send(const void *data, size_t bytes, int peer, uint32_t tag) override {
    if (peer < 0 || peer >= size())
      return Status::error("send to rank " + std::to_string(peer) +
                           ": not a rank of a group of " + std::to_string(size()));
    group_->post(rank_, peer, tag, data, bytes);
    ++sends;
    return Status::ok();
  }
  Status recv(void *data, size_t bytes, int peer, uint32_t tag) override {
    if (peer < 0 || peer >= size())
      return Status::error("recv from rank " + std::to_string(peer) +
                           ": not a rank of a group of " + std::to_string(size()));
    return group_->take(peer, rank_, tag, data, bytes);
  }
  ThreadGroup &group() { return *group_; }

  int sends = 0;
  int broadcasts = 0; // for tests that count messages

private:
  template <typename T> static T sum(T a, T b) { return a + b; }
  template <typename T, typename F> Status reduce(T *data, size_t count, F op) {
    std::vector<const void *> all;
    APC_RETURN_IF_ERROR(group_->exchange(rank_, data, all));
    std::vector<T> result(count);
    for (size_t i = 0; i < count; ++i) {
      T acc = static_cast<const T *>(all[0])[i];
      for (size_t q = 1; q < all.size(); ++q)
        acc = op(acc, static_cast<const T *>(all[q])[i]);
      result[i] = acc;
    }
    APC_RETURN_IF_ERROR(group_->sync());
    std::copy(result.begin(), result.end(), data);
    return Status::ok();
  }
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

// The groups of a device mesh (row-major ranks) for some sets of mesh axes: for each
// set, the ranks sharing every coordinate off those axes, in increasing rank order.
class ThreadMesh {
public:
  ThreadMesh(std::vector<int64_t> mesh, const std::vector<std::vector<int64_t>> &axisSets,
             std::chrono::milliseconds timeout = std::chrono::seconds(20))
      : mesh_(std::move(mesh)) {
    int64_t n = 1;
    for (int64_t d : mesh_)
      n *= d;
    size_ = int(n);
    for (const std::vector<int64_t> &axes : axisSets) {
      std::map<std::vector<int64_t>, std::vector<int>> byKey; // coordinates off the axes
      for (int r = 0; r < size_; ++r)
        byKey[keyOf(r, axes)].push_back(r);
      for (auto &[key, ranks] : byKey) {
        auto group = std::make_shared<ThreadGroup>(int(ranks.size()), timeout);
        for (size_t i = 0; i < ranks.size(); ++i)
          comms_[{axes, ranks[i]}] = std::make_unique<ThreadCommunicator>(group, int(i));
      }
    }
  }
  int size() const { return size_; }
  ThreadCommunicator *find(const std::vector<int64_t> &axes, int rank) const {
    auto it = comms_.find({axes, rank});
    return it == comms_.end() ? nullptr : it->second.get();
  }
  std::function<comm::Communicator *(const std::vector<int64_t> &)> lookup(int rank) const {
    return [this, rank](const std::vector<int64_t> &axes) -> comm::Communicator * {
      return find(axes, rank);
    };
  }

private:
  std::vector<int64_t> keyOf(int rank, const std::vector<int64_t> &axes) const {
    std::vector<int64_t> coords = coordinatesOf(rank, mesh_);
    for (int64_t a : axes)
      coords[size_t(a)] = -1;
    return coords;
  }
  std::vector<int64_t> mesh_;
  int size_ = 1;
  std::map<std::pair<std::vector<int64_t>, int>, std::unique_ptr<ThreadCommunicator>> comms_;
};

// Runs body(rank) on `n` threads and waits for all of them.
inline void runRanks(int n, const std::function<void(int)> &body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back(body, r);
  for (std::thread &t : threads)
    t.join();
}

} // namespace apc::testing
