#include "runtime/comm/Communicator.h"

#include <cstring>
#include <string>

namespace apc::comm {

Communicator::~Communicator() = default;

void SelfMailbox::put(const void *data, size_t bytes, uint32_t tag) {
  const auto *begin = static_cast<const uint8_t *>(data);
  queued_[tag].emplace_back(begin, begin + bytes);
}

Status SelfMailbox::take(void *data, size_t bytes, uint32_t tag, const std::string &who) {
  auto it = queued_.find(tag);
  if (it == queued_.end() || it->second.empty())
    return Status::error(who + ": nothing was sent to this rank by itself with tag " +
                         std::to_string(tag) + " (a recv from oneself needs an earlier send)");
  std::vector<uint8_t> &message = it->second.front();
  if (message.size() != bytes)
    return Status::error(who + ": this rank sent itself " + std::to_string(message.size()) +
                         " bytes with tag " + std::to_string(tag) + " but receives " +
                         std::to_string(bytes));
  if (bytes)
    std::memcpy(data, message.data(), bytes);
  it->second.pop_front();
  if (it->second.empty())
    queued_.erase(it);
  return Status::ok();
}

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

Status SingleProcessCommunicator::send(const void *data, size_t bytes, int peer, uint32_t tag) {
  if (peer != 0)
    return Status::error("send to rank " + std::to_string(peer) + " (tag " +
                         std::to_string(tag) + "): not a rank of a group of 1");
  self_.put(data, bytes, tag);
  return Status::ok();
}

Status SingleProcessCommunicator::recv(void *data, size_t bytes, int peer, uint32_t tag) {
  std::string who = "recv from rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")";
  if (peer != 0)
    return Status::error(who + ": not a rank of a group of 1");
  return self_.take(data, bytes, tag, who);
}

} // namespace apc::comm
