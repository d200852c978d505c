// Collective communication between the ranks of one group (a mesh axis, or the world).
//
// Every rank of the group makes the same calls in the same order with the same sizes;
// calls block until the collective finishes on this rank. Errors are values: a dead or
// hung peer gives an error within the communicator's timeout, never a hang. After an
// error the communicator is unusable (every later call returns the first error): the
// job should stop.
#pragma once

#include "runtime/support/Status.h"

#include <cstddef>

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
};

} // namespace apc::comm
