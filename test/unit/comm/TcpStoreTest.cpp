#include "runtime/comm/TcpStore.h"

#include "runtime/comm/Net.h"
#include "test/unit/comm/ForkRanks.h"

#include <gtest/gtest.h>

#include <thread>

using namespace apc::comm;
using apc::Result;
using apc::Status;
using namespace apc::comm::testing;
using namespace std::chrono_literals;

namespace {

TcpStoreOptions options(int port, int rank, int worldSize, const std::string &token = "tok") {
  TcpStoreOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.token = token;
  o.rank = rank;
  o.worldSize = worldSize;
  o.serve = rank == 0;
  o.connectTimeout = 5s;
  o.timeout = 5s;
  o.closeTimeout = 5s;
  return o;
}

std::unique_ptr<TcpStore> openStore(const TcpStoreOptions &o) {
  auto s = TcpStore::create(o);
  EXPECT_TRUE(s.isOk()) << s.message();
  return s.isOk() ? std::move(*s) : nullptr;
}

std::string text(const Result<Bytes> &r) {
  return r.isOk() ? std::string(r->begin(), r->end()) : "<error: " + r.message() + ">";
}

// The client side of the protocol, written out by hand for the robustness tests.
Bytes helloFrame(const std::string &token) {
  Bytes m = {1, 0x41, 0x50, 0x43, 0x53, 0, 0, 0, 1, 0, 0, 0, 1};
  uint32_t n = uint32_t(token.size());
  for (int s = 24; s >= 0; s -= 8)
    m.push_back(uint8_t(n >> s));
  m.insert(m.end(), token.begin(), token.end());
  Bytes f;
  uint32_t len = uint32_t(m.size());
  for (int s = 24; s >= 0; s -= 8)
    f.push_back(uint8_t(len >> s));
  f.insert(f.end(), m.begin(), m.end());
  return f;
}

} // namespace

TEST(TcpStore, SetGetAddWaitAcrossProcesses) {
  int port = freePort();
  auto ends = forkRanks(3, [&](int rank) {
    auto store = openStore(options(port, rank, 3));
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("key" + std::to_string(rank), "value of " + std::to_string(rank)));
    auto counter = store->add("counter", 10);
    ASSERT_TRUE(counter.isOk()) << counter.message();
    EXPECT_GE(*counter, 10);
    EXPECT_LE(*counter, 30);
    APC_ASSERT_OK(store->wait({"key0", "key1", "key2"}, 5s));
    for (int r = 0; r < 3; ++r)
      EXPECT_EQ(text(store->get("key" + std::to_string(r), 1s)),
                "value of " + std::to_string(r));
    APC_ASSERT_OK(store->set("done" + std::to_string(rank), Bytes{}));
    APC_ASSERT_OK(store->wait({"done0", "done1", "done2"}, 5s));
    auto total = store->add("counter", 0);
    ASSERT_TRUE(total.isOk()) << total.message();
    EXPECT_EQ(*total, 30);
    EXPECT_EQ(text(store->get("counter", 1s)), "30"); // counters are decimal text
    APC_EXPECT_OK(store->close());
  });
  expectAllPassed(ends);
}

TEST(TcpStore, GetBlocksUntilAnotherRankSets) {
  int port = freePort();
  auto ends = forkRanks(2, [&](int rank) {
    auto store = openStore(options(port, rank, 2));
    ASSERT_TRUE(store);
    if (rank == 1) {
      std::this_thread::sleep_for(300ms);
      APC_ASSERT_OK(store->set("late", "here"));
    } else {
      auto start = std::chrono::steady_clock::now();
      EXPECT_EQ(text(store->get("late", 5s)), "here");
      EXPECT_GE(secondsSince(start), 0.25);
    }
  });
  expectAllPassed(ends);
}

TEST(TcpStore, GetAndWaitTimeOut) {
  int port = freePort();
  auto store = openStore(options(port, 0, 1));
  ASSERT_TRUE(store);
  auto start = std::chrono::steady_clock::now();
  auto r = store->get("never", 300ms);
  double took = secondsSince(start);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.message().find("not set within 300 ms"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("'never'"), std::string::npos) << r.message();
  EXPECT_GE(took, 0.25);
  EXPECT_LT(took, 3.0);

  APC_ASSERT_OK(store->set("a", "1"));
  Status w = store->wait({"a", "b", "c"}, 200ms);
  ASSERT_FALSE(w.isOk());
  EXPECT_NE(w.message().find("'b', 'c'"), std::string::npos) << w.message();
  // The store still works after timeouts.
  EXPECT_EQ(text(store->get("a", 1s)), "1");
  APC_EXPECT_OK(store->close());
}

