#include "runtime/comm/GlooCommunicator.h"

#include "runtime/comm/Net.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/address.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace apc::comm {

namespace {

// Errors of our store travel through Gloo's rendezvous as this exception.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// gloo::rendezvous::Store on our TcpStore, under a key prefix.
class StoreAdapter : public gloo::rendezvous::Store {
public:
  StoreAdapter(TcpStore &store, std::string prefix, std::chrono::milliseconds timeout,
               std::vector<int> globalRanks)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout),
        globalRanks_(std::move(globalRanks)) {}

  void set(const std::string &key, const std::vector<char> &data) override {
    Status s = store_.set(prefix_ + key, Bytes(data.begin(), data.end()));
    if (!s)
      throw StoreError(s.message());
  }
  std::vector<char> get(const std::string &key) override {
    auto v = store_.get(prefix_ + key, timeout_);
    if (!v)
      throw StoreError(v.message());
    return std::vector<char>(v->begin(), v->end());
  }
  void wait(const std::vector<std::string> &keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string> &keys,
            const std::chrono::milliseconds &timeout) override {
    std::vector<std::string> full;
    for (const auto &k : keys)
      full.push_back(prefix_ + k);
    auto t = timeout.count() > 0 ? std::min(timeout, timeout_) : timeout_;
    Status s = store_.wait(full, t);
    if (!s)
      throw StoreError(whoIsMissing(keys, t, s.message()));
  }

private:
  // Gloo's keys are "<group rank>" and "rank_<group rank>": name the ranks not there.
  std::string whoIsMissing(const std::vector<std::string> &keys, std::chrono::milliseconds t,
                           const std::string &message) {
    std::set<int> missing;
    for (const auto &k : keys) {
      std::string digits = k.compare(0, 5, "rank_") == 0 ? k.substr(5) : k;
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
          digits.size() > 6)
        return message;
      size_t r = size_t(std::stoi(digits));
      if (r >= globalRanks_.size())
        return message;
      Status present = store_.wait({prefix_ + k}, std::chrono::milliseconds(0));
      if (!present && present.message().find("not set") == std::string::npos)
        return message; // the store itself failed
      if (!present)
        missing.insert(globalRanks_[r]);
    }
    if (missing.empty())
      return message;
    std::string who;
    for (int r : missing)
      who += (who.empty() ? "rank " : ", rank ") + std::to_string(r);
    std::string refused;
    for (const std::string &r : store_.refusedConnections())
      refused += (refused.empty() ? "; meanwhile " : ", ") + r;
    return who + " did not join within " + std::to_string(t.count()) + " ms (" + message +
           ")" + refused;
  }

  TcpStore &store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::vector<int> globalRanks_;
};

std::string joinRanks(const std::vector<int> &ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i)
    s += (i ? "," : "") + std::to_string(ranks[i]);
  return s;
}

// "[127.0.0.1]:4242$3" -> "[127.0.0.1]:4242"
std::string trimSequence(const std::string &address) {
  auto dollar = address.find('$');
  return dollar == std::string::npos ? address : address.substr(0, dollar);
}

