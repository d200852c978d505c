// send/recv of every Communicator: ThreadCommunicator (ranks as threads), Gloo (ranks as
// forked processes over TCP) and SingleProcessCommunicator. The same checks run on
// each (PointToPointChecks.h); then the failures: mismatched sizes, a dead peer, a
// silent peer, a send nobody takes, and a sender that leaves right after sending.
#include "runtime/comm/GlooCommunicator.h"

#include "test/unit/comm/ForkRanks.h"
#include "test/unit/comm/PointToPointChecks.h"
#include "test/unit/runtime/ThreadCommunicator.h"

#include <gtest/gtest.h>

#include <thread>

using namespace apc::comm;
using apc::Status;
using namespace apc::comm::testing;
using namespace std::chrono_literals;

namespace {

constexpr size_t kLarge = size_t(64) << 20;

void allChecks(Communicator &comm) {
  checkPingPong(comm);
  checkSendFirstThenReceive(comm, size_t(8) << 20); // far beyond any socket buffer
  checkSeveralTags(comm);
  checkLargeMessage(comm, kLarge);
  checkMixedWithCollectives(comm);
  checkSelfAndBadPeers(comm);
}

// ---- Threads ----

void onThreads(int n, const std::function<void(Communicator &)> &body,
               std::chrono::milliseconds timeout = 20s) {
  auto group = std::make_shared<apc::testing::ThreadGroup>(n, timeout);
  std::vector<std::unique_ptr<apc::testing::ThreadCommunicator>> comms;
  for (int r = 0; r < n; ++r)
    comms.push_back(std::make_unique<apc::testing::ThreadCommunicator>(group, r));
  apc::testing::runRanks(n, [&](int r) { body(*comms[size_t(r)]); });
}

TEST(ThreadPointToPoint, TwoRanks) { onThreads(2, allChecks); }
TEST(ThreadPointToPoint, ThreeRanks) { onThreads(3, allChecks); }

TEST(ThreadPointToPoint, SizeMismatchIsRefused) {
  for (size_t received : {size_t(64), size_t(200)})
    onThreads(2, [&](Communicator &comm) { checkSizeMismatch(comm, received); });
}

TEST(ThreadPointToPoint, SilentPeerTimesOut) {
  onThreads(
      2,
      [](Communicator &comm) {
        if (comm.rank() == 1)
          return; // never sends
        auto start = std::chrono::steady_clock::now();
        int x = 0;
        Status s = comm.recv(&x, sizeof x, 1, 4);
        ASSERT_FALSE(s.isOk());
        EXPECT_GE(secondsSince(start), 0.25);
        EXPECT_LT(secondsSince(start), 5.0);
        EXPECT_NE(s.message().find("rank 1 sent nothing within 300 ms"), std::string::npos)
            << s.message();
      },
      300ms);
}

// ---- One process ----

TEST(SingleProcessPointToPoint, SelfOnly) {
  SingleProcessCommunicator comm;
  checkSelfAndBadPeers(comm);
  std::vector<uint8_t> out = payload(0, 1, 0, 10), in(11);
  APC_EXPECT_OK(comm.send(out.data(), out.size(), 0, 1));
  Status s = comm.recv(in.data(), in.size(), 0, 1);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("this rank sent itself 10 bytes with tag 1 but receives 11"),
            std::string::npos)
      << s.message();
}

// ---- Gloo: forked processes ----

// Runs body(rank, world communicator) on n forked ranks.
std::vector<RankEnd> onProcesses(int n, std::chrono::milliseconds timeout,
                                 const std::function<void(int, std::unique_ptr<Communicator> &)> &body,
                                 std::chrono::milliseconds closeTimeout = 5s) {
  int port = freePort();
  return forkRanks(n, [&](int rank) {
    auto info = processInfo(port, rank, n);
    auto store = openStore(info, closeTimeout);
    ASSERT_TRUE(store);
    auto comm = createWorldCommunicator(*store, info, timeout);
    ASSERT_TRUE(comm.isOk()) << comm.message();
    body(rank, *comm);
    comm->reset();
    store->close();
  });
}

TEST(GlooPointToPoint, TwoRanks) {
  expectAllPassed(onProcesses(2, 10s, [](int, auto &comm) { allChecks(*comm); }));
}
TEST(GlooPointToPoint, ThreeRanks) {
  expectAllPassed(onProcesses(3, 10s, [](int, auto &comm) { allChecks(*comm); }));
}