TEST(TcpStore, AddOnNonCounterAndLargeValues) {
  int port = freePort();
  auto store = openStore(options(port, 0, 1));
  ASSERT_TRUE(store);
  APC_ASSERT_OK(store->set("text", "hello"));
  auto r = store->add("text", 1);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.message().find("not a counter"), std::string::npos) << r.message();
  auto neg = store->add("n", -5);
  ASSERT_TRUE(neg.isOk()) << neg.message();
  EXPECT_EQ(*neg, -5);
  EXPECT_EQ(*store->add("n", 7), 2);

  Bytes big(3u << 20);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = uint8_t(i * 7 + 3);
  APC_ASSERT_OK(store->set("big", big));
  auto back = store->get("big", 2s);
  ASSERT_TRUE(back.isOk()) << back.message();
  EXPECT_TRUE(*back == big);
  APC_ASSERT_OK(store->set("empty", Bytes{}));
  auto empty = store->get("empty", 1s);
  ASSERT_TRUE(empty.isOk());
  EXPECT_TRUE(empty->empty());

  Bytes tooBig(kMaxMessageBytes + 1);
  Status s = store->set("huge", tooBig);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("over the limit"), std::string::npos) << s.message();
  APC_EXPECT_OK(store->set("after", "ok")); // a refused request does not break the client
  APC_EXPECT_OK(store->close());
}

TEST(TcpStore, WrongTokenIsRefusedAndTheServerKeepsServing) {
  int port = freePort();
  auto server = openStore(options(port, 0, 2, "right"));
  ASSERT_TRUE(server);
  ::testing::internal::CaptureStderr();
  auto intruder = TcpStore::create(options(port, 1, 2, "wrong"));
  std::this_thread::sleep_for(100ms);
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(intruder.isOk());
  EXPECT_NE(intruder.message().find("wrong job token"), std::string::npos) << intruder.message();
  EXPECT_NE(intruder.message().find("APC_JOB_TOKEN"), std::string::npos) << intruder.message();
  EXPECT_NE(log.find("refused a connection"), std::string::npos) << log;
  EXPECT_NE(log.find("wrong job token"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;

  auto friendOf = openStore(options(port, 1, 2, "right"));
  ASSERT_TRUE(friendOf);
  APC_ASSERT_OK(friendOf->set("k", "v"));
  EXPECT_EQ(text(server->get("k", 1s)), "v");
  APC_EXPECT_OK(friendOf->close());
  APC_EXPECT_OK(server->close());
}

TEST(TcpStore, PartialReadsAndOversizedMessages) {
  int port = freePort();
  auto server = openStore(options(port, 0, 1, "tok"));
  ASSERT_TRUE(server);
  auto deadline = [] { return Clock::now() + 3s; };

  // A handshake trickling in one byte at a time is answered.
  {
    auto fd = connectWithRetry("127.0.0.1", port, deadline());
    ASSERT_TRUE(fd.isOk()) << fd.message();
    Bytes hello = helloFrame("tok");
    for (uint8_t b : hello) {
      APC_ASSERT_OK(writeAll(fd->get(), &b, 1, deadline(), "server"));
      std::this_thread::sleep_for(2ms);
    }
    uint8_t answer[5];
    APC_ASSERT_OK(readAll(fd->get(), answer, 5, deadline(), "server"));
    EXPECT_EQ(answer[3], 1); // length 1
    EXPECT_EQ(answer[4], 0); // OK
  }
  // An announced message over the limit closes that connection, not the server.
  ::testing::internal::CaptureStderr();
  {
    auto fd = connectWithRetry("127.0.0.1", port, deadline());
    ASSERT_TRUE(fd.isOk()) << fd.message();
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    APC_ASSERT_OK(writeAll(fd->get(), huge, 4, deadline(), "server"));
    uint8_t byte;
    Status s = readAll(fd->get(), &byte, 1, deadline(), "server");
    EXPECT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("closed"), std::string::npos) << s.message();
  }
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("over the limit"), std::string::npos) << log;
  APC_ASSERT_OK(server->set("still", "alive"));
  EXPECT_EQ(text(server->get("still", 1s)), "alive");
  APC_EXPECT_OK(server->close());
}

TEST(TcpStore, ClientsRetryUntilTheServerIsUp) {
  int port = freePort();
  auto ends = forkRanks(2, [&](int rank) {
    if (rank == 0)
      std::this_thread::sleep_for(500ms);
    auto store = openStore(options(port, rank, 2));
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("r" + std::to_string(rank), "x"));
    APC_ASSERT_OK(store->wait({"r0", "r1"}, 5s));
  });
  expectAllPassed(ends);
}

