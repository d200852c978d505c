#include "runtime/comm/Bootstrap.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <vector>

namespace apc::comm {

namespace {

struct Env {
  const GetEnv &getenv;
  // The value, or nullptr when unset (an empty value counts as unset).
  const char *get(const char *name) const {
    const char *v = getenv(name);
    return (v && *v) ? v : nullptr;
  }
  bool has(const char *name) const { return get(name) != nullptr; }
};

// A strict decimal integer in [minValue, INT_MAX]; the message names the variable.
Result<int> parseInt(const char *name, const char *value, int minValue,
                     const std::string &launcher) {
  std::string s = value;
  auto bad = [&](const std::string &what) {
    return Result<int>::error(std::string(name) + "='" + s + "' is not " + what + " (" +
                              launcher + ")");
  };
  if (s.empty() || s.size() > 10)
    return bad(minValue > 0 ? "a positive integer" : "a non-negative integer");
  long long v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return bad(minValue > 0 ? "a positive integer" : "a non-negative integer");
    v = v * 10 + (c - '0');
  }
  if (v > INT_MAX)
    return bad("a number that fits in an int");
  if (v < minValue)
    return bad(minValue > 0 ? "a positive integer" : "a non-negative integer");
  return int(v);
}

Result<int> requireInt(const Env &env, const char *name, int minValue,
                       const std::string &launcher) {
  const char *v = env.get(name);
  if (!v)
    return Result<int>::error(std::string(name) + " is not set (" + launcher + ")");
  return parseInt(name, v, minValue, launcher);
}

Result<int> optionalInt(const Env &env, const char *name, int minValue, int fallback,
                        const std::string &launcher) {
  const char *v = env.get(name);
  if (!v)
    return fallback;
  return parseInt(name, v, minValue, launcher);
}

Result<int> parsePort(const Env &env, const char *name, bool required, int fallback,
                      const std::string &launcher) {
  const char *v = env.get(name);
  if (!v) {
    if (required)
      return Result<int>::error(std::string(name) +
                                " is not set: a job of several processes needs the "
                                "rendezvous port (" + launcher + ")");
    return fallback;
  }
  auto port = parseInt(name, v, 1, launcher);
  if (!port)
    return port;
  if (*port > 65535)
    return Result<int>::error(std::string(name) + "=" + v +
                              " is not a TCP port (1-65535) (" + launcher + ")");
  return port;
}

Status checkRanks(const ProcessInfo &p, const char *rankVar, const char *sizeVar,
                  const char *localRankVar, const char *localSizeVar) {
  auto where = " (" + p.launcher + ")";
  if (p.rank >= p.worldSize)
    return Status::error(std::string(rankVar) + "=" + std::to_string(p.rank) +
                         " is not below " + sizeVar + "=" + std::to_string(p.worldSize) +
                         where);
  if (p.localWorldSize > p.worldSize)
    return Status::error(std::string(localSizeVar) + "=" + std::to_string(p.localWorldSize) +
                         " is larger than " + sizeVar + "=" + std::to_string(p.worldSize) +
                         where);
  if (p.localRank >= p.localWorldSize)
    return Status::error(std::string(localRankVar) + "=" + std::to_string(p.localRank) +
                         " is not below " + localSizeVar + "=" +
                         std::to_string(p.localWorldSize) + where);
  return Status::ok();
}

// MASTER_ADDR / MASTER_PORT for torchrun and Open MPI: required for several processes.
Status readMaster(const Env &env, ProcessInfo &p) {
  bool required = p.worldSize > 1;
  if (const char *addr = env.get("MASTER_ADDR"))
    p.masterAddr = addr;
  else if (required)
    return Status::error("MASTER_ADDR is not set: a job of several processes needs the "
                         "address of rank 0's rendezvous store (" + p.launcher + ")");
  auto port = parsePort(env, "MASTER_PORT", required, kDefaultMasterPort, p.launcher);
  if (!port)
    return port.status();
  p.masterPort = *port;
  return Status::ok();
}

Result<ProcessInfo> fromTorchrun(const Env &env) {
  ProcessInfo p;
  const char *launcher = env.get("APC_LAUNCHER");
  p.launcher = (launcher && std::string(launcher) == "aprun") ? "aprun" : "torchrun";
  if (!env.has("RANK"))
    return Result<ProcessInfo>::error("WORLD_SIZE is set but RANK is not (" + p.launcher +
                                      ")");
  if (!env.has("WORLD_SIZE"))
    return Result<ProcessInfo>::error("RANK is set but WORLD_SIZE is not (" + p.launcher +
                                      ")");
  auto rank = requireInt(env, "RANK", 0, p.launcher);
  if (!rank)
    return rank.status();
  auto size = requireInt(env, "WORLD_SIZE", 1, p.launcher);
  if (!size)
    return size.status();
  p.rank = *rank;
  p.worldSize = *size;
  // A hand-written environment may leave out the local variables: one node then.
  auto localRank = optionalInt(env, "LOCAL_RANK", 0, p.rank, p.launcher);
  if (!localRank)
    return localRank.status();
  auto localSize = optionalInt(env, "LOCAL_WORLD_SIZE", 1, p.worldSize, p.launcher);
  if (!localSize)
    return localSize.status();
  p.localRank = *localRank;
  p.localWorldSize = *localSize;
  APC_RETURN_IF_ERROR(checkRanks(p, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"));
  APC_RETURN_IF_ERROR(readMaster(env, p));
  return p;
}

Result<ProcessInfo> fromOpenMpi(const Env &env) {
  ProcessInfo p;
  p.launcher = "openmpi";
  auto rank = requireInt(env, "OMPI_COMM_WORLD_RANK", 0, p.launcher);
  if (!rank)
    return rank.status();
  auto size = requireInt(env, "OMPI_COMM_WORLD_SIZE", 1, p.launcher);
  if (!size)
    return size.status();
  p.rank = *rank;
  p.worldSize = *size;
  auto localRank = optionalInt(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, p.rank, p.launcher);
  if (!localRank)
    return localRank.status();
  auto localSize =
      optionalInt(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, p.worldSize, p.launcher);
  if (!localSize)
    return localSize.status();
  p.localRank = *localRank;
  p.localWorldSize = *localSize;
  APC_RETURN_IF_ERROR(checkRanks(p, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                 "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"));
  APC_RETURN_IF_ERROR(readMaster(env, p));
  return p;
}

Result<ProcessInfo> fromSlurm(const Env &env) {
  ProcessInfo p;
  p.launcher = "slurm";
  auto rank = requireInt(env, "SLURM_PROCID", 0, p.launcher);
  if (!rank)
    return rank.status();
  const char *sizeVar = env.has("SLURM_NTASKS") ? "SLURM_NTASKS" : "SLURM_NPROCS";
  if (!env.has(sizeVar))
    return Result<ProcessInfo>::error("SLURM_PROCID is set but SLURM_NTASKS is not (slurm)");
  auto size = requireInt(env, sizeVar, 1, p.launcher);
  if (!size)
    return size.status();
  p.rank = *rank;
  p.worldSize = *size;
  bool multi = p.worldSize > 1;

  if (multi && !env.has("SLURM_LOCALID"))
    return Result<ProcessInfo>::error("SLURM_LOCALID is not set (slurm)");
  auto localRank = optionalInt(env, "SLURM_LOCALID", 0, 0, p.launcher);
  if (!localRank)
    return localRank.status();
  p.localRank = *localRank;

  const char *localSizeVar = "SLURM_NTASKS_PER_NODE";
  if (env.has("SLURM_NTASKS_PER_NODE")) {
    auto n = requireInt(env, "SLURM_NTASKS_PER_NODE", 1, p.launcher);
    if (!n)
      return n.status();
    p.localWorldSize = *n;
  } else {
    localSizeVar = env.has("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE"
                                                        : "SLURM_TASKS_PER_NODE";
    if (const char *list = env.get(localSizeVar)) {
      auto node = optionalInt(env, "SLURM_NODEID", 0, 0, p.launcher);
      if (!node)
        return node.status();
      auto n = slurmTasksOnNode(list, *node);
      if (!n)
        return Result<ProcessInfo>::error(std::string(localSizeVar) + ": " + n.message() +
                                          " (slurm)");
      p.localWorldSize = *n;
    } else if (multi) {
      return Result<ProcessInfo>::error(
          "neither SLURM_NTASKS_PER_NODE nor SLURM_TASKS_PER_NODE is set (slurm)");
    }
  }
  APC_RETURN_IF_ERROR(checkRanks(p, "SLURM_PROCID", sizeVar, "SLURM_LOCALID", localSizeVar));

  if (const char *addr = env.get("MASTER_ADDR")) {
    p.masterAddr = addr;
  } else {
    const char *listVar = nullptr;
    for (const char *v : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"})
      if (env.has(v)) {
        listVar = v;
        break;
      }
    if (listVar) {
      auto host = firstSlurmHost(env.get(listVar));
      if (!host)
        return Result<ProcessInfo>::error(std::string(listVar) + ": " + host.message() +
                                          " (slurm)");
      p.masterAddr = *host;
    } else if (multi) {
      return Result<ProcessInfo>::error("neither MASTER_ADDR nor SLURM_JOB_NODELIST is set: "
                                        "cannot tell which host runs rank 0 (slurm)");
    }
  }
  auto port = parsePort(env, "MASTER_PORT", false, kDefaultMasterPort, p.launcher);
  if (!port)
    return port.status();
  p.masterPort = *port;
  return p;
}

} // namespace

Result<std::string> firstSlurmHost(const std::string &nodeList) {
  std::string host;
  size_t i = 0;
  while (i < nodeList.size() && nodeList[i] != ',') {
    char c = nodeList[i];
    if (c == ']')
      return Result<std::string>::error("unbalanced ']' in node list '" + nodeList + "'");
    if (c != '[') {
      host.push_back(c);
      ++i;
      continue;
    }
    size_t close = nodeList.find(']', i);
    if (close == std::string::npos)
      return Result<std::string>::error("unbalanced '[' in node list '" + nodeList + "'");
    std::string group = nodeList.substr(i + 1, close - i - 1);
    // The first element of "01-04,07": up to the first ',' or '-'.
    size_t end = group.find_first_of(",-");
    std::string first = group.substr(0, end);
    if (first.empty())
      return Result<std::string>::error("empty range in node list '" + nodeList + "'");
    for (char d : first)
      if (!std::isdigit(static_cast<unsigned char>(d)))
        return Result<std::string>::error("range '[" + group + "]' in node list '" +
                                          nodeList + "' is not numeric");
    host += first;
    i = close + 1;
  }
  if (host.empty())
    return Result<std::string>::error("empty node list");
  return host;
}

Result<int> slurmTasksOnNode(const std::string &tasksPerNode, int nodeIndex) {
  // Comma-separated "N" or "N(xM)".
  int seen = 0, found = -1;
  size_t i = 0;
  auto bad = [&] {
    return Result<int>::error("'" + tasksPerNode + "' is not a list like '2(x3),1'");
  };
  while (i < tasksPerNode.size()) {
    size_t j = i;
    long long n = 0, reps = 1;
    // Past INT_MAX the digits are still read but the value stops growing (no overflow).
    while (j < tasksPerNode.size() && std::isdigit(static_cast<unsigned char>(tasksPerNode[j])))
      n = std::min<long long>(n * 10 + (tasksPerNode[j++] - '0'), INT_MAX + 1LL);
    if (j == i || n <= 0 || n > INT_MAX)
      return bad();
    if (j < tasksPerNode.size() && tasksPerNode[j] == '(') {
      if (tasksPerNode.compare(j, 2, "(x") != 0)
        return bad();
      j += 2;
      size_t k = j;
      reps = 0;
      while (j < tasksPerNode.size() && std::isdigit(static_cast<unsigned char>(tasksPerNode[j])))
        reps = std::min<long long>(reps * 10 + (tasksPerNode[j++] - '0'), INT_MAX + 1LL);
      if (j == k || j >= tasksPerNode.size() || tasksPerNode[j] != ')' || reps <= 0 ||
          reps > INT_MAX)
        return bad();
      ++j;
    }
    if (found < 0 && nodeIndex < seen + reps)
      found = int(n);
    if (seen + reps > INT_MAX)
      return bad();
    seen += int(reps);
    if (j < tasksPerNode.size()) {
      if (tasksPerNode[j] != ',')
        return bad();
      ++j;
      if (j == tasksPerNode.size())
        return bad(); // a trailing comma
    }
    i = j;
  }
  if (tasksPerNode.empty())
    return bad();
  if (found > 0)
    return found;
  return Result<int>::error("'" + tasksPerNode + "' lists " + std::to_string(seen) +
                            " nodes but this is node " + std::to_string(nodeIndex));
}

Result<ProcessInfo> detectProcess(const GetEnv &getenv) {
  Env env{getenv};
  Result<ProcessInfo> info = ProcessInfo{};
  if (env.has("RANK") || env.has("WORLD_SIZE"))
    info = fromTorchrun(env);
  else if (env.has("OMPI_COMM_WORLD_RANK") || env.has("OMPI_COMM_WORLD_SIZE"))
    info = fromOpenMpi(env);
  else if (env.has("SLURM_PROCID"))
    info = fromSlurm(env);
  if (!info)
    return info;

  if (const char *token = env.get("APC_JOB_TOKEN")) {
    info->jobToken = token;
    info->jobTokenSource = "APC_JOB_TOKEN";
  }
  // Without one, the id the launcher already gives every rank of the job alike: torchrun's
  // run id, Slurm's job id. It keeps other jobs' ranks out, though it is no secret.
  if (info->multiProcess() && info->jobToken.empty()) {
    const char *shared = info->launcher == "torchrun" ? "TORCHELASTIC_RUN_ID"
                         : info->launcher == "slurm"  ? "SLURM_JOB_ID"
                                                      : nullptr;
    if (const char *id = shared ? env.get(shared) : nullptr; id && *id) {
      info->jobToken = std::string(shared) + "=" + id;
      info->jobTokenSource = shared;
    }
  }
  if (info->multiProcess() && info->jobToken.empty()) {
    const char *allow = env.get("APC_ALLOW_NO_TOKEN");
    if (!allow || std::string(allow) != "1")
      return Result<ProcessInfo>::error(
          "APC_JOB_TOKEN is not set: a job of " + std::to_string(info->worldSize) +
          " processes (" + info->launcher +
          ") needs the same secret in every rank so that the rendezvous store on " +
          info->masterAddr + ":" + std::to_string(info->masterPort) +
          " refuses strangers; export APC_JOB_TOKEN=<random string> before launching "
          "(aprun --nproc does it for you; torchrun's TORCHELASTIC_RUN_ID or Slurm's "
          "SLURM_JOB_ID serve when set), or set APC_ALLOW_NO_TOKEN=1 to accept any "
          "connection");
  }
  return info;
}

std::string describe(const ProcessInfo &info) {
  std::string s = "rank " + std::to_string(info.rank) + " of " +
                  std::to_string(info.worldSize) + " (local " +
                  std::to_string(info.localRank) + " of " +
                  std::to_string(info.localWorldSize) + ") via " + info.launcher;
  if (info.multiProcess())
    s += ", store " + info.masterAddr + ":" + std::to_string(info.masterPort);
  return s;
}

} // namespace apc::comm
