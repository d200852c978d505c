#include "runtime/comm/TcpStore.h"

#include "runtime/comm/Net.h"
#include "runtime/comm/StoreProtocol.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <list>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace apc::comm {

namespace {

using store::Answer;
using store::kError;
using store::kMaxHelloBytes;
using store::kOk;
using store::kTimeout;
using store::kVersion;
using store::Reader;
using store::Writer;

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr size_t kMaxConnections = 4096;

Bytes frame(const Bytes &message) {
  Writer w;
  w.u32(uint32_t(message.size()));
  w.raw(message.data(), message.size());
  return std::move(w.out);
}

bool tokensEqual(const std::string &a, const std::string &b) {
  // Constant time in the token's content.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string peerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0)
    return "?";
  char buf[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  return hostPort(buf, port);
}

bool parseCounter(const Bytes &value, int64_t &out) {
  if (value.empty() || value.size() > 20)
    return false;
  size_t i = 0;
  bool neg = false;
  if (value[0] == '-') {
    neg = true;
    i = 1;
    if (value.size() == 1)
      return false;
  }
  int64_t v = 0;
  for (; i < value.size(); ++i) {
    if (value[i] < '0' || value[i] > '9')
      return false;
    if (v > (INT64_MAX - (value[i] - '0')) / 10)
      return false;
    v = v * 10 + (value[i] - '0');
  }
  out = neg ? -v : v;
  return true;
}

std::string quoteKeys(const std::vector<std::string> &keys) {
  std::string s;
  for (size_t i = 0; i < keys.size() && i < 5; ++i)
    s += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > 5)
    s += " and " + std::to_string(keys.size() - 5) + " more";
  return s;
}

} // namespace

// ---- the server ------------------------------------------------------------------------

class TcpStoreServer {
public:
  static Result<std::unique_ptr<TcpStoreServer>> start(const std::string &host, int port,
                                                       const std::string &token) {
    auto listening = listenOn(host, port);
    if (!listening)
      return Result<std::unique_ptr<TcpStoreServer>>::error(
          listening.message() +
          " (rank 0 serves the rendezvous store there; is MASTER_PORT used by another job?)");
    int pipeFds[2];
    if (pipe2(pipeFds, O_CLOEXEC | O_NONBLOCK) != 0)
      return Result<std::unique_ptr<TcpStoreServer>>::error(std::string("pipe: ") +
                                                             std::strerror(errno));
    std::unique_ptr<TcpStoreServer> server(new TcpStoreServer);
    server->name_ = hostPort(host, port);
    server->token_ = token;
    server->listen_ = std::move(*listening);
    server->wakeRead_.reset(pipeFds[0]);
    server->wakeWrite_.reset(pipeFds[1]);
    server->thread_ = std::thread([s = server.get()] { s->run(); });
    return server;
  }

  ~TcpStoreServer() { stop(); }

  void stop() {
    if (!thread_.joinable())
      return;
    stop_ = true;
    char c = 1;
    ssize_t ignored = ::write(wakeWrite_.get(), &c, 1);
    (void)ignored;
    thread_.join();
    conns_.clear();
    listen_.reset();
  }

private:
  struct Conn {
    uint64_t id;
    Fd fd;
    std::string peer;
    Bytes in;
    size_t inPos = 0;
    Bytes out;
    size_t outPos = 0;
    bool authed = false;
    bool blocked = false; // a get/wait is pending: later frames wait
    bool closing = false; // close once `out` is flushed
    bool dead = false;    // close now
    int rank = -1;
    Clock::time_point acceptedAt;
  };
  struct Waiter {
    uint64_t connId;
    bool isGet;
    std::vector<std::string> keys;
    Clock::time_point deadline;
    uint32_t timeoutMs;
  };

  TcpStoreServer() = default;

  void log(const std::string &line) {
    std::fprintf(stderr, "apc store %s: %s\n", name_.c_str(), line.c_str());
    std::fflush(stderr);
  }

  Conn *find(uint64_t id) {
    for (auto &c : conns_)
      if (c->id == id)
        return c.get();
    return nullptr;
  }

