// Communicators on Gloo's TCP transport.
//
// Rendezvous goes through our TcpStore (an adapter to gloo::rendezvous::Store) under a
// key prefix per group, so that one store serves any number of groups: the world, and
// one group per mesh axis (e.g. data-parallel {0,2} and tensor-parallel {0,1} on a 2x2
// mesh). Every rank of a group must create it with the same ranks (in the same order:
// the group rank is the position in `groupRanks`) and the same name; a name is used once
// per job. Ranks create their groups in the same order.
//
// The transport listens on the local address that faces MASTER_ADDR (loopback for a
// loopback master) or on the interface named by GLOO_SOCKET_IFNAME.
//
// Gloo reports failures by exceptions; they are caught here and returned as Status
// errors naming the peer when Gloo says which ("allReduceSum in group 'dp': rank 1
// stopped answering (connection closed)"). A dead peer fails the collective at once on
// its neighbours and within `timeout` everywhere else. SIGPIPE is ignored from the first
// communicator on (a write to a dead peer must be an error, not the end of the process).
//
// Point to point: Gloo's unbound buffers, on slots made from the tag (apart from the
// collectives' slots). A message is a size header, then the data: the receiver posts
// the data receive only once the sizes agree. Gloo writes a send's data only when the
// receiver has posted its receive, so `send` copies the data, posts it and returns; a
// thread of the communicator (started by the first send) waits for each posted send
// within `timeout` and frees its copy. Destroying the communicator waits for the sends
// still in flight (each within `timeout`), unless it has failed.
#pragma once

#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/TcpStore.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace apc::comm {

// `groupRanks`: global ranks of the group (must contain info.rank). A group of one gives
// a SingleProcessCommunicator without touching the store. `timeout` bounds connecting
// and every collective.
Result<std::unique_ptr<Communicator>>
createGlooCommunicator(TcpStore &store, const ProcessInfo &info, std::vector<int> groupRanks,
                       std::string groupName, std::chrono::milliseconds timeout);

// All ranks of the job, named "world".
Result<std::unique_ptr<Communicator>>
createWorldCommunicator(TcpStore &store, const ProcessInfo &info,
                        std::chrono::milliseconds timeout);

} // namespace apc::comm
