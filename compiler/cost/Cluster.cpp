// --cluster values: a built-in profile with a device count, or a cluster file.
//
// A profile is a cluster file compiled into the binaries (ClusterProfiles.h); the count
// in the spec replaces its nodes (and, for PxN, its devices per node). `NAME:N` fills
// nodes of the profile's size: fewer devices than a node are one partial node, more must
// be whole nodes, so the cost model never guesses how a remainder would be placed.
#include "compiler/cost/Cluster.h"

#include "ClusterProfiles.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <sys/stat.h>

namespace apc::cost {
namespace {

// Decimal digits only (no sign, no spaces); saturates above kMaxDevices so that a huge
// count is refused as too large rather than overflowing.
std::optional<int64_t> parseCount(const std::string &text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  int64_t value = 0;
  for (char c : text)
    value = std::min<int64_t>(value * 10 + (c - '0'), kMaxDevices + 1);
  return value;
}

std::string profileList() {
  std::string names;
  for (const std::string &n : builtinProfiles())
    names += (names.empty() ? "" : ", ") + n;
  return names;
}

bool isRegularFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool looksLikeFile(const std::string &spec) {
  auto endsWith = [&](const char *tail) {
    size_t n = std::strlen(tail);
    return spec.size() >= n && spec.compare(spec.size() - n, n, tail) == 0;
  };
  return spec.find('/') != std::string::npos || endsWith(".json") || isRegularFile(spec);
}

Result<Cluster> readClusterFile(const std::string &path) {
  if (!isRegularFile(path)) {
    struct stat st;
    bool exists = ::stat(path.c_str(), &st) == 0;
    return Result<Cluster>::error(
        path + ": " +
        (exists ? std::string("not a regular file")
                : "no such cluster file (nor a built-in profile: " + profileList() + ")"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof())
    return Result<Cluster>::error(path + ": cannot read: " + std::strerror(errno));
  return parseClusterJson(text.str(), path);
}

// Sets the counts of `c` (a profile) from the spec's `count` ("N" or "PxN").
Status applyCount(const std::string &spec, const std::string &count, Cluster &c) {
  auto fail = [&](const std::string &what) { return Status::error(spec + ": " + what); };
  const std::string name = c.profile;
  size_t x = count.find('x');
  if (x != std::string::npos) {
    std::optional<int64_t> perNode = parseCount(count.substr(0, x));
    std::optional<int64_t> nodes = parseCount(count.substr(x + 1));
    if (!perNode || !nodes)
      return fail("the count must be N (devices) or PxN (N nodes of P devices), e.g. " + name +
                  ":8x2");
    if (*perNode < 1 || *perNode > c.devicesPerNode)
      return fail("field 'devices_per_node' must be from 1 to the " +
                  std::to_string(c.devicesPerNode) + " a " + name + " node holds, got " +
                  count.substr(0, x) + " (other nodes need a cluster file)");
    if (*nodes < 1 || *nodes > kMaxNodes)
      return fail("field 'nodes' must be from 1 to " + std::to_string(kMaxNodes) + ", got " +
                  count.substr(x + 1));
    if (*perNode * *nodes > kMaxDevices)
      return fail(std::to_string(*nodes) + " nodes of " + std::to_string(*perNode) +
                  " are more than " + std::to_string(kMaxDevices) + " devices");
    c.devicesPerNode = *perNode;
    c.nodes = *nodes;
    return Status::ok();
  }
  std::optional<int64_t> devices = parseCount(count);
  if (!devices)
    return fail("the count must be N (devices) or PxN (N nodes of P devices), e.g. " + name +
                ":8");
  if (*devices < 1 || *devices > kMaxDevices)
    return fail("the device count must be from 1 to " + std::to_string(kMaxDevices) + ", got " +
                count);
  if (*devices <= c.devicesPerNode) { // one node, partly used
    c.devicesPerNode = *devices;
    c.nodes = 1;
    return Status::ok();
  }
  if (*devices % c.devicesPerNode != 0)
    return fail(std::to_string(*devices) + " devices are not whole nodes of " + name + "'s " +
                std::to_string(c.devicesPerNode) + " (field 'devices_per_node'): give a " +
                "multiple of " + std::to_string(c.devicesPerNode) + ", or " + name +
                ":PxN for N nodes of P devices");
  int64_t nodes = *devices / c.devicesPerNode;
  if (nodes > kMaxNodes)
    return fail("field 'nodes' would be " + std::to_string(nodes) + ", more than " +
                std::to_string(kMaxNodes));
  c.nodes = nodes;
  return Status::ok();
}

} // namespace

std::string thisMachineCluster(std::string &assumed) {
  int64_t cores = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()));
  int64_t devices = std::max<int64_t>(1, cores / 4);
  std::string spec = "cpu:" + std::to_string(devices);
  assumed = "no --cluster: planning for this machine's " + std::to_string(cores) + " core" +
            (cores == 1 ? "" : "s") + " as " + spec + " (the cpu profile's device is a 4-core " +
            "process with assumed figures; no CUDA device is used: the CUDA backend is not "
            "built). For measured figures: apc calibrate --nproc N -o box.json, then "
            "--cluster box.json";
  return spec;
}

std::vector<std::string> builtinProfiles() {
  std::vector<std::string> names;
  for (const EmbeddedProfile &p : embeddedProfiles())
    names.push_back(p.name);
  return names; // embeddedProfiles() is sorted
}

Result<Cluster> resolveCluster(const std::string &spec) {
  if (spec.empty())
    return Result<Cluster>::error("is empty: give a built-in profile with a count "
                                  "(cpu:4, h100-sxm:8) or a cluster file (FILE.json)");
  if (looksLikeFile(spec))
    return readClusterFile(spec);
  size_t colon = spec.find(':');
  std::string name = spec.substr(0, colon);
  const EmbeddedProfile *profile = nullptr;
  for (const EmbeddedProfile &p : embeddedProfiles())
    if (name == p.name)
      profile = &p;
  if (!profile)
    return Result<Cluster>::error(spec + ": unknown cluster profile '" + name +
                                  "' (built-in: " + profileList() +
                                  "; or a cluster file, FILE.json)");
  if (colon == std::string::npos)
    return Result<Cluster>::error(spec + ": give a device count: " + name + ":N (N devices) or " +
                                  name + ":PxN (N nodes of P devices)");
  // A built-in profile that does not parse is a build defect; said so, not hidden.
  auto cluster = parseClusterJson(profile->text, "built-in profile " + name);
  if (!cluster)
    return cluster;
  APC_RETURN_IF_ERROR(applyCount(spec, spec.substr(colon + 1), *cluster));
  cluster->spec = spec;
  return cluster;
}

} // namespace apc::cost