  void reply(Conn &c, Answer status, const Bytes &payload) {
    Writer w;
    w.u8(status);
    w.raw(payload.data(), payload.size());
    Bytes f = frame(w.out);
    c.out.insert(c.out.end(), f.begin(), f.end());
    flush(c);
  }
  void replyText(Conn &c, Answer status, const std::string &text) {
    reply(c, status, Bytes(text.begin(), text.end()));
  }

  void flush(Conn &c) {
    while (c.outPos < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.outPos, c.out.size() - c.outPos,
                         MSG_NOSIGNAL);
      if (n > 0) {
        c.outPos += size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      c.dead = true; // the client went away
      return;
    }
    c.out.clear();
    c.outPos = 0;
  }

  void readFrom(Conn &c) {
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 64; ++rounds) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        c.in.insert(c.in.end(), buf, buf + n);
        if (c.in.size() - c.inPos > 2 * (kMaxMessageBytes + 4)) {
          log("closed the connection from " + c.peer + ": too much unanswered data");
          c.dead = true;
          return;
        }
        continue;
      }
      if (n == 0) {
        c.dead = true;
        return;
      }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        c.dead = true;
      return;
    }
  }

  // Handles the complete frames of `c`; returns true when it handled at least one.
  bool processFrames(Conn &c) {
    bool handled = false;
    while (!c.blocked && !c.closing && !c.dead) {
      size_t avail = c.in.size() - c.inPos;
      if (avail < 4)
        break;
      const uint8_t *p = c.in.data() + c.inPos;
      uint32_t len = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                     (uint32_t(p[2]) << 8) | uint32_t(p[3]);
      size_t limit = c.authed ? kMaxMessageBytes : kMaxHelloBytes;
      if (len > limit) {
        log("closed the connection from " + c.peer + ": message of " + std::to_string(len) +
            " bytes is over the limit of " + std::to_string(limit));
        c.dead = true;
        break;
      }
      if (avail < 4 + size_t(len))
        break;
      c.inPos += 4 + size_t(len);
      handle(c, p + 4, len);
      handled = true;
    }
    if (c.inPos > 0 && c.inPos == c.in.size()) {
      c.in.clear();
      c.inPos = 0;
    } else if (c.inPos > (1u << 20)) {
      c.in.erase(c.in.begin(), c.in.begin() + long(c.inPos));
      c.inPos = 0;
    }
    return handled;
  }

  void handle(Conn &c, const uint8_t *message, size_t size) {
    Result<store::Request> decoded = store::decodeRequest(message, size, !c.authed);
    if (!c.authed) {
      if (!decoded) {
        log("refused a connection from " + c.peer + ": " + decoded.message());
        replyText(c, kError, "not an APC store handshake");
        c.closing = true;
        return;
      }
      uint32_t version = decoded->version;
      if (version != kVersion) {
        log("refused a connection from " + c.peer + ": protocol version " +
            std::to_string(version) + ", expected " + std::to_string(kVersion));
        replyText(c, kError, "store protocol version mismatch (server " +
                                 std::to_string(kVersion) + ", client " +
                                 std::to_string(version) + ")");
        c.closing = true;
        return;
      }
      if (!tokensEqual(decoded->token, token_)) {
        std::string rank = std::to_string(decoded->rank);
        log("refused a connection from " + c.peer + " (claims rank " + rank +
            "): wrong job token (a process of another job, or APC_JOB_TOKEN differs between "
            "the ranks); the job keeps waiting for its own ranks until the comm timeout");
        noteRefusal("a connection from " + c.peer + " claiming rank " + rank +
                    " was refused: wrong job token");
        replyText(c, kError, "wrong job token");
        c.closing = true;
        return;
      }
      c.authed = true;
      c.rank = decoded->rank;
      reply(c, kOk, {});
      return;
    }
    if (!decoded)
      return refuse(c, decoded.message());
    store::Request &q = *decoded;
    switch (q.op) {
    case store::kSet:
      data_[q.key] = std::move(q.value);
      reply(c, kOk, {});
      wakeWaiters();
      return;
    case store::kGet: {
      auto it = data_.find(q.key);
      if (it != data_.end())
        return reply(c, kOk, it->second);
      if (q.timeoutMs == 0)
        return replyText(c, kTimeout, "key '" + q.key + "' is not set");
      c.blocked = true;
      waiters_.push_back({c.id, true, {q.key},
                          Clock::now() + std::chrono::milliseconds(q.timeoutMs), q.timeoutMs});
      return;
    }
    case store::kAdd: {
      int64_t value = 0;
      auto it = data_.find(q.key);
      if (it != data_.end() && !parseCounter(it->second, value))
        return replyText(c, kError, "key '" + q.key + "' holds a value that is not a counter");
      value += q.delta;
      std::string text = std::to_string(value);
      data_[q.key] = Bytes(text.begin(), text.end());
      Writer w;
      w.i64(value);
      reply(c, kOk, w.out);
      wakeWaiters();
      return;
    }
    case store::kWait:
      if (missing(q.keys).empty())
        return reply(c, kOk, {});
      if (q.timeoutMs == 0)
        return replyText(c, kTimeout, "not set: " + quoteKeys(missing(q.keys)));
      c.blocked = true;
      waiters_.push_back({c.id, false, std::move(q.keys),
                          Clock::now() + std::chrono::milliseconds(q.timeoutMs), q.timeoutMs});
      return;
    case store::kHello: // not decoded after the handshake: an unknown operation
      return refuse(c, "unknown operation " + std::to_string(int(store::kHello)));
    }
  }

  // Answers a malformed request with an error and closes the connection.
  void refuse(Conn &c, const std::string &problem) {
    log("closed the connection from " + c.peer + ": " + problem);
    replyText(c, kError, problem);
    c.closing = true;
  }

  std::vector<std::string> missing(const std::vector<std::string> &keys) const {
    std::vector<std::string> out;
    for (const auto &k : keys)
      if (!data_.count(k))
        out.push_back(k);
    return out;
  }

  // Answers the waiters whose keys exist now, and those past their deadline.
  void wakeWaiters() {
    auto now = Clock::now();
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Conn *c = find(it->connId);
      if (!c || c->dead) {
        it = waiters_.erase(it);
        continue;
      }
      auto miss = missing(it->keys);
      if (miss.empty()) {
        if (it->isGet)
          reply(*c, kOk, data_[it->keys[0]]);
        else
          reply(*c, kOk, {});
      } else if (now >= it->deadline) {
        replyText(*c, kTimeout, "not set within " + std::to_string(it->timeoutMs) +
                                    " ms: " + quoteKeys(miss));
      } else {
        ++it;
        continue;
      }
      c->blocked = false;
      it = waiters_.erase(it);
    }
  }

  void run() {
    uint64_t nextId = 1;
    while (!stop_) {
      std::vector<pollfd> fds;
      fds.push_back({wakeRead_.get(), POLLIN, 0});
      fds.push_back({listen_.get(), POLLIN, 0});
      for (auto &c : conns_) {
        short events = POLLIN; // also while blocked, to notice a client going away
        if (!c->out.empty())
          events |= POLLOUT;
        fds.push_back({c->fd.get(), events, 0});
      }
      int timeoutMs = 200;
      auto now = Clock::now();
      for (auto &w : waiters_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(w.deadline - now);
        timeoutMs = std::max(0, std::min<int>(timeoutMs, int(left.count()) + 1));
      }
      int n = poll(fds.data(), fds.size(), timeoutMs);
      if (n < 0 && errno != EINTR) {
        log(std::string("poll failed: ") + std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (stop_)
        break;
      // Readiness of the connections polled (new ones are appended after).
      size_t polled = conns_.size();
      for (size_t i = 0; i < polled && n > 0; ++i) {
        Conn &c = *conns_[i];
        short re = fds[i + 2].revents;
        if (re & (POLLERR | POLLNVAL))
          c.dead = true;
        if (re & (POLLIN | POLLHUP))
          readFrom(c);
        if (re & POLLOUT)
          flush(c);
      }
      if (n > 0 && (fds[1].revents & POLLIN)) {
        for (;;) {
          int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (fd < 0)
            break;
          Fd owned(fd);
          if (conns_.size() >= kMaxConnections) {
            log("refused a connection from " + peerName(fd) + ": too many connections");
            continue;
          }
          auto c = std::make_unique<Conn>();
          c->id = nextId++;
          c->peer = peerName(fd);
          c->fd = std::move(owned);
          c->acceptedAt = Clock::now();
          conns_.push_back(std::move(c));
        }
      }
      if (n > 0 && (fds[0].revents & POLLIN)) {
        char buf[64];
        while (::read(wakeRead_.get(), buf, sizeof(buf)) > 0) {
        }
      }
      // Handle requests until nothing moves (an answered waiter may unblock frames).
      for (bool progress = true; progress;) {
        progress = false;
        for (auto &c : conns_)
          progress |= processFrames(*c);
        wakeWaiters();
      }
      // Close what is finished.
      now = Clock::now();
      for (auto &c : conns_) {
        if (!c->authed && !c->dead && !c->closing && now - c->acceptedAt > kHandshakeTimeout) {
          log("closed the connection from " + c->peer + ": no handshake within " +
              std::to_string(std::chrono::seconds(kHandshakeTimeout).count()) + " s");
          c->dead = true;
        }
        if (c->closing && c->out.empty())
          c->dead = true;
      }
      // A rank whose connection ends is gone: rank 0's close() stops waiting for it.
      bool anyGone = false;
      for (auto &c : conns_)
        if (c->dead && c->authed && c->rank >= 0) {
          std::string gone = "apc/store/gone/" + std::to_string(c->rank);
          data_[gone] = Bytes{'1'};
          anyGone = true;
        }
      conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                  [](const std::unique_ptr<Conn> &c) { return c->dead; }),
                   conns_.end());
      waiters_.remove_if([this](const Waiter &w) { return find(w.connId) == nullptr; });
      if (anyGone)
        wakeWaiters();
    }
  }

  void noteRefusal(const std::string &what) {
    std::lock_guard<std::mutex> lock(refusalsMutex_);
    if (refusals_.size() < kMaxRefusalsKept)
      refusals_.push_back(what);
    else
      ++refusalsDropped_;
  }

