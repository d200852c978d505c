// Point-to-point checks that any Communicator must pass, each run by every rank of a
// group on its own communicator (threads with ThreadCommunicator, forked processes with
// Gloo). Payloads are bytes each rank can compute alone from (sender, tag, sequence).
#pragma once

#include "runtime/comm/Communicator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace apc::comm::testing {

inline uint8_t payloadByte(int sender, uint32_t tag, int sequence, size_t i) {
  return uint8_t((i * 31 + size_t(sender) * 7 + tag * 13 + size_t(sequence) * 101 + i / 251) &
                 0xff);
}
inline std::vector<uint8_t> payload(int sender, uint32_t tag, int sequence, size_t bytes) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i)
    v[i] = payloadByte(sender, tag, sequence, i);
  return v;
}
// The index of the first wrong byte, or -1.
inline int64_t firstWrongByte(const std::vector<uint8_t> &got, int sender, uint32_t tag,
                              int sequence) {
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != payloadByte(sender, tag, sequence, i))
      return int64_t(i);
  return -1;
}

#define APC_P2P_OK(expr)                                                                  \
  do {                                                                                    \
    Status apc_s_ = (expr);                                                               \
    ASSERT_TRUE(apc_s_.isOk()) << #expr << ": " << apc_s_.message();                      \
  } while (0)

// Ranks 0 and 1 bounce a counter `rounds` times (the others wait); then a ring: every
// rank sends to its right neighbour and receives from its left one.
inline void checkPingPong(Communicator &comm, int rounds = 50) {
  const int n = comm.size(), r = comm.rank();
  if (r < 2) {
    int64_t value = 0;
    for (int k = 0; k < rounds; ++k) {
      if ((k % 2) == r) {
        value += 1;
        APC_P2P_OK(comm.send(&value, sizeof value, 1 - r, 7));
      } else {
        int64_t got = -1;
        APC_P2P_OK(comm.recv(&got, sizeof got, 1 - r, 7));
        ASSERT_EQ(got, value + 1) << "round " << k;
        value = got;
      }
    }
    EXPECT_EQ(value, rounds);
  }
  std::vector<uint8_t> out = payload(r, 1, 0, 1000 + size_t(r));
  APC_P2P_OK(comm.send(out.data(), out.size(), (r + 1) % n, 1));
  const int left = (r + n - 1) % n;
  std::vector<uint8_t> in(1000 + size_t(left));
  APC_P2P_OK(comm.recv(in.data(), in.size(), left, 1));
  EXPECT_EQ(firstWrongByte(in, left, 1, 0), -1);
}

// Every rank sends `bytes` to both neighbours first, then receives from both (a
// blocking send deadlocks here once `bytes` exceeds the socket buffers). Twice, with
// two messages per pair the second time.
inline void checkSendFirstThenReceive(Communicator &comm, size_t bytes) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  for (int round = 0; round < 2; ++round) {
    const int messages = round + 1;
    for (int k = 0; k < messages; ++k) {
      // Tag 0 travels rightwards, tag 1 leftwards (on two ranks both go to the other).
      std::vector<uint8_t> toRight = payload(r, 0, round * 10 + k, bytes);
      APC_P2P_OK(comm.send(toRight.data(), bytes, right, 0));
      std::vector<uint8_t> toLeft = payload(r, 1, round * 10 + k, bytes);
      toRight.assign(bytes, 0); // the send took its copy: the buffer may be reused
      APC_P2P_OK(comm.send(toLeft.data(), bytes, left, 1));
    }
    for (int k = 0; k < messages; ++k) {
      std::vector<uint8_t> fromLeft(bytes), fromRight(bytes);
      APC_P2P_OK(comm.recv(fromLeft.data(), bytes, left, 0));
      APC_P2P_OK(comm.recv(fromRight.data(), bytes, right, 1));
      EXPECT_EQ(firstWrongByte(fromLeft, left, 0, round * 10 + k), -1) << "round " << round;
      EXPECT_EQ(firstWrongByte(fromRight, right, 1, round * 10 + k), -1) << "round " << round;
    }
  }
}

