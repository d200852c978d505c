// Fuzzes comm::detectProcess, which reads the launcher's environment (torchrun, Open
// MPI, Slurm): the input is an environment, one NAME=VALUE per line. On success the
// ranks, sizes and port must be consistent; a refusal must start with the variable it
// is about. Every value is also given to the Slurm list parsers (firstSlurmHost,
// slurmTasksOnNode), as SLURM_JOB_NODELIST and SLURM_TASKS_PER_NODE would be.
#include "runtime/comm/Bootstrap.h"
#include "test/fuzz/FuzzSupport.h"

#include <cctype>
#include <cstdint>
#include <map>
#include <string>

using namespace apc;

namespace {

// A refusal names its variable first: "RANK=4 is not below ...", "MASTER_ADDR is not
// set", "SLURM_JOB_NODELIST: ...", or "neither X nor Y is set".
bool namesVariable(const std::string &m) {
  if (m.rfind("neither ", 0) == 0)
    return true;
  size_t end = 0;
  while (end < m.size() && (std::isupper(static_cast<unsigned char>(m[end])) ||
                            std::isdigit(static_cast<unsigned char>(m[end])) || m[end] == '_'))
    ++end;
  return end > 0 && end < m.size() && (m[end] == '=' || m[end] == ' ' || m[end] == ':');
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::map<std::string, std::string> env;
  std::string text = fuzz::asText(data, size);
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? end : end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    size_t eq = line.find('=');
    // A real environment cannot hold a NUL: the value ends there.
    if (eq != std::string::npos && eq > 0)
      env[line.substr(0, eq)] = line.substr(eq + 1).c_str();
  }
  comm::GetEnv getenv = [&env](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto info = comm::detectProcess(getenv);
  fuzz::report(info ? comm::describe(*info) : info.status().message());
  if (info) {
    const comm::ProcessInfo &p = *info;
    APC_FUZZ_CHECK(p.rank >= 0 && p.rank < p.worldSize, "rank %d of %d", p.rank, p.worldSize);
    APC_FUZZ_CHECK(p.localRank >= 0 && p.localRank < p.localWorldSize &&
                       p.localWorldSize <= p.worldSize,
                   "local rank %d of %d in %d", p.localRank, p.localWorldSize, p.worldSize);
    APC_FUZZ_CHECK(p.masterPort >= 1 && p.masterPort <= 65535, "port %d", p.masterPort);
    APC_FUZZ_CHECK(!p.masterAddr.empty(), "no master address");
    APC_FUZZ_CHECK(!p.multiProcess() || !p.jobToken.empty() || env["APC_ALLOW_NO_TOKEN"] == "1",
                   "a job of %d processes without a token", p.worldSize);
    (void)comm::describe(p);
  } else {
    APC_FUZZ_CHECK(namesVariable(info.status().message()), "message: %s",
                   info.status().message().c_str());
  }
  for (const auto &[name, value] : env) {
    if (auto host = comm::firstSlurmHost(value))
      APC_FUZZ_CHECK(!host->empty() && host->find_first_of(",[]") == std::string::npos,
                     "first host '%s' of '%s'", host->c_str(), value.c_str());
    for (int node : {0, 1, 7, 1 << 30})
      if (auto n = comm::slurmTasksOnNode(value, node))
        APC_FUZZ_CHECK(*n > 0, "%d tasks on node %d of '%s'", *n, node, value.c_str());
  }
  return 0;
}