public:
  // What the server refused so far (wrong tokens), for a rank-0 timeout message to say.
  std::vector<std::string> refusals() const {
    std::lock_guard<std::mutex> lock(refusalsMutex_);
    std::vector<std::string> out = refusals_;
    if (refusalsDropped_ > 0)
      out.push_back(std::to_string(refusalsDropped_) + " more");
    return out;
  }

private:
  static constexpr size_t kMaxRefusalsKept = 4;
  mutable std::mutex refusalsMutex_; // the server thread writes, rank 0's client reads
  std::vector<std::string> refusals_;
  size_t refusalsDropped_ = 0;

  std::string name_, token_;
  Fd listen_, wakeRead_, wakeWrite_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::list<Waiter> waiters_;
  std::map<std::string, Bytes> data_;
};

// ---- the client ------------------------------------------------------------------------

TcpStore::TcpStore(TcpStoreOptions options)
    : options_(std::move(options)), address_(hostPort(options_.host, options_.port)) {}

TcpStore::~TcpStore() {
  Status s = close();
  (void)s;
  if (fd_ >= 0)
    ::close(fd_);
}

Result<std::unique_ptr<TcpStore>> TcpStore::create(const ProcessInfo &info,
                                                   std::chrono::milliseconds timeout) {
  TcpStoreOptions o;
  o.host = info.masterAddr;
  o.port = info.masterPort;
  o.token = info.jobToken;
  o.rank = info.rank;
  o.worldSize = info.worldSize;
  o.serve = info.rank == 0;
  o.connectTimeout = o.timeout = o.closeTimeout = timeout;
  return create(o);
}

