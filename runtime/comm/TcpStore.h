// A small key-value rendezvous store over TCP.
//
// Rank 0 serves it on MASTER_ADDR:MASTER_PORT (a thread); every rank, rank 0 included,
// is a client. Values are bytes; `add` keeps a decimal counter. `get` and `wait` block
// until the keys exist or the timeout passes. Gloo's rendezvous and aprun's own
// agreements (group creation, shutdown) go through it.
//
// Protocol (StoreProtocol.h): every message is a 4-byte big-endian length and that many
// bytes (at most kMaxMessageBytes). The first message of a connection is a handshake carrying the job
// token; the server answers an error to a wrong token, closes that connection, logs one
// line on stderr and keeps serving.
//
// Shutdown: `close()` records "this rank is done" in the store. On rank 0 it then waits
// until every rank has closed (or has disconnected without closing: it died), at most
// closeTimeout, and stops the server, so that the server does not vanish while others
// still use it. The destructor calls `close()`.
//
// One client connection per process, guarded by a mutex: calls from several threads
// are serialised (a blocking get holds the connection until it returns).
#pragma once

#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/StoreProtocol.h"
#include "runtime/support/Status.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace apc::comm {

struct TcpStoreOptions {
  std::string host = "127.0.0.1";
  int port = kDefaultMasterPort;
  std::string token;
  int rank = 0;
  int worldSize = 1;
  bool serve = false; // run the server (rank 0)
  // Connecting: retried while the server is not listening yet, until this passes.
  std::chrono::milliseconds connectTimeout{std::chrono::seconds(60)};
  // Default timeout of get/wait (they also take an explicit one).
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  // Rank 0's close(): how long to wait for the other ranks to close.
  std::chrono::milliseconds closeTimeout{std::chrono::seconds(60)};
};

class TcpStoreServer; // TcpStore.cpp

class TcpStore {
public:
  static Result<std::unique_ptr<TcpStore>> create(const TcpStoreOptions &options);
  // From the bootstrap: serve when rank 0; every timeout = `timeout`.
  static Result<std::unique_ptr<TcpStore>> create(const ProcessInfo &info,
                                                  std::chrono::milliseconds timeout);
  ~TcpStore();
  TcpStore(const TcpStore &) = delete;
  TcpStore &operator=(const TcpStore &) = delete;

  Status set(const std::string &key, const Bytes &value);
  Status set(const std::string &key, const std::string &value) {
    return set(key, Bytes(value.begin(), value.end()));
  }
  Result<Bytes> get(const std::string &key) { return get(key, options_.timeout); }
  Result<Bytes> get(const std::string &key, std::chrono::milliseconds timeout);
  Result<std::string> getString(const std::string &key, std::chrono::milliseconds timeout);
  // Adds `delta` to the decimal counter at `key` (missing: 0) and returns the new value.
  Result<int64_t> add(const std::string &key, int64_t delta);
  // Returns when every key exists; an error naming the missing keys after `timeout`.
  Status wait(const std::vector<std::string> &keys, std::chrono::milliseconds timeout);
  Status wait(const std::vector<std::string> &keys) { return wait(keys, options_.timeout); }

  // Announces that this rank is done with the store. On the serving rank, waits for all
  // ranks to close (closeTimeout) and stops the server. Idempotent.
  Status close();
  // Leaves at once, without waiting for the other ranks: for a job that is failing
  // (a peer is dead or silent), so that its exit is not delayed by another timeout.
  void abandon();

  int rank() const { return options_.rank; }
  int worldSize() const { return options_.worldSize; }
  const std::string &address() const { return address_; } // "host:port"
  std::chrono::milliseconds defaultTimeout() const { return options_.timeout; }
  // On rank 0 (which serves the store): the connections it refused so far, described
  // ("a connection from ... claiming rank 1 was refused: wrong job token"); elsewhere
  // empty. A rank-0 timeout names them, as the likely reason a rank never joined.
  std::vector<std::string> refusedConnections() const;

private:
  explicit TcpStore(TcpStoreOptions options);
  // One request/answer exchange; the answer's payload (after the status byte).
  Result<Bytes> request(const Bytes &message, std::chrono::milliseconds answerWithin,
                        const std::string &what);
  Status waitForRanksToClose();

  TcpStoreOptions options_;
  std::string address_;
  std::unique_ptr<TcpStoreServer> server_;
  std::mutex mutex_;
  int fd_ = -1;
  bool closed_ = false;
  std::string broken_; // set after a transport error: later calls fail at once
};

} // namespace apc::comm
