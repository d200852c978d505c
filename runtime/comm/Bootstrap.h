// Which process of a multi-process job this is, from the launcher's environment.
//
// Launchers, in the order they are tried:
//   torchrun (and `aprun --nproc`): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//     MASTER_ADDR, MASTER_PORT
//   Open MPI (mpirun): OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}, plus
//     MASTER_ADDR and MASTER_PORT (mpirun has no rendezvous address of its own)
//   Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or
//     SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE with SLURM_NODEID); the master is
//     the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST / SLURM_NODELIST unless
//     MASTER_ADDR is set; the port is MASTER_PORT or 29500
//   none of them: a single process (rank 0 of 1).
// torchrun's variables win over Open MPI's, which win over Slurm's (mpirun inside an
// allocation, torchrun inside srun).
//
// The job token (APC_JOB_TOKEN) is the shared secret of the rendezvous store. A job of
// more than one process needs it unless APC_ALLOW_NO_TOKEN=1.
#pragma once

#include "runtime/support/Status.h"

#include <cstdlib>
#include <functional>
#include <string>

namespace apc::comm {

constexpr int kDefaultMasterPort = 29500;

struct ProcessInfo {
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  int localWorldSize = 1;
  std::string masterAddr = "127.0.0.1";
  int masterPort = kDefaultMasterPort;
  std::string jobToken;
  // Where the token came from: "APC_JOB_TOKEN", or, without it, the job id the launcher
  // gives every rank alike ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"); empty: none.
  std::string jobTokenSource;
  std::string launcher = "single"; // "torchrun", "aprun", "openmpi", "slurm", "single"

  bool multiProcess() const { return worldSize > 1; }
};

using GetEnv = std::function<const char *(const char *)>;

// Reads the environment through `getenv` (tests pass a map). Errors name the variable
// ("RANK=4 is not below WORLD_SIZE=4 (torchrun)").
Result<ProcessInfo> detectProcess(const GetEnv &getenv = ::getenv);

// The first host of a Slurm node list: "node[01-04,07],gpu3" -> "node01". Handles
// several bracket groups ("r[1-2]-n[08-09]" -> "r1-n08"); errors on unbalanced brackets.
Result<std::string> firstSlurmHost(const std::string &nodeList);

// "2(x3),1" (SLURM_TASKS_PER_NODE) -> the count of node `nodeIndex` (2 for 0..2, 1 for 3).
Result<int> slurmTasksOnNode(const std::string &tasksPerNode, int nodeIndex);

// One line for logs: "rank 1 of 4 (local 1 of 2) via torchrun, store 127.0.0.1:29500".
std::string describe(const ProcessInfo &info);

} // namespace apc::comm