Result<std::unique_ptr<TcpStore>> TcpStore::create(const TcpStoreOptions &options) {
  using R = Result<std::unique_ptr<TcpStore>>;
  if (options.worldSize < 1 || options.rank < 0 || options.rank >= options.worldSize)
    return R::error("rendezvous store: rank " + std::to_string(options.rank) +
                    " is not in a job of " + std::to_string(options.worldSize));
  if (options.port < 1 || options.port > 65535)
    return R::error("rendezvous store: port " + std::to_string(options.port) +
                    " is not a TCP port");
  std::unique_ptr<TcpStore> store(new TcpStore(options));
  auto deadline = Clock::now() + options.connectTimeout;
  if (options.serve) {
    auto server = TcpStoreServer::start(options.host, options.port, options.token);
    if (!server)
      return server.status();
    store->server_ = std::move(*server);
  }
  auto fd = connectWithRetry(options.host, options.port, deadline);
  if (!fd)
    return R::error("rank " + std::to_string(options.rank) +
                    ": cannot reach the rendezvous store within " +
                    std::to_string(options.connectTimeout.count()) + " ms: " + fd.message() +
                    "; is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?");
  store->fd_ = fd->release();
  store::Request hello;
  hello.version = kVersion;
  hello.rank = options.rank;
  hello.token = options.token;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto answer = store->request(store::encodeRequest(hello), std::max(left, std::chrono::milliseconds(1000)),
                               "handshake");
  if (!answer) {
    store->closed_ = true; // nothing to announce
    std::string msg = answer.message();
    if (msg.find("wrong job token") != std::string::npos)
      msg += " (APC_JOB_TOKEN must be the same in every rank of the job)";
    return R::error(msg);
  }
  return store;
}