// Rank 0 sends to rank 1 eight tags of different sizes, three messages on one more tag
// and an empty message; rank 1 receives the tags in reverse order (the messages of one
// tag in order).
inline void checkSeveralTags(Communicator &comm) {
  const int r = comm.rank();
  auto sizeOf = [](uint32_t tag) { return size_t(1) << (2 * tag + 1); }; // 2 B .. 32 KiB
  if (r == 0) {
    for (uint32_t tag = 0; tag < 8; ++tag) {
      std::vector<uint8_t> v = payload(0, tag, 0, sizeOf(tag));
      APC_P2P_OK(comm.send(v.data(), v.size(), 1, tag));
    }
    for (int k = 0; k < 3; ++k) {
      std::vector<uint8_t> v = payload(0, 100, k, 777);
      APC_P2P_OK(comm.send(v.data(), v.size(), 1, 100));
    }
    APC_P2P_OK(comm.send(nullptr, 0, 1, 0xffffffffu));
  } else if (r == 1) {
    APC_P2P_OK(comm.recv(nullptr, 0, 0, 0xffffffffu));
    for (int k = 0; k < 3; ++k) {
      std::vector<uint8_t> v(777);
      APC_P2P_OK(comm.recv(v.data(), v.size(), 0, 100));
      EXPECT_EQ(firstWrongByte(v, 0, 100, k), -1) << "message " << k << " of tag 100";
    }
    for (uint32_t tag = 8; tag-- > 0;) {
      std::vector<uint8_t> v(sizeOf(tag));
      APC_P2P_OK(comm.recv(v.data(), v.size(), 0, tag));
      EXPECT_EQ(firstWrongByte(v, 0, tag, 0), -1) << "tag " << tag;
    }
  }
}

// `bytes` from rank 0 to rank 1 and back.
inline void checkLargeMessage(Communicator &comm, size_t bytes) {
  const int r = comm.rank();
  if (r > 1)
    return;
  std::vector<uint8_t> v;
  if (r == 0) {
    v = payload(0, 3, 0, bytes);
    APC_P2P_OK(comm.send(v.data(), bytes, 1, 3));
    std::vector<uint8_t>(bytes).swap(v);
    APC_P2P_OK(comm.recv(v.data(), bytes, 1, 4));
    EXPECT_EQ(firstWrongByte(v, 1, 4, 0), -1);
  } else {
    v.resize(bytes);
    APC_P2P_OK(comm.recv(v.data(), bytes, 0, 3));
    EXPECT_EQ(firstWrongByte(v, 0, 3, 0), -1);
    v = payload(1, 4, 0, bytes);
    APC_P2P_OK(comm.send(v.data(), bytes, 0, 4));
  }
}

// Point-to-point and collectives interleaved on one communicator.
inline void checkMixedWithCollectives(Communicator &comm) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  for (int k = 0; k < 3; ++k) {
    std::vector<uint8_t> out = payload(r, 5, k, 4096);
    APC_P2P_OK(comm.send(out.data(), out.size(), right, 5));
    float x = float(r + k);
    APC_P2P_OK(comm.allReduceSum(&x, 1));
    EXPECT_EQ(x, float(n * (n - 1) / 2 + n * k));
    std::vector<uint8_t> in(4096);
    APC_P2P_OK(comm.recv(in.data(), in.size(), left, 5));
    EXPECT_EQ(firstWrongByte(in, left, 5, k), -1);
    APC_P2P_OK(comm.barrier());
  }
}

// A message to oneself, and peers outside the group.
inline void checkSelfAndBadPeers(Communicator &comm) {
  const int n = comm.size(), r = comm.rank();
  std::vector<uint8_t> out = payload(r, 9, 0, 100), in(100);
  APC_P2P_OK(comm.send(out.data(), out.size(), r, 9));
  APC_P2P_OK(comm.recv(in.data(), in.size(), r, 9));
  EXPECT_EQ(firstWrongByte(in, r, 9, 0), -1);
  Status nothing = comm.recv(in.data(), in.size(), r, 9);
  ASSERT_FALSE(nothing.isOk());
  EXPECT_NE(nothing.message().find("nothing was sent to this rank by itself"), std::string::npos)
      << nothing.message();
  for (int bad : {-1, n}) {
    Status s = comm.send(out.data(), out.size(), bad, 0);
    ASSERT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("not a rank of"), std::string::npos) << s.message();
    s = comm.recv(in.data(), in.size(), bad, 0);
    ASSERT_FALSE(s.isOk());
    EXPECT_NE(s.message().find("not a rank of"), std::string::npos) << s.message();
  }
}

// Rank 0 sends 100 bytes; rank 1 receives `received` bytes (not 100): refused, naming
// both sizes, nothing written. Returns rank 1's error (empty elsewhere).
inline std::string checkSizeMismatch(Communicator &comm, size_t received) {
  const int r = comm.rank();
  if (r == 0) {
    std::vector<uint8_t> out = payload(0, 2, 0, 100);
    Status s = comm.send(out.data(), out.size(), 1, 2);
    EXPECT_TRUE(s.isOk()) << s.message();
  } else if (r == 1) {
    std::vector<uint8_t> in(received + 16, 0xee);
    Status s = comm.recv(in.data(), received, 0, 2);
    EXPECT_FALSE(s.isOk()) << "a mismatched size was accepted";
    EXPECT_NE(s.message().find("sent 100 bytes with tag 2 but this rank receives " +
                               std::to_string(received)),
              std::string::npos)
        << s.message();
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] != 0xee) {
        ADD_FAILURE() << "byte " << i << " of the receive buffer was written";
        break;
      }
    return s.message();
  }
  return "";
}

} // namespace apc::comm::testing
