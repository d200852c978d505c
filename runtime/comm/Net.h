// Small POSIX socket helpers shared by the rendezvous store, the Gloo communicator and
// aprun's launcher. Every blocking call takes a deadline; nothing here waits forever.
#pragma once

#include "runtime/support/Status.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace apc::comm {

using Clock = std::chrono::steady_clock;

// An owned file descriptor (closed on destruction).
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd &&o) noexcept : fd_(o.release()) {}
  Fd &operator=(Fd &&o) noexcept;
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

private:
  int fd_ = -1;
};

// "host:port" (IPv6 literals in brackets).
std::string hostPort(const std::string &host, int port);

// True when `host` names the loopback interface (127.0.0.0/8, ::1, "localhost").
bool isLoopbackHost(const std::string &host);

// Connects a TCP socket to host:port, retrying while the peer is not listening yet
// (connection refused, host unreachable for a moment) until `deadline`. TCP_NODELAY is
// set; the socket is blocking.
Result<Fd> connectWithRetry(const std::string &host, int port, Clock::time_point deadline);

// A listening TCP socket (SO_REUSEADDR) on host:port; a loopback host binds loopback
// only, any other host binds every interface (the job token guards the door).
Result<Fd> listenOn(const std::string &host, int port, int backlog = 128);

// Writes/reads exactly `size` bytes before `deadline` (poll + non-blocking I/O, robust
// to partial transfers and EINTR). `what` names the peer in messages.
Status writeAll(int fd, const void *data, size_t size, Clock::time_point deadline,
                const std::string &what);
Status readAll(int fd, void *data, size_t size, Clock::time_point deadline,
               const std::string &what);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
Result<int> findFreeLoopbackPort();

// The local IP address this host uses to reach `host` (routing lookup through a UDP
// "connect", nothing is sent). Loopback for loopback hosts.
Result<std::string> localAddressFacing(const std::string &host, int port);

// `n` random bytes as lowercase hex (getrandom).
Result<std::string> randomHex(size_t n);

} // namespace apc::comm
