// The wire format of the rendezvous store (TcpStore.h), apart from its sockets so that
// a request can be encoded and decoded on bytes (the fuzz target of test/fuzz reads
// requests the way the server reads what any TCP peer sends, handshake first).
//
// A message is a 4-byte big-endian length and that many bytes. Integers are big-endian;
// strings and values are a u32 length and their bytes. Requests:
//   hello: u8 1, u32 magic "APCS", u32 version, u32 rank, str token
//   set:   u8 2, str key, bytes value
//   get:   u8 3, u32 timeout ms, str key
//   add:   u8 4, str key, i64 delta
//   wait:  u8 5, u32 timeout ms, u32 count, count x str key
// An answer is u8 status (Answer) and its payload.
#pragma once

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace apc::comm {

using Bytes = std::vector<uint8_t>;

constexpr size_t kMaxMessageBytes = 64u << 20; // 64 MiB
constexpr size_t kMaxKeyBytes = 4096;          // of a key set or added

} // namespace apc::comm

namespace apc::comm::store {

constexpr uint32_t kMagic = 0x41504353; // "APCS"
constexpr uint32_t kVersion = 1;
constexpr size_t kMaxHelloBytes = 8192; // a handshake message, before the token is checked

enum Op : uint8_t { kHello = 1, kSet = 2, kGet = 3, kAdd = 4, kWait = 5 };
enum Answer : uint8_t { kOk = 0, kError = 1, kTimeout = 2 };

struct Writer {
  Bytes out;
  void u8(uint8_t v) { out.push_back(v); }
  void u32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8)
      out.push_back(uint8_t(v >> s));
  }
  void i64(int64_t v) {
    uint64_t u = uint64_t(v);
    for (int s = 56; s >= 0; s -= 8)
      out.push_back(uint8_t(u >> s));
  }
  void bytes(const void *data, size_t n) {
    u32(uint32_t(n));
    raw(data, n);
  }
  void str(const std::string &s) { bytes(s.data(), s.size()); }
  void raw(const void *data, size_t n) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    out.insert(out.end(), p, p + n);
  }
};

// Reads from a buffer; a read past its end sets ok = false and returns zero or empty.
struct Reader {
  const uint8_t *p;
  size_t n;
  bool ok = true;
  bool need(size_t k) {
    if (!ok || n < k)
      ok = false;
    return ok;
  }
  uint8_t u8();
  uint32_t u32();
  int64_t i64();
  std::string str();
  Bytes bytes();
};

struct Request {
  Op op = kHello;
  uint32_t version = 0;          // hello
  int32_t rank = -1;             // hello
  std::string token;             // hello
  std::string key;               // set, get, add
  Bytes value;                   // set
  uint32_t timeoutMs = 0;        // get, wait
  int64_t delta = 0;             // add
  std::vector<std::string> keys; // wait
};

// The message of `request` (without the length prefix).
Bytes encodeRequest(const Request &request);

// Decodes one message (the bytes after the length prefix). `handshake`: the first
// message of a connection, which must be a hello with the right magic (its version and
// token are the caller's to check). Errors say what is wrong, for the server's log line
// and its answer: "not an APC store client", "malformed set request", "unknown
// operation 9"; a set or add of a key over kMaxKeyBytes is malformed. Bytes after a complete request are ignored, as the server always did.
Result<Request> decodeRequest(const uint8_t *data, size_t size, bool handshake);

} // namespace apc::comm::store
