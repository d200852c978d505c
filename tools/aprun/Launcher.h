// aprun --nproc N: runs N ranks of this program on this machine, like torchrun.
//
// Picks a free loopback port and a random job token, starts the ranks with torchrun's
// variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
// MASTER_PORT) plus APC_JOB_TOKEN and APC_LAUNCHER=aprun, and forwards their output
// line by line: "[rank K] " before every line, except rank 0's stdout, which passes
// unchanged. When a rank exits non-zero or is killed by a signal, the others get SIGTERM,
// then SIGKILL after a grace period, and the launcher returns non-zero after a line
// naming the rank and how it ended. SIGINT/SIGTERM/SIGHUP sent to the launcher are passed
// on to the ranks. If the launcher dies, the ranks get SIGKILL (PR_SET_PDEATHSIG).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace apc::tools {

struct LaunchOptions {
  int nproc = 1;
  std::string executable = "/proc/self/exe";
  std::vector<std::string> args; // argv of every rank, argv[0] included
  std::chrono::seconds timeout{0}; // the whole job; 0: no limit
  std::chrono::milliseconds gracePeriod{std::chrono::seconds(5)}; // SIGTERM -> SIGKILL
  std::vector<std::pair<std::string, std::string>> extraEnv;      // set in every rank
  int stdoutFd = 1; // where forwarded output goes
  int stderrFd = 2; // ... and the launcher's own lines ("aprun: ...")
};

// Exit code: 0 when every rank exits 0; the first failing rank's exit code (128+signal
// when killed by one); 124 when the job ran past `timeout`; 128+signal when the launcher
// was interrupted; 1 when the ranks could not be started.
int launch(const LaunchOptions &options);

// argv without the flag `--name VALUE` / `--name=VALUE` (every occurrence); the
// pointers are argv's own. For `launchLocalRanks(n, int(v.size()), v.data(), t)`.
std::vector<char *> withoutFlag(int argc, char **argv, const std::string &name);

// The most ranks `--nproc` starts on one machine: beyond it the ranks' sockets and pipes
// exhaust file descriptors; larger jobs span machines (torchrun, Slurm, Open MPI).
constexpr int64_t kMaxLocalRanks = 1024;

// The same executable (/proc/self/exe) with `argv` (the aprun command line without
// --nproc), every other option at its default.
int launchLocalRanks(int nproc, int argc, char **argv, std::chrono::seconds timeout);

} // namespace apc::tools
