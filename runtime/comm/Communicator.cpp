#include "runtime/comm/Communicator.h"

#include <cstring>
#include <string>

namespace apc::comm {

Communicator::~Communicator() = default;

Status SingleProcessCommunicator::allGather(const void *in, void *out, size_t bytesPerRank) {
  if (bytesPerRank > 0 && in != out)
    std::memmove(out, in, bytesPerRank);
  return Status::ok();
}

Status SingleProcessCommunicator::reduceScatterSum(const float *in, float *out,
                                                   size_t countPerRank) {
  if (countPerRank > 0 && in != out)
    std::memmove(out, in, countPerRank * sizeof(float));
  return Status::ok();
}

Status SingleProcessCommunicator::broadcast(void *, size_t, int root) {
  if (root != 0)
    return Status::error("broadcast: root " + std::to_string(root) +
                         " is not a rank of a group of 1");
  return Status::ok();
}

} // namespace apc::comm