TEST(TcpStore, ConnectGivesUpAtTheDeadline) {
  int port = freePort(); // nobody listens there
  auto o = options(port, 1, 2);
  o.connectTimeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto s = TcpStore::create(o);
  double took = secondsSince(start);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("cannot reach the rendezvous store"), std::string::npos)
      << s.message();
  EXPECT_GE(took, 0.2);
  EXPECT_LT(took, 2.0);
}

TEST(TcpStore, PortInUseIsReported) {
  int port = freePort();
  auto first = openStore(options(port, 0, 1));
  ASSERT_TRUE(first);
  auto second = TcpStore::create(options(port, 0, 1));
  ASSERT_FALSE(second.isOk());
  EXPECT_NE(second.message().find("cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << second.message();
  APC_EXPECT_OK(first->close());
}

TEST(TcpStore, ServerWaitsForEveryRankToClose) {
  int port = freePort();
  auto ends = forkRanks(3, [&](int rank) {
    auto store = openStore(options(port, rank, 3));
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("up" + std::to_string(rank), "1"));
    APC_ASSERT_OK(store->wait({"up0", "up1", "up2"}, 5s));
    if (rank == 0) {
      auto start = std::chrono::steady_clock::now();
      APC_EXPECT_OK(store->close());
      EXPECT_GE(secondsSince(start), 0.4); // rank 2 closes after 500 ms
    } else {
      if (rank == 2)
        std::this_thread::sleep_for(500ms);
      // The server is still there for the late rank.
      APC_EXPECT_OK(store->set("bye" + std::to_string(rank), "1"));
      APC_EXPECT_OK(store->close());
    }
  });
  expectAllPassed(ends);
}

TEST(TcpStore, CloseTimesOutWhenARankNeverCloses) {
  int port = freePort();
  auto ends = forkRanks(2, [&](int rank) {
    auto o = options(port, rank, 2);
    o.closeTimeout = 500ms;
    auto store = openStore(o);
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("up" + std::to_string(rank), "1"));
    APC_ASSERT_OK(store->wait({"up0", "up1"}, 5s));
    if (rank == 1) {
      std::this_thread::sleep_for(2s); // neither closes nor exits in time
      _exit(0);
    }
    auto start = std::chrono::steady_clock::now();
    Status s = store->close();
    EXPECT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("rank 1 did not close within 500 ms"), std::string::npos)
        << s.message();
    EXPECT_LT(secondsSince(start), 1.5);
  });
  expectAllPassed(ends);
}

TEST(TcpStore, ClientsFailFastWhenRankZeroDies) {
  int port = freePort();
  auto ends = forkRanks(2, [&](int rank) {
    auto store = openStore(options(port, rank, 2));
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("up" + std::to_string(rank), "1"));
    APC_ASSERT_OK(store->wait({"up0", "up1"}, 5s));
    if (rank == 0) {
      std::this_thread::sleep_for(200ms);
      _exit(0); // no close: the server vanishes
    }
    auto start = std::chrono::steady_clock::now();
    auto r = store->get("never", 10s);
    ASSERT_FALSE(r.isOk());
    EXPECT_LT(secondsSince(start), 3.0);
    EXPECT_NE(r.message().find("did rank 0 exit?"), std::string::npos) << r.message();
    // Later calls fail at once.
    Status s = store->set("x", "y");
    EXPECT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("failed earlier"), std::string::npos) << s.message();
  });
  expectAllPassed(ends);
}

TEST(TcpStore, ServerDoesNotWaitForARankThatDied) {
  int port = freePort();
  auto ends = forkRanks(3, [&](int rank) {
    auto o = options(port, rank, 3);
    o.closeTimeout = 10s;
    auto store = openStore(o);
    ASSERT_TRUE(store);
    APC_ASSERT_OK(store->set("up" + std::to_string(rank), "1"));
    APC_ASSERT_OK(store->wait({"up0", "up1", "up2"}, 5s));
    if (rank == 1)
      _exit(0); // no close
    if (rank == 2) {
      std::this_thread::sleep_for(300ms);
      APC_EXPECT_OK(store->close());
      return;
    }
    auto start = std::chrono::steady_clock::now();
    ::testing::internal::CaptureStderr();
    Status s = store->close();
    std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_LT(secondsSince(start), 2.0);
    EXPECT_GE(secondsSince(start), 0.2); // it did wait for rank 2
    ASSERT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("rank 1 disconnected without closing"), std::string::npos)
        << s.message();
    EXPECT_NE(log.find("rank 1 disconnected without closing"), std::string::npos) << log;
  });
  expectAllPassed(ends);
}