// Drops Gloo's "[/path/file.cc:123] " source locations.
std::string stripLocations(std::string msg) {
  for (;;) {
    auto open = msg.find('[');
    bool found = false;
    while (open != std::string::npos) {
      auto close = msg.find(']', open);
      if (close == std::string::npos)
        break;
      std::string inside = msg.substr(open + 1, close - open - 1);
      auto colon = inside.rfind(':');
      if (colon != std::string::npos && colon + 1 < inside.size() &&
          inside.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
          (inside.find(".cc") != std::string::npos || inside.find(".h") != std::string::npos ||
           inside.find(".cpp") != std::string::npos)) {
        size_t end = close + 1;
        if (end < msg.size() && msg[end] == ' ')
          ++end;
        msg.erase(open, end - open);
        found = true;
        break;
      }
      open = msg.find('[', close);
    }
    if (!found)
      break;
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
    msg.pop_back();
  return msg;
}

// (local, remote) of every connected TCP socket of this process, formatted as Gloo
// formats addresses.
std::vector<std::pair<std::string, std::string>> tcpEndpoints() {
  std::vector<std::pair<std::string, std::string>> out;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return out;
  while (dirent *entry = readdir(dir)) {
    char *end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (!end || *end != '\0' || fd < 0 || fd == dirfd(dir))
      continue;
    struct stat st {};
    if (fstat(int(fd), &st) != 0 || !S_ISSOCK(st.st_mode))
      continue;
    sockaddr_storage local{}, remote{};
    socklen_t localLen = sizeof(local), remoteLen = sizeof(remote);
    if (getsockname(int(fd), reinterpret_cast<sockaddr *>(&local), &localLen) != 0 ||
        getpeername(int(fd), reinterpret_cast<sockaddr *>(&remote), &remoteLen) != 0)
      continue;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
      continue;
    out.emplace_back(
        trimSequence(gloo::transport::tcp::Address(reinterpret_cast<sockaddr *>(&local),
                                                   localLen).str()),
        trimSequence(gloo::transport::tcp::Address(reinterpret_cast<sockaddr *>(&remote),
                                                   remoteLen).str()));
  }
  closedir(dir);
  return out;
}

bool containsAny(const std::string &s, std::initializer_list<const char *> needles) {
  for (const char *n : needles)
    if (s.find(n) != std::string::npos)
      return true;
  return false;
}

void ignoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      struct sigaction sa {};
      sa.sa_handler = SIG_IGN;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGPIPE, &sa, nullptr);
    }
  });
}

using ReduceFn = std::function<void(void *, const void *, const void *, size_t)>;

template <typename T> void sumFn(void *c, const void *a, const void *b, size_t n) {
  T *out = static_cast<T *>(c);
  const T *x = static_cast<const T *>(a);
  const T *y = static_cast<const T *>(b);
  for (size_t i = 0; i < n; ++i)
    out[i] = x[i] + y[i];
}

template <typename T> void maxFn(void *c, const void *a, const void *b, size_t n) {
  T *out = static_cast<T *>(c);
  const T *x = static_cast<const T *>(a);
  const T *y = static_cast<const T *>(b);
  for (size_t i = 0; i < n; ++i)
    out[i] = (x[i] > y[i] || std::isnan(x[i])) ? x[i] : y[i];
}

// Point to point: every message is a header (its size) on one slot, then the data on
// another, both derived from the tag under a prefix that Gloo's collectives do not use.
// The receiver takes the header first and posts the data receive only when the sizes
// agree: Gloo's transport aborts the process when more bytes arrive than were posted,
// and silently leaves the rest unwritten when fewer do.
struct P2PHeader {
  uint32_t magic;
  uint32_t tag;
  uint64_t bytes;
};
constexpr uint32_t kP2PMagic = 0x41504370; // "pCPA"
constexpr uint64_t kP2PSlotPrefix = uint64_t(0x50) << 56;
uint64_t p2pSlot(bool data, uint32_t tag) {
  return kP2PSlotPrefix | (uint64_t(data ? 1 : 0) << 40) | uint64_t(tag);
}

// An error of ours (not Gloo's) inside an operation: its message is the explanation.
struct P2PError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A posted send: a copy of the caller's data, alive until Gloo has written it.
struct PendingSend {
  int peer = 0;
  uint32_t tag = 0;
  size_t bytes = 0;
  P2PHeader header{};
  std::unique_ptr<uint8_t[]> data;
  std::unique_ptr<gloo::transport::UnboundBuffer> headerBuffer, dataBuffer;
};

class GlooCommunicator final : public Communicator {
public:
  GlooCommunicator(std::shared_ptr<gloo::rendezvous::Context> context,
                   std::shared_ptr<gloo::transport::Device> device, std::string name,
                   std::vector<int> globalRanks, std::chrono::milliseconds timeout)
      : context_(std::move(context)), device_(std::move(device)), name_(std::move(name)),
        globalRanks_(std::move(globalRanks)), timeout_(timeout) {}