Result<Bytes> TcpStore::request(const Bytes &message, std::chrono::milliseconds answerWithin,
                                const std::string &what) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string where = "rendezvous store " + address_ + ": " + what;
  if (!broken_.empty())
    return Result<Bytes>::error(where + ": the connection failed earlier (" + broken_ + ")");
  if (fd_ < 0)
    return Result<Bytes>::error(where + ": the store is closed");
  if (message.size() > kMaxMessageBytes)
    return Result<Bytes>::error(where + ": message of " + std::to_string(message.size()) +
                                " bytes is over the limit of " +
                                std::to_string(kMaxMessageBytes));
  auto deadline = Clock::now() + answerWithin;
  auto fail = [&](const Status &s) {
    broken_ = s.message();
    ::close(fd_);
    fd_ = -1;
    std::string hint = rank() != 0 ? " (did rank 0 exit?)" : "";
    return Result<Bytes>::error(where + ": " + s.message() + hint);
  };
  Bytes f = frame(message);
  Status s = writeAll(fd_, f.data(), f.size(), deadline, "server");
  if (!s)
    return fail(s);
  uint8_t header[4];
  s = readAll(fd_, header, 4, deadline, "server");
  if (!s)
    return fail(s);
  uint32_t len = (uint32_t(header[0]) << 24) | (uint32_t(header[1]) << 16) |
                 (uint32_t(header[2]) << 8) | uint32_t(header[3]);
  if (len < 1 || len > kMaxMessageBytes + 64)
    return fail(Status::error("malformed answer of " + std::to_string(len) + " bytes"));
  Bytes body(len);
  s = readAll(fd_, body.data(), len, deadline, "server");
  if (!s)
    return fail(s);
  uint8_t status = body[0];
  Bytes payload(body.begin() + 1, body.end());
  if (status == kOk)
    return payload;
  std::string text(payload.begin(), payload.end());
  if (status == kError && what == "handshake") {
    // The server closes the connection after refusing us.
    broken_ = text;
    ::close(fd_);
    fd_ = -1;
    return Result<Bytes>::error("rendezvous store " + address_ + " refused rank " +
                                std::to_string(rank()) + ": " + text);
  }
  return Result<Bytes>::error(where + ": " + text);
}

namespace {
// Time for the server's own timeout answer to arrive after the timeout passes.
constexpr auto kAnswerSlack = std::chrono::seconds(5);

uint32_t clampMs(std::chrono::milliseconds t) {
  if (t.count() <= 0)
    return 0;
  return t.count() > 0x7fffffff ? 0x7fffffffu : uint32_t(t.count());
}
} // namespace

Status TcpStore::set(const std::string &key, const Bytes &value) {
  if (key.size() > kMaxKeyBytes)
    return Status::error("rendezvous store: key of " + std::to_string(key.size()) +
                         " bytes is over the limit of " + std::to_string(kMaxKeyBytes));
  store::Request q;
  q.op = store::kSet;
  q.key = key;
  q.value = value;
  return request(store::encodeRequest(q), options_.timeout + kAnswerSlack, "set '" + key + "'").status();
}

