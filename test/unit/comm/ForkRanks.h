// Runs a test body as several ranks, each a fork()ed child of the test process.
//
// A child runs `body(rank)` and exits 1 when a gtest expectation failed in it, 0
// otherwise (a body may also _exit itself: a dead rank). The parent waits for all of
// them with a hard deadline (SIGKILL after it), so a hung rank never hangs the test.
#pragma once

#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/Net.h"
#include "runtime/comm/TcpStore.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

// Status/Result checks that print the message on failure.
#define APC_EXPECT_OK(expr)                                                            \
  do {                                                                                 \
    auto apc_r_ = (expr);                                                              \
    EXPECT_TRUE(apc_r_.isOk()) << #expr << ": " << apc_r_.message();                   \
  } while (0)
#define APC_ASSERT_OK(expr)                                                            \
  do {                                                                                 \
    auto apc_r_ = (expr);                                                              \
    ASSERT_TRUE(apc_r_.isOk()) << #expr << ": " << apc_r_.message();                   \
  } while (0)

namespace apc::comm::testing {

struct RankEnd {
  bool exited = false;
  int code = -1;   // when exited
  int signal = 0;  // when killed
  bool killedByDeadline = false;
};

inline std::vector<RankEnd> forkRanks(int n, const std::function<void(int)> &body,
                                      std::chrono::seconds limit = std::chrono::seconds(30)) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(unsigned(limit.count()) + 5); // belt and braces
      body(r);
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(::testing::Test::HasFailure() ? 1 : 0);
    }
    pids.push_back(pid);
  }
  std::vector<RankEnd> ends(static_cast<size_t>(n));
  std::vector<bool> done(static_cast<size_t>(n), false);
  auto deadline = std::chrono::steady_clock::now() + limit;
  int left = n;
  while (left > 0) {
    for (int r = 0; r < n; ++r) {
      if (done[size_t(r)] || pids[size_t(r)] < 0)
        continue;
      int status = 0;
      if (waitpid(pids[size_t(r)], &status, WNOHANG) == pids[size_t(r)]) {
        done[size_t(r)] = true;
        --left;
        ends[size_t(r)].exited = WIFEXITED(status);
        ends[size_t(r)].code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        ends[size_t(r)].signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < n; ++r)
        if (!done[size_t(r)]) {
          kill(pids[size_t(r)], SIGKILL);
          int status = 0;
          waitpid(pids[size_t(r)], &status, 0);
          done[size_t(r)] = true;
          ends[size_t(r)].killedByDeadline = true;
          ends[size_t(r)].signal = SIGKILL;
        }
      break;
    }
    if (left > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ends;
}

inline void expectAllPassed(const std::vector<RankEnd> &ends) {
  for (size_t r = 0; r < ends.size(); ++r) {
    EXPECT_FALSE(ends[r].killedByDeadline) << "rank " << r << " hung past the test's limit";
    EXPECT_TRUE(ends[r].exited && ends[r].code == 0)
        << "rank " << r << " failed (exit code " << ends[r].code << ", signal "
        << ends[r].signal << ")";
  }
}

inline int freePort() {
  auto port = findFreeLoopbackPort();
  EXPECT_TRUE(port.isOk()) << port.message();
  return port.isOk() ? *port : 0;
}

inline double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The ProcessInfo of rank `rank` of a local job on `port` (job token "test").
inline ProcessInfo processInfo(int port, int rank, int worldSize) {
  ProcessInfo p;
  p.rank = rank;
  p.worldSize = worldSize;
  p.localRank = rank;
  p.localWorldSize = worldSize;
  p.masterAddr = "127.0.0.1";
  p.masterPort = port;
  p.jobToken = "test";
  p.launcher = "test";
  return p;
}

// The rendezvous store of `info` (rank 0 serves it), or null after a failed expectation.
inline std::unique_ptr<TcpStore> openStore(const ProcessInfo &info,
                                           std::chrono::milliseconds closeTimeout =
                                               std::chrono::seconds(5)) {
  TcpStoreOptions o;
  o.host = info.masterAddr;
  o.port = info.masterPort;
  o.token = info.jobToken;
  o.rank = info.rank;
  o.worldSize = info.worldSize;
  o.serve = info.rank == 0;
  o.connectTimeout = std::chrono::seconds(10);
  o.timeout = std::chrono::seconds(10);
  o.closeTimeout = closeTimeout;
  auto s = TcpStore::create(o);
  EXPECT_TRUE(s.isOk()) << s.message();
  return s.isOk() ? std::move(*s) : nullptr;
}

} // namespace apc::comm::testing