  // Sends still in flight are waited for (each within the timeout), so that a message
  // the peer is receiving is not cut off; after an error they are abandoned.
  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(stateMutex_);
      stopping_ = true;
      if (!broken_.empty())
        abandonSends();
    }
    stateCv_.notify_all();
    if (reaper_.joinable())
      reaper_.join();
    try {
      context_.reset();
      device_.reset();
    } catch (...) {
    }
  }

  void setPeerAddresses(std::map<std::string, int> peers) { peers_ = std::move(peers); }

  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }

  Status allReduceSum(float *data, size_t count) override {
    return allReduce("allReduceSum", data, count, &sumFn<float>);
  }
  Status allReduceSum(double *data, size_t count) override {
    return allReduce("allReduceSum", data, count, &sumFn<double>);
  }
  Status allReduceMax(float *data, size_t count) override {
    return allReduce("allReduceMax", data, count, &maxFn<float>);
  }

  Status allGather(const void *in, void *out, size_t bytesPerRank) override {
    return run("allGather", [&] {
      if (bytesPerRank == 0)
        return;
      gloo::AllgatherOptions opts(context_);
      opts.setInput(const_cast<char *>(static_cast<const char *>(in)), bytesPerRank);
      opts.setOutput(static_cast<char *>(out), bytesPerRank * size_t(size()));
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    });
  }

  // A ring: in step s, rank r sends its partial sum of chunk (r-s-1) to r+1 and adds the
  // partial sum of chunk (r-s-2) from r-1; after size-1 steps chunk r is complete.
  Status reduceScatterSum(const float *in, float *out, size_t countPerRank) override {
    return run("reduceScatterSum", [&] {
      if (countPerRank == 0)
        return;
      const int n = size(), r = rank();
      const size_t chunkBytes = countPerRank * sizeof(float);
      std::vector<float> acc(in, in + countPerRank * size_t(n));
      std::vector<float> incoming(countPerRank);
      auto accBuf = context_->createUnboundBuffer(acc.data(), acc.size() * sizeof(float));
      auto inBuf = context_->createUnboundBuffer(incoming.data(), chunkBytes);
      const uint64_t slot = uint64_t(context_->nextSlot());
      const int right = (r + 1) % n, left = (r + n - 1) % n;
      for (int s = 0; s + 1 < n; ++s) {
        const size_t sendChunk = size_t((r - s - 1 + 2 * n) % n);
        const size_t recvChunk = size_t((r - s - 2 + 2 * n) % n);
        accBuf->send(right, slot, sendChunk * chunkBytes, chunkBytes);
        inBuf->recv(left, slot, 0, chunkBytes);
        if (!inBuf->waitRecv(timeout_))
          throw gloo::IoException("receive from rank " + std::to_string(left) + " aborted");
        if (!accBuf->waitSend(timeout_))
          throw gloo::IoException("send to rank " + std::to_string(right) + " aborted");
        float *dst = acc.data() + recvChunk * countPerRank;
        for (size_t i = 0; i < countPerRank; ++i)
          dst[i] += incoming[i];
      }
      std::memcpy(out, acc.data() + size_t(r) * countPerRank, chunkBytes);
    });
  }

  Status broadcast(void *data, size_t bytes, int root) override {
    if (root < 0 || root >= size())
      return Status::error("broadcast in group '" + name_ + "': root " + std::to_string(root) +
                           " is not a rank of a group of " + std::to_string(size()));
    return run("broadcast", [&] {
      if (bytes == 0)
        return;
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(static_cast<char *>(data), bytes);
      opts.setRoot(root);
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  Status barrier() override {
    return run("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

  // Copies the data, posts the header and the data, and returns: Gloo writes them when
  // the peer posts its receives. The reaper thread frees the copy once written.
  Status send(const void *data, size_t bytes, int peer, uint32_t tag) override {
    std::string what = "send to " + peerName(peer) + " (tag " + std::to_string(tag) + ")";
    if (peer < 0 || peer >= size())
      return Status::error(what + " in group '" + name_ + "': not a rank of this group of " +
                           std::to_string(size()));
    if (peer == rank())
      return run(what, [&] { self_.put(data, bytes, tag); });
    return run(
        what,
        [&] {
          auto pending = std::make_unique<PendingSend>();
          pending->peer = peer;
          pending->tag = tag;
          pending->bytes = bytes;
          pending->header = P2PHeader{kP2PMagic, tag, uint64_t(bytes)};
          pending->headerBuffer =
              context_->createUnboundBuffer(&pending->header, sizeof(P2PHeader));
          if (bytes > 0) {
            pending->data.reset(new uint8_t[bytes]);
            std::memcpy(pending->data.get(), data, bytes);
            pending->dataBuffer = context_->createUnboundBuffer(pending->data.get(), bytes);
          }
          pending->headerBuffer->send(peer, p2pSlot(false, tag), 0, sizeof(P2PHeader));
          if (bytes > 0)
            pending->dataBuffer->send(peer, p2pSlot(true, tag), 0, bytes);
          std::lock_guard<std::mutex> lock(stateMutex_);
          sends_.push_back(std::move(pending));
          if (!reaper_.joinable())
            reaper_ = std::thread([this] { reap(); });
          stateCv_.notify_all();
        },
        peer, "did not take it within");
  }

  // Takes the header, compares the sizes, then receives the data in place; the whole
  // within the timeout.
  Status recv(void *data, size_t bytes, int peer, uint32_t tag) override {
    std::string what = "recv from " + peerName(peer) + " (tag " + std::to_string(tag) + ")";
    if (peer < 0 || peer >= size())
      return Status::error(what + " in group '" + name_ + "': not a rank of this group of " +
                           std::to_string(size()));
    if (peer == rank()) {
      Status taken = Status::ok();
      Status s = run(what, [&] {
        taken = self_.take(data, bytes, tag, what + " in group '" + name_ + "'");
      });
      return s.isOk() ? taken : s;
    }
    return run(
        what,
        [&] {
          auto deadline = std::chrono::steady_clock::now() + timeout_;
          P2PHeader header{};
          auto headerBuffer = context_->createUnboundBuffer(&header, sizeof(P2PHeader));
          headerBuffer->recv(peer, p2pSlot(false, tag), 0, sizeof(P2PHeader));
          if (!headerBuffer->waitRecv(timeout_))
            throw gloo::IoException("the receive was aborted");
          if (header.magic != kP2PMagic || header.tag != tag)
            throw P2PError(peerName(peer) + " sent a garbled message header with tag " +
                           std::to_string(tag));
          if (header.bytes != uint64_t(bytes))
            throw P2PError(peerName(peer) + " sent " + std::to_string(header.bytes) +
                           " bytes with tag " + std::to_string(tag) + " but this rank receives " +
                           std::to_string(bytes) + " (sizes must match; nothing was written)");
          if (bytes == 0)
            return;
          auto dataBuffer = context_->createUnboundBuffer(data, bytes);
          dataBuffer->recv(peer, p2pSlot(true, tag), 0, bytes);
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now());
          if (!dataBuffer->waitRecv(std::max(left, std::chrono::milliseconds(1))))
            throw gloo::IoException("the receive was aborted");
        },
        peer, "sent nothing within");
  }

private:
  // "rank 3", or "rank 3 (group rank 1)" where they differ.
  std::string peerName(int peer) const {
    if (peer < 0 || size_t(peer) >= globalRanks_.size())
      return "rank " + std::to_string(peer);
    int global = globalRanks_[size_t(peer)];
    return "rank " + std::to_string(global) +
           (global == peer ? "" : " (group rank " + std::to_string(peer) + ")");
  }

  // The reaper thread: waits for the oldest posted send to be written, frees it, and so
  // on. A send no recv takes within the timeout breaks the communicator (Gloo then
  // closes its connections, so that every rank's next call fails).
  void reap() {
    std::unique_lock<std::mutex> lock(stateMutex_);
    for (;;) {
      stateCv_.wait(lock, [&] { return stopping_ || !sends_.empty(); });
      if (sends_.empty())
        return;
      PendingSend &s = *sends_.front(); // only this thread pops
      lock.unlock();
      std::string error;
      try {
        if (s.headerBuffer->waitSend(timeout_))
          if (s.dataBuffer)
            s.dataBuffer->waitSend(timeout_);
      } catch (const std::exception &e) {
        error = explain(e.what(), s.peer, "did not take it within");
      } catch (...) {
        error = "unknown exception from Gloo";
      }
      lock.lock();
      if (!error.empty() && broken_.empty())
        broken_ = "a send to " + peerName(s.peer) + " (tag " + std::to_string(s.tag) + ", " +
                  std::to_string(s.bytes) + " bytes) failed: " + error;
      if (!broken_.empty() && stopping_)
        abandonSends();
      sends_.pop_front();
    }
  }

  // Makes the reaper's waits return at once (stateMutex_ held).
  void abandonSends() {
    for (auto &s : sends_) {
      s->headerBuffer->abortWaitSend();
      if (s->dataBuffer)
        s->dataBuffer->abortWaitSend();
    }
  }

  template <typename T>
  Status allReduce(const char *what, T *data, size_t count,
                   void (*fn)(void *, const void *, const void *, size_t)) {
    return run(what, [&] {
      if (count == 0)
        return;
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, count);
      opts.setReduceFunction(ReduceFn(fn));
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  // Runs one operation; its failure (or an earlier one, also from the reaper) breaks the
  // communicator. `peer` and `silent`: a point-to-point operation's peer (group rank),
  // named when Gloo's message names nobody, and what it failed to do in time.
  template <typename F>
  Status run(const std::string &what, F &&body, int peer = -1, const char *silent = nullptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    {
      std::lock_guard<std::mutex> state(stateMutex_);
      if (!broken_.empty())
        return Status::error(what + " in group '" + name_ +
                             "': the communicator failed earlier: " + broken_);
    }
    std::string reason;
    try {
      body();
      return Status::ok();
    } catch (const P2PError &e) {
      reason = e.what();
    } catch (const std::exception &e) {
      reason = explain(e.what(), peer, silent);
    } catch (...) {
      reason = "unknown exception from Gloo";
    }
    std::lock_guard<std::mutex> state(stateMutex_);
    if (broken_.empty()) // else the reaper's failure came first (and caused this one)
      broken_ = reason;
    return Status::error(what + " in group '" + name_ + "' (rank " +
                         std::to_string(globalRanks_[size_t(rank())]) + "): " + broken_);
  }

  // "rank 1 stopped answering (connection closed) [gloo: ...]"
  std::string explain(const std::string &raw, int peer = -1,
                      const char *silent = nullptr) const {
    std::string msg = stripLocations(raw);
    std::set<int> peers;
    for (const auto &[address, global] : peers_) {
      for (size_t at = msg.find(address); at != std::string::npos;
           at = msg.find(address, at + 1)) {
        size_t end = at + address.size();
        if (end >= msg.size() || !std::isdigit(static_cast<unsigned char>(msg[end]))) {
          peers.insert(global);
          break;
        }
      }
    }
    std::string who;
    for (int p : peers)
      who += (who.empty() ? "rank " : ", rank ") + std::to_string(p);
    const bool named = !who.empty();
    if (!named && peer >= 0)
      who = peerName(peer);
    bool closed = containsAny(msg, {"closed", "reset", "EOF", "Broken pipe", "refused",
                                    "Connection"});
    bool timedOut = containsAny(msg, {"Timed out", "timed out", "timeout", "Timeout"});
    std::string ms = std::to_string(timeout_.count());
    std::string summary;
    if (!named && !who.empty() && timedOut && silent)
      summary = who + " " + silent + " " + ms + " ms";
    else if (!who.empty() && timedOut)
      summary = who + " did not answer within " + ms + " ms";
    else if (!who.empty() && closed)
      summary = who + " stopped answering (connection closed)";
    else if (!who.empty())
      summary = who + " failed";
    else if (timedOut)
      summary = "no answer within " + ms +
                " ms (a rank of the group is hung, dead, or not making the same call)";
    else if (closed)
      summary = "a rank of the group stopped answering (connection closed)";
    else
      summary = "Gloo failed";
    return summary + " [gloo: " + msg + "]";
  }

  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::string name_;
  std::vector<int> globalRanks_;
  std::chrono::milliseconds timeout_;
  std::map<std::string, int> peers_; // Gloo pair address of a peer -> its global rank
  std::mutex mutex_;                 // one operation at a time
  SelfMailbox self_;                 // sends to this rank itself (under mutex_)
  // Shared with the reaper thread.
  std::mutex stateMutex_;
  std::condition_variable stateCv_;
  std::string broken_;
  std::deque<std::unique_ptr<PendingSend>> sends_; // posted, oldest first
  bool stopping_ = false;
  std::thread reaper_; // started by the first send
};

Status validateGroup(const ProcessInfo &info, const std::vector<int> &ranks,
                     const std::string &name, int &groupRank) {
  std::string where = "group '" + name + "'";
  if (name.empty())
    return Status::error("a communicator group needs a name");
  if (ranks.empty())
    return Status::error(where + " has no ranks");
  std::set<int> seen;
  groupRank = -1;
  for (size_t i = 0; i < ranks.size(); ++i) {
    int r = ranks[i];
    if (r < 0 || r >= info.worldSize)
      return Status::error(where + ": rank " + std::to_string(r) + " is not in a job of " +
                           std::to_string(info.worldSize));
    if (!seen.insert(r).second)
      return Status::error(where + ": rank " + std::to_string(r) + " is listed twice");
    if (r == info.rank)
      groupRank = int(i);
  }
  if (groupRank < 0)
    return Status::error(where + " [" + joinRanks(ranks) + "] does not contain this rank (" +
                         std::to_string(info.rank) + ")");
  return Status::ok();
}

} // namespace

Result<std::unique_ptr<Communicator>>
createGlooCommunicator(TcpStore &store, const ProcessInfo &info, std::vector<int> groupRanks,
                       std::string groupName, std::chrono::milliseconds timeout) {
  using R = Result<std::unique_ptr<Communicator>>;
  int groupRank = -1;
  APC_RETURN_IF_ERROR(validateGroup(info, groupRanks, groupName, groupRank));
  if (timeout.count() <= 0)
    return R::error("group '" + groupName + "': the timeout must be positive");
  if (groupRanks.size() == 1)
    return std::unique_ptr<Communicator>(new SingleProcessCommunicator);

  const int size = int(groupRanks.size());
  const std::string prefix = "apc/group/" + groupName + "/";
  const std::string where = "creating group '" + groupName + "' [" + joinRanks(groupRanks) +
                            "] on rank " + std::to_string(info.rank);
  // A name is used once per job: a second creation would read the first one's keys.
  auto joined = store.add(prefix + "joined", 1);
  if (!joined)
    return joined.status().withContext(where);
  if (*joined > size)
    return R::error(where + ": the group name was used before (names must be unique per job)");
  // Every member must have been given the same ranks: compare with the first member's.
  const std::string ranksText = joinRanks(groupRanks);
  if (groupRank == 0) {
    APC_RETURN_IF_ERROR(store.set(prefix + "ranks", ranksText).withContext(where));
  } else {
    auto leader = store.getString(prefix + "ranks", timeout);
    if (!leader)
      return leader.status().withContext(where + " (waiting for rank " +
                                         std::to_string(groupRanks[0]) + ")");
    if (*leader != ranksText)
      return R::error(where + ": this rank was given ranks [" + ranksText + "] but rank " +
                      std::to_string(groupRanks[0]) + " was given [" + *leader + "]");
  }

  ignoreSigpipe();
  std::shared_ptr<gloo::rendezvous::Context> context;
  std::shared_ptr<gloo::transport::Device> device;
  std::map<std::string, int> peers;
  try {
    gloo::transport::tcp::attr attr;
    const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      attr.iface = ifname;
    } else {
      auto local = localAddressFacing(info.masterAddr, info.masterPort);
      if (!local)
        return local.status().withContext(where);
      // Debian maps the host name to 127.0.1.1: unreachable from the other nodes.
      if (isLoopbackHost(*local) && info.localWorldSize < info.worldSize)
        return R::error(where + ": MASTER_ADDR=" + info.masterAddr +
                        " is reached through the loopback interface (" + *local +
                        ") on this host, which ranks on other nodes cannot reach; set "
                        "MASTER_ADDR to this node's network address, or GLOO_SOCKET_IFNAME "
                        "to the network interface to use");
      attr.hostname = *local;
    }
    device = gloo::transport::tcp::CreateDevice(attr);
    context = std::make_shared<gloo::rendezvous::Context>(groupRank, size);
    context->setTimeout(timeout);
    StoreAdapter adapter(store, prefix + "gloo/", timeout, groupRanks);
    context->connectFullMesh(adapter, device);

    // Gloo names a peer by an address of the connection ("Connection closed by peer
    // [127.0.0.1]:4242"): depending on which side connected, the peer's listening
    // address from the rendezvous or the address of its connected socket. Collect every
    // address of every peer, so that an error can name the rank.
    std::string mine;
    for (int peer = 0; peer < size; ++peer)
      if (peer != groupRank)
        mine += trimSequence(context->getPair(peer)->address().str()) + "\n";
    for (const auto &endpoint : tcpEndpoints())
      mine += endpoint.first + "\n";
    APC_RETURN_IF_ERROR(
        store.set(prefix + "pairs/" + std::to_string(groupRank), mine).withContext(where));
    const size_t addressBytes = gloo::transport::tcp::Address().bytes().size();
    for (int peer = 0; peer < size; ++peer) {
      if (peer == groupRank)
        continue;
      const int global = groupRanks[size_t(peer)];
      auto theirs = store.getString(prefix + "pairs/" + std::to_string(peer), timeout);
      if (!theirs)
        return theirs.status().withContext(where);
      std::istringstream lines(*theirs);
      std::string address;
      while (lines >> address)
        peers[address] = global;
      // Their listening addresses as Gloo's rendezvous exchanged them.
      auto rendezvous = store.get(prefix + "gloo/" + std::to_string(peer), timeout);
      if (rendezvous && addressBytes > 0 && rendezvous->size() % addressBytes == 0) {
        for (size_t at = 0; at < rendezvous->size(); at += addressBytes) {
          std::vector<char> bytes(rendezvous->begin() + long(at),
                                  rendezvous->begin() + long(at + addressBytes));
          peers[trimSequence(gloo::transport::tcp::Address(bytes).str())] = global;
        }
      }
    }
  } catch (const StoreError &e) {
    return R::error(where + ": " + e.what());
  } catch (const std::exception &e) {
    return R::error(where + ": Gloo failed to connect: " + stripLocations(e.what()));
  }
  auto comm = std::make_unique<GlooCommunicator>(std::move(context), std::move(device),
                                                 groupName, groupRanks, timeout);
  comm->setPeerAddresses(std::move(peers));
  return std::unique_ptr<Communicator>(std::move(comm));
}

Result<std::unique_ptr<Communicator>>
createWorldCommunicator(TcpStore &store, const ProcessInfo &info,
                        std::chrono::milliseconds timeout) {
  std::vector<int> all(size_t(info.worldSize));
  for (int r = 0; r < info.worldSize; ++r)
    all[size_t(r)] = r;
  return createGlooCommunicator(store, info, std::move(all), "world", timeout);
}

} // namespace apc::comm
