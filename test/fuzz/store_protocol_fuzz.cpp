// Fuzzes the rendezvous store's request decoding (comm::store::decodeRequest), as the
// server reads what any TCP peer sends before and after its job token is checked: the
// input is the byte stream of one connection, cut into frames (4-byte big-endian length,
// at most kMaxHelloBytes before the handshake, kMaxMessageBytes after). The first frame
// must be a handshake; a handshake with version 1 and the token "fuzz-token" lets the
// following frames through as requests, as the server does. Every decoded request must
// encode back to the start of its frame (decode and encode agree), and every refusal
// must be one of the server's one-line problems.
#include "runtime/comm/StoreProtocol.h"
#include "test/fuzz/FuzzSupport.h"

#include <algorithm>
#include <cstdint>
#include <string>

using namespace apc;
using namespace apc::comm;

namespace {

bool knownProblem(const std::string &m) {
  return m == "not an APC store client" || m.rfind("unknown operation ", 0) == 0 ||
         m == "malformed set request" || m == "malformed get request" ||
         m == "malformed add request" || m == "malformed wait request";
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bool authed = false;
  size_t pos = 0;
  while (size - pos >= 4) {
    uint32_t len = (uint32_t(data[pos]) << 24) | (uint32_t(data[pos + 1]) << 16) |
                   (uint32_t(data[pos + 2]) << 8) | uint32_t(data[pos + 3]);
    size_t limit = authed ? kMaxMessageBytes : store::kMaxHelloBytes;
    if (len > limit || size - pos - 4 < len)
      break; // the server closes the connection, or waits for more bytes
    const uint8_t *message = data + pos + 4;
    pos += 4 + size_t(len);
    auto request = store::decodeRequest(message, len, /*handshake=*/!authed);
    fuzz::report(request ? "request " + std::to_string(int(request->op))
                         : request.status().message());
    if (!request) {
      APC_FUZZ_CHECK(knownProblem(request.status().message()), "message: %s",
                     request.status().message().c_str());
      break; // the server answers the error and closes the connection
    }
    APC_FUZZ_CHECK(authed ? request->op != store::kHello : request->op == store::kHello,
                   "op %d %s the handshake", int(request->op), authed ? "after" : "as");
    if (request->op == store::kSet || request->op == store::kAdd)
      APC_FUZZ_CHECK(request->key.size() <= kMaxKeyBytes, "a key of %zu bytes",
                     request->key.size());
    Bytes again = store::encodeRequest(*request);
    APC_FUZZ_CHECK(again.size() <= len && std::equal(again.begin(), again.end(), message),
                   "op %d encodes to %zu bytes that differ from the %u-byte message",
                   int(request->op), again.size(), len);
    if (!authed) {
      if (request->version != store::kVersion || request->token != "fuzz-token")
        break; // refused: wrong version or token
      authed = true;
    }
  }
  return 0;
}