// The receiver refuses, writes nothing, and its communicator is broken from then on.
TEST(GlooPointToPoint, SizeMismatchIsRefused) {
  for (size_t received : {size_t(64), size_t(200)}) {
    expectAllPassed(onProcesses(2, 5s, [&](int rank, auto &comm) {
      std::string error = checkSizeMismatch(*comm, received);
      if (rank != 1)
        return;
      EXPECT_NE(error.find("recv from rank 0 (tag 2) in group 'world' (rank 1): rank 0 sent 100 "
                           "bytes with tag 2 but this rank receives " +
                           std::to_string(received)),
                std::string::npos)
          << error;
      Status again = comm->barrier();
      ASSERT_FALSE(again.isOk());
      EXPECT_NE(again.message().find("failed earlier"), std::string::npos) << again.message();
    }));
  }
}

TEST(GlooPointToPoint, DeadPeerFailsRecvQuickly) {
  auto ends = onProcesses(
      2, 5s,
      [](int rank, auto &comm) {
    APC_ASSERT_OK(comm->barrier());
    if (rank == 1)
      _exit(0); // dies without sending
    auto start = std::chrono::steady_clock::now();
    std::vector<float> v(1000);
    Status s = comm->recv(v.data(), v.size() * sizeof(float), 1, 0);
    double took = secondsSince(start);
    ASSERT_FALSE(s.isOk());
    EXPECT_LT(took, 4.0);
    EXPECT_NE(s.message().find("recv from rank 1 (tag 0) in group 'world' (rank 0): rank 1"),
              std::string::npos)
        << s.message();
    std::fprintf(stderr, "rank 0 saw, after %.2f s: %s\n", took, s.message().c_str());
      },
      1s);
  EXPECT_TRUE(ends[0].exited && ends[0].code == 0) << "rank 0 code " << ends[0].code;
  EXPECT_FALSE(ends[0].killedByDeadline);
}

TEST(GlooPointToPoint, SilentPeerTimesOut) {
  auto ends = onProcesses(
      2, 1500ms,
      [](int rank, auto &comm) {
        APC_ASSERT_OK(comm->barrier());
        if (rank == 1) {
          std::this_thread::sleep_for(3s); // alive, but sends nothing
          _exit(0);
        }
        auto start = std::chrono::steady_clock::now();
        int x = 0;
        Status s = comm->recv(&x, sizeof x, 1, 3);
        double took = secondsSince(start);
        ASSERT_FALSE(s.isOk());
        EXPECT_GE(took, 1.3);
        EXPECT_LT(took, 3.5);
        EXPECT_NE(s.message().find("recv from rank 1 (tag 3) in group 'world' (rank 0): rank 1 "
                                   "sent nothing within 1500 ms"),
                  std::string::npos)
            << s.message();
        std::fprintf(stderr, "rank 0 saw, after %.2f s: %s\n", took, s.message().c_str());
      },
      1s);
  EXPECT_TRUE(ends[0].exited && ends[0].code == 0) << "rank 0 code " << ends[0].code;
}

// The send returns at once; the failure surfaces in the next call.
TEST(GlooPointToPoint, SendNobodyTakesFailsTheNextCall) {
  auto ends = onProcesses(
      2, 1000ms,
      [](int rank, auto &comm) {
        APC_ASSERT_OK(comm->barrier());
        if (rank == 1) {
          std::this_thread::sleep_for(3s); // alive, but never receives
          _exit(0);
        }
        std::vector<uint8_t> v(64, 1);
        auto start = std::chrono::steady_clock::now();
        APC_ASSERT_OK(comm->send(v.data(), v.size(), 1, 6));
        EXPECT_LT(secondsSince(start), 0.5);
        std::this_thread::sleep_for(1800ms);
        Status s = comm->barrier();
        ASSERT_FALSE(s.isOk());
        EXPECT_NE(s.message().find("barrier in group 'world': the communicator failed earlier: a "
                                   "send to rank 1 (tag 6, 64 bytes) failed: rank 1 did not take "
                                   "it within 1000 ms"),
                  std::string::npos)
            << s.message();
        std::fprintf(stderr, "rank 0 saw: %s\n", s.message().c_str());
      },
      1s);
  EXPECT_TRUE(ends[0].exited && ends[0].code == 0) << "rank 0 code " << ends[0].code;
}

// Destroying the communicator right after a send still delivers it.
TEST(GlooPointToPoint, SenderLeavingRightAfterSendingDelivers) {
  expectAllPassed(onProcesses(2, 10s, [](int rank, auto &comm) {
    const size_t bytes = size_t(16) << 20;
    if (rank == 0) {
      std::vector<uint8_t> v = payload(0, 8, 0, bytes);
      APC_ASSERT_OK(comm->send(v.data(), bytes, 1, 8));
      comm.reset();
      return;
    }
    std::this_thread::sleep_for(300ms);
    std::vector<uint8_t> v(bytes);
    APC_ASSERT_OK(comm->recv(v.data(), bytes, 0, 8));
    EXPECT_EQ(firstWrongByte(v, 0, 8, 0), -1);
  }));
}

} // namespace