Result<Bytes> TcpStore::get(const std::string &key, std::chrono::milliseconds timeout) {
  store::Request q;
  q.op = store::kGet;
  q.timeoutMs = clampMs(timeout);
  q.key = key;
  return request(store::encodeRequest(q), timeout + kAnswerSlack, "get '" + key + "'");
}

Result<std::string> TcpStore::getString(const std::string &key,
                                        std::chrono::milliseconds timeout) {
  auto v = get(key, timeout);
  if (!v)
    return v.status();
  return std::string(v->begin(), v->end());
}

Result<int64_t> TcpStore::add(const std::string &key, int64_t delta) {
  store::Request q;
  q.op = store::kAdd;
  q.key = key;
  q.delta = delta;
  auto answer = request(store::encodeRequest(q), options_.timeout + kAnswerSlack, "add '" + key + "'");
  if (!answer)
    return answer.status();
  Reader r{answer->data(), answer->size()};
  int64_t v = r.i64();
  if (!r.ok)
    return Result<int64_t>::error("rendezvous store " + address_ + ": add '" + key +
                                  "': malformed answer");
  return v;
}

Status TcpStore::wait(const std::vector<std::string> &keys, std::chrono::milliseconds timeout) {
  if (keys.empty())
    return Status::ok();
  store::Request q;
  q.op = store::kWait;
  q.timeoutMs = clampMs(timeout);
  q.keys = keys;
  return request(store::encodeRequest(q), timeout + kAnswerSlack, "wait").status();
}

// Rank 0: until every rank has closed, or disconnected without closing (it died: no
// point in waiting), or closeTimeout passes.
Status TcpStore::waitForRanksToClose() {
  auto deadline = Clock::now() + options_.closeTimeout;
  std::vector<int> pending;
  for (int r = 0; r < worldSize(); ++r)
    pending.push_back(r);
  std::vector<int> vanished;
  for (;;) {
    std::vector<int> still;
    for (int r : pending) {
      // "gone" first: a rank that closes and then disconnects between the two looks
      // would otherwise read as vanished. "closed" is always recorded before "gone".
      std::string id = std::to_string(r);
      bool gone = bool(wait({"apc/store/gone/" + id}, std::chrono::milliseconds(0)));
      if (wait({"apc/store/closed/" + id}, std::chrono::milliseconds(0)))
        continue;
      if (gone) {
        vanished.push_back(r);
        continue;
      }
      still.push_back(r);
    }
    pending = std::move(still);
    if (pending.empty() || Clock::now() >= deadline)
      break;
    // Block on the first pending rank for a while, then look at all of them again.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    Status ignored = wait({"apc/store/closed/" + std::to_string(pending[0])},
                          std::max(std::chrono::milliseconds(1),
                                   std::min(left, std::chrono::milliseconds(100))));
    (void)ignored;
  }
  auto list = [](const std::vector<int> &ranks) {
    std::string s;
    for (size_t i = 0; i < ranks.size() && i < 8; ++i)
      s += (i ? ", " : "") + std::to_string(ranks[i]);
    if (ranks.size() > 8)
      s += " and " + std::to_string(ranks.size() - 8) + " more";
    return s;
  };
  std::string problem;
  if (!pending.empty())
    problem = "rank " + list(pending) + " did not close within " +
              std::to_string(options_.closeTimeout.count()) + " ms";
  if (!vanished.empty())
    problem += (problem.empty() ? "" : "; ") + std::string("rank ") + list(vanished) +
               " disconnected without closing";
  if (problem.empty())
    return Status::ok();
  std::fprintf(stderr, "apc store %s: shutting down: %s\n", address_.c_str(), problem.c_str());
  return Status::error("rendezvous store " + address_ + ": " + problem);
}

void TcpStore::abandon() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (server_) {
    server_->stop();
    server_.reset();
  }
}

std::vector<std::string> TcpStore::refusedConnections() const {
  return server_ ? server_->refusals() : std::vector<std::string>{};
}

Status TcpStore::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_)
      return Status::ok();
    closed_ = true;
  }
  Status result = set("apc/store/closed/" + std::to_string(rank()), "1");
  if (server_) {
    if (result)
      result = waitForRanksToClose();
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
    server_->stop();
    server_.reset();
    return result;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  return result;
}

} // namespace apc::comm
