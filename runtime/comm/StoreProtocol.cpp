#include "runtime/comm/StoreProtocol.h"

namespace apc::comm::store {

uint8_t Reader::u8() {
  if (!need(1))
    return 0;
  uint8_t v = *p;
  p += 1;
  n -= 1;
  return v;
}

uint32_t Reader::u32() {
  if (!need(4))
    return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | p[i];
  p += 4;
  n -= 4;
  return v;
}

int64_t Reader::i64() {
  if (!need(8))
    return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  p += 8;
  n -= 8;
  return int64_t(v);
}

std::string Reader::str() {
  uint32_t len = u32();
  if (!need(len))
    return {};
  std::string s(reinterpret_cast<const char *>(p), len);
  p += len;
  n -= len;
  return s;
}

Bytes Reader::bytes() {
  uint32_t len = u32();
  if (!need(len))
    return {};
  Bytes b(p, p + len);
  p += len;
  n -= len;
  return b;
}

Bytes encodeRequest(const Request &q) {
  Writer w;
  w.u8(q.op);
  switch (q.op) {
  case kHello:
    w.u32(kMagic);
    w.u32(q.version);
    w.u32(uint32_t(q.rank));
    w.str(q.token);
    break;
  case kSet:
    w.str(q.key);
    w.bytes(q.value.data(), q.value.size());
    break;
  case kGet:
    w.u32(q.timeoutMs);
    w.str(q.key);
    break;
  case kAdd:
    w.str(q.key);
    w.i64(q.delta);
    break;
  case kWait:
    w.u32(q.timeoutMs);
    w.u32(uint32_t(q.keys.size()));
    for (const std::string &k : q.keys)
      w.str(k);
    break;
  }
  return std::move(w.out);
}

Result<Request> decodeRequest(const uint8_t *data, size_t size, bool handshake) {
  using R = Result<Request>;
  Reader r{data, size};
  Request q;
  uint8_t op = r.u8();
  if (handshake) {
    uint32_t magic = r.u32();
    q.version = r.u32();
    q.rank = int32_t(r.u32());
    q.token = r.str();
    if (!r.ok || op != kHello || magic != kMagic)
      return R::error("not an APC store client");
    q.op = kHello;
    return q;
  }
  switch (op) {
  case kSet:
    q.key = r.str();
    q.value = r.bytes();
    break;
  case kGet:
    q.timeoutMs = r.u32();
    q.key = r.str();
    break;
  case kAdd:
    q.key = r.str();
    q.delta = r.i64();
    break;
  case kWait: {
    q.timeoutMs = r.u32();
    uint32_t count = r.u32();
    for (uint32_t i = 0; i < count && r.ok; ++i)
      q.keys.push_back(r.str());
    break;
  }
  default:
    return R::error("unknown operation " + std::to_string(op));
  }
  static const char *const names[] = {"", "hello", "set", "get", "add", "wait"};
  bool keyTooLong = (op == kSet || op == kAdd) && q.key.size() > kMaxKeyBytes;
  if (!r.ok || keyTooLong)
    return R::error(std::string("malformed ") + names[op] + " request");
  q.op = Op(op);
  return q;
}

} // namespace apc::comm::store
