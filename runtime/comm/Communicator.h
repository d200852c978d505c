// Collective communication between the ranks of one group (a mesh axis, or the world).
//
// Every rank of the group makes the same calls in the same order with the same sizes;
// calls block until the collective finishes on this rank. Errors are values: a dead or
// hung peer gives an error within the communicator's timeout, never a hang. After an
// error the communicator is unusable (every later call returns the first error): the
// job should stop.
//
// Point to point (`send`, `recv`; pipeline stages pass activations forward and their
// gradients back) pairs two ranks instead: each send is taken by exactly one recv on
// `peer` naming the sender and the same tag, and the messages of one (sender, receiver,
// tag) arrive in the order they were sent; tags tell apart transfers in flight between
// one pair at once (their order across tags is free). A send is buffered: it returns
// as soon as `data` may be reused, whether or not the peer has posted its recv yet, so
// two neighbours may both send first and then receive (as 1F1B schedules do). A recv
// blocks until the message arrived. A size that differs from the sender's is an error
// on the receiving side (nothing is written past `bytes`); so is a peer that sends
// nothing within the timeout, or dies, named in the message. A send that no recv takes
// within the timeout fails the communicator, reported by its next call.
#pragma once

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace apc::comm {

class Communicator {
public:
  virtual ~Communicator();
  virtual int rank() const = 0; // in the group
  virtual int size() const = 0;
  // In place: data[i] = sum over ranks (max over ranks). Every rank gets identical bits.
  virtual Status allReduceSum(float *data, size_t count) = 0;
  virtual Status allReduceSum(double *data, size_t count) = 0;
  virtual Status allReduceMax(float *data, size_t count) = 0; // NaN wins
  // out = concatenation of every rank's `in`, in rank order (size() * bytesPerRank).
  virtual Status allGather(const void *in, void *out, size_t bytesPerRank) = 0;
  // in: size() * countPerRank values; out: this rank's slice of the sum (countPerRank).
  virtual Status reduceScatterSum(const float *in, float *out, size_t countPerRank) = 0;
  // data of `root` (a rank of this group) is copied to every rank.
  virtual Status broadcast(void *data, size_t bytes, int root) = 0;
  virtual Status barrier() = 0;
  // Point to point with `peer`, a rank of this group (see above). Sending to oneself
  // queues the message for a later recv from oneself; a recv from oneself with nothing
  // queued fails at once (nobody else could send it).
  virtual Status send(const void *data, size_t bytes, int peer, uint32_t tag) = 0;
  virtual Status recv(void *data, size_t bytes, int peer, uint32_t tag) = 0;
};

// The messages a rank sends to itself, by tag, oldest first (not synchronised: the
// owner serialises its calls).
class SelfMailbox {
public:
  void put(const void *data, size_t bytes, uint32_t tag);
  // `who`: the start of an error ("recv from rank 0 (tag 3)").
  Status take(void *data, size_t bytes, uint32_t tag, const std::string &who);

private:
  std::map<uint32_t, std::deque<std::vector<uint8_t>>> queued_;
};

// The communicator of a group of one: everything is a copy or nothing.
class SingleProcessCommunicator final : public Communicator {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status allReduceSum(float *, size_t) override { return Status::ok(); }
  Status allReduceSum(double *, size_t) override { return Status::ok(); }
  Status allReduceMax(float *, size_t) override { return Status::ok(); }
  Status allGather(const void *in, void *out, size_t bytesPerRank) override;
  Status reduceScatterSum(const float *in, float *out, size_t countPerRank) override;
  Status broadcast(void *data, size_t bytes, int root) override;
  Status barrier() override { return Status::ok(); }
  // peer must be 0: a send queues a copy, a recv takes it.
  Status send(const void *data, size_t bytes, int peer, uint32_t tag) override;
  Status recv(void *data, size_t bytes, int peer, uint32_t tag) override;

private:
  SelfMailbox self_;
};

} // namespace apc::comm
