#include "runtime/comm/Net.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace apc::comm {

Fd &Fd::operator=(Fd &&o) noexcept {
  if (this != &o)
    reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

std::string hostPort(const std::string &host, int port) {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool isLoopbackHost(const std::string &host) {
  if (host == "localhost" || host == "::1" || host == "ip6-localhost")
    return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1)
    return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

namespace {

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0)
    return 0;
  return left.count() > 1000000 ? 1000000 : int(left.count());
}

std::string errnoText(int e) { return std::strerror(e); }

bool setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

struct AddrInfoList {
  addrinfo *head = nullptr;
  ~AddrInfoList() {
    if (head)
      freeaddrinfo(head);
  }
};

// Resolves host:port for TCP; returns the getaddrinfo error text on failure.
int resolve(const std::string &host, int port, int flags, AddrInfoList &out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  std::string service = std::to_string(port);
  return getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints,
                     &out.head);
}

// One non-blocking connect attempt; returns 0 or an errno value.
int tryConnect(const addrinfo *ai, Clock::time_point deadline, Fd &out) {
  Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
               ai->ai_protocol));
  if (!fd.valid())
    return errno;
  int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
  if (rc != 0 && errno != EINPROGRESS)
    return errno;
  if (rc != 0) {
    for (;;) {
      pollfd p{fd.get(), POLLOUT, 0};
      int n = poll(&p, 1, remainingMs(deadline));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno;
      if (n == 0)
        return ETIMEDOUT;
      break;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      return errno;
    if (err != 0)
      return err;
  }
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  out = std::move(fd);
  return 0;
}

} // namespace

Result<Fd> connectWithRetry(const std::string &host, int port, Clock::time_point deadline) {
  auto backoff = std::chrono::milliseconds(20);
  std::string last = "no attempt made";
  for (;;) {
    AddrInfoList list;
    int gai = resolve(host, port, 0, list);
    if (gai != 0) {
      last = std::string("cannot resolve host: ") + gai_strerror(gai);
      if (gai != EAI_AGAIN && gai != EAI_NONAME && gai != EAI_FAIL)
        return Result<Fd>::error("cannot connect to " + hostPort(host, port) + ": " + last);
    } else {
      for (addrinfo *ai = list.head; ai; ai = ai->ai_next) {
        Fd fd;
        int err = tryConnect(ai, deadline, fd);
        if (err == 0)
          return fd;
        last = errnoText(err);
      }
    }
    auto now = Clock::now();
    if (now >= deadline)
      break;
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
  }
  return Result<Fd>::error("cannot connect to " + hostPort(host, port) +
                           " before the deadline (last error: " + last + ")");
}

Result<Fd> listenOn(const std::string &host, int port, int backlog) {
  AddrInfoList list;
  bool loopback = isLoopbackHost(host);
  int gai;
  if (loopback) {
    gai = resolve(host, port, AI_PASSIVE, list);
  } else {
    // Every interface: the master address may be a name for any of this host's.
    addrinfo hints{};
    hints.ai_family = host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    std::string service = std::to_string(port);
    gai = getaddrinfo(nullptr, service.c_str(), &hints, &list.head);
  }
  if (gai != 0)
    return Result<Fd>::error("cannot listen on " + hostPort(host, port) + ": " +
                             gai_strerror(gai));
  std::string last = "no address";
  for (addrinfo *ai = list.head; ai; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                 ai->ai_protocol));
    if (!fd.valid()) {
      last = errnoText(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 ||
        ::listen(fd.get(), backlog) != 0) {
      last = errnoText(errno);
      continue;
    }
    return fd;
  }
  return Result<Fd>::error("cannot listen on " + hostPort(host, port) + ": " + last);
}

Status writeAll(int fd, const void *data, size_t size, Clock::time_point deadline,
                const std::string &what) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      size -= size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      int r = poll(&pfd, 1, remainingMs(deadline));
      if (r == 0)
        return Status::error(what + ": timed out sending");
      if (r < 0 && errno != EINTR)
        return Status::error(what + ": poll: " + errnoText(errno));
      continue;
    }
    return Status::error(what + ": send failed: " + errnoText(errno));
  }
  return Status::ok();
}

Status readAll(int fd, void *data, size_t size, Clock::time_point deadline,
               const std::string &what) {
  char *p = static_cast<char *>(data);
  while (size > 0) {
    ssize_t n = ::recv(fd, p, size, 0);
    if (n > 0) {
      p += n;
      size -= size_t(n);
      continue;
    }
    if (n == 0)
      return Status::error(what + ": connection closed");
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd pfd{fd, POLLIN, 0};
      int r = poll(&pfd, 1, remainingMs(deadline));
      if (r == 0)
        return Status::error(what + ": timed out waiting for an answer");
      if (r < 0 && errno != EINTR)
        return Status::error(what + ": poll: " + errnoText(errno));
      continue;
    }
    if (errno == ECONNRESET)
      return Status::error(what + ": connection reset");
    return Status::error(what + ": receive failed: " + errnoText(errno));
  }
  return Status::ok();
}

Result<int> findFreeLoopbackPort() {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    return Result<int>::error(std::string("socket: ") + errnoText(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
    return Result<int>::error(std::string("cannot bind 127.0.0.1:0: ") + errnoText(errno));
  socklen_t len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr *>(&addr), &len) != 0)
    return Result<int>::error(std::string("getsockname: ") + errnoText(errno));
  return int(ntohs(addr.sin_port));
}

Result<std::string> localAddressFacing(const std::string &host, int port) {
  if (isLoopbackHost(host))
    return std::string(host == "::1" ? "::1" : "127.0.0.1");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  AddrInfoList list;
  std::string service = std::to_string(port);
  int gai = getaddrinfo(host.c_str(), service.c_str(), &hints, &list.head);
  if (gai != 0)
    return Result<std::string>::error("cannot resolve " + host + ": " + gai_strerror(gai));
  std::string last = "no address";
  for (addrinfo *ai = list.head; ai; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid() || ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = errnoText(errno);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr *>(&ss), &len) != 0) {
      last = errnoText(errno);
      continue;
    }
    char buf[INET6_ADDRSTRLEN] = {0};
    const void *src = ss.ss_family == AF_INET
                          ? static_cast<const void *>(&reinterpret_cast<sockaddr_in &>(ss).sin_addr)
                          : static_cast<const void *>(&reinterpret_cast<sockaddr_in6 &>(ss).sin6_addr);
    if (!inet_ntop(ss.ss_family, src, buf, sizeof(buf))) {
      last = errnoText(errno);
      continue;
    }
    return std::string(buf);
  }
  return Result<std::string>::error("no local address reaches " + host + ": " + last);
}

Result<std::string> randomHex(size_t n) {
  std::string bytes(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(&bytes[got], n - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return Result<std::string>::error(std::string("getrandom: ") + errnoText(errno));
    got += size_t(r);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

} // namespace apc::comm
