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
