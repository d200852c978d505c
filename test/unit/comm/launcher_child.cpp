// The program that the launcher tests start as ranks. APC_TEST_CHILD_MODE picks what
// it does:
//   print      prints who it is (stdout and stderr) and its environment, exits 0
//   fail1      rank 1 exits 3 after 100 ms; the others sleep 30 s
//   kill1      rank 1 is killed by SIGKILL after 100 ms; the others sleep 30 s
//   stubborn   rank 0 ignores SIGTERM and sleeps 30 s; rank 1 exits 5 100 ms after rank 0
//              says (through the store) that it ignores SIGTERM
//   sleep      every rank sleeps 30 s
//   allreduce  bootstrap + store + Gloo: rank 0 prints "sum N" of rank+1 over ranks
//   commfail   like allreduce, but rank 1 exits 7 before the collective
// Built as its own executable (APC_LAUNCHER_CHILD_MAIN) and linked into apc_comm_tests,
// whose main() runs it when the variable is set (the /proc/self/exe test).
#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/GlooCommunicator.h"
#include "runtime/comm/TcpStore.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>

using namespace apc::comm;
using apc::Result;
using apc::Status;

namespace {

void sleepLong() { std::this_thread::sleep_for(std::chrono::seconds(30)); }

const char *env(const char *name) {
  const char *v = std::getenv(name);
  return v ? v : "";
}

int collective(bool rank1Dies) {
  auto info = detectProcess();
  if (!info) {
    std::fprintf(stderr, "bootstrap: %s\n", info.message().c_str());
    return 1;
  }
  auto store = TcpStore::create(*info, std::chrono::seconds(10));
  if (!store) {
    std::fprintf(stderr, "store: %s\n", store.message().c_str());
    return 1;
  }
  auto comm = createWorldCommunicator(**store, *info, std::chrono::seconds(3));
  if (!comm) {
    std::fprintf(stderr, "communicator: %s\n", comm.message().c_str());
    return 1;
  }
  if (rank1Dies && info->rank == 1) {
    std::fprintf(stderr, "rank 1 leaves\n");
    std::fflush(stderr);
    _exit(7);
  }
  if (rank1Dies)
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double x = info->rank + 1;
  Status s = (*comm)->allReduceSum(&x, 1);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  if (info->rank == 0)
    std::printf("sum %g via %s\n", x, info->launcher.c_str());
  comm->reset();
  Status closed = (*store)->close();
  return closed ? 0 : 1;
}

} // namespace

int launcherChildMain() {
  std::string mode = env("APC_TEST_CHILD_MODE");
  int rank = std::atoi(env("RANK"));
  int world = std::atoi(env("WORLD_SIZE"));
  if (mode == "print") {
    std::printf("hello from rank %d of %d\n", rank, world);
    std::printf("env LOCAL_RANK=%s LOCAL_WORLD_SIZE=%s MASTER_ADDR=%s port=%s token=%zu "
                "launcher=%s\n",
                env("LOCAL_RANK"), env("LOCAL_WORLD_SIZE"), env("MASTER_ADDR"),
                std::atoi(env("MASTER_PORT")) > 0 ? "ok" : "bad",
                std::strlen(env("APC_JOB_TOKEN")), env("APC_LAUNCHER"));
    std::fprintf(stderr, "note from rank %d\n", rank);
    std::printf("no newline at the end %d", rank);
    return 0;
  }
  if (mode == "fail1" || mode == "kill1") {
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::fprintf(stderr, "rank 1 gives up\n");
      std::fflush(stderr);
      if (mode == "kill1")
        kill(getpid(), SIGKILL);
      return 3;
    }
    sleepLong();
    return 0;
  }
  if (mode == "stubborn") {
    // Rank 1 fails only once rank 0 ignores SIGTERM (told through the store): with a
    // fixed delay alone, a slow start of rank 0 (as under the sanitizers) let the
    // launcher's SIGTERM arrive first and end it without the SIGKILL under test.
    auto info = detectProcess();
    auto store = info ? TcpStore::create(*info, std::chrono::seconds(10))
                      : Result<std::unique_ptr<TcpStore>>(info.status());
    if (!store) {
      std::fprintf(stderr, "store: %s\n", store.message().c_str());
      return 1;
    }
    if (rank == 0) {
      signal(SIGTERM, SIG_IGN);
      Status s = (*store)->set("ignoring-sigterm", "1");
      if (!s)
        std::fprintf(stderr, "store: %s\n", s.message().c_str());
      sleepLong();
      return 0;
    }
    auto ignoring = (*store)->get("ignoring-sigterm");
    if (!ignoring)
      std::fprintf(stderr, "store: %s\n", ignoring.message().c_str());
    (*store)->abandon();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return 5;
  }
  if (mode == "sleep") {
    sleepLong();
    return 0;
  }
  if (mode == "allreduce")
    return collective(false);
  if (mode == "commfail")
    return collective(true);
  std::fprintf(stderr, "unknown APC_TEST_CHILD_MODE '%s'\n", mode.c_str());
  return 2;
}

#ifdef APC_LAUNCHER_CHILD_MAIN
int main() { return launcherChildMain(); }
#endif
