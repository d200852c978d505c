// Cluster files (docs/cost-model.md, "Cluster files"): JSON <-> cost::Cluster.
//
// Strict on purpose: a misspelt field is refused rather than read as its default, so a
// typo in a calibrated file cannot silently turn into a datasheet figure. Every error
// names the file and the field's dotted path ('device.memory_bandwidth').
#include "compiler/cost/Cluster.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

namespace apc::cost {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr const char *kFormat = "apc-cluster-1";

const std::set<std::string> kDtypes = {"f64", "f32", "tf32", "bf16", "f16", "fp8"};
const std::set<std::string> kCollectiveKinds = {"all_reduce", "all_gather", "reduce_scatter",
                                                "send_recv"};
const std::set<std::string> kAlgorithms = {"ring", "tree", "auto"};
const std::set<std::string> kBackends = {"cpu", "cuda"};

std::string join(const std::set<std::string> &names) {
  std::string out;
  for (const std::string &n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string shown(const json &value) {
  std::string text = value.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

// Reads one file, remembering its path for messages; the first error wins.
class Reader {
public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  Status fail(const std::string &field, const std::string &what) const {
    return Status::error(path_ + ": field '" + field + "' " + what);
  }

  // Refuses keys of `object` (at `field`, "" for the top) not among `known`.
  Status onlyKnown(const json &object, const std::string &field,
                   const std::set<std::string> &known) const {
    for (auto it = object.begin(); it != object.end(); ++it)
      if (!known.count(it.key()))
        return fail(dotted(field, it.key()),
                    "is not a cluster file field (" + (field.empty() ? "top level" : field) +
                        " takes " + join(known) + ")");
    return Status::ok();
  }

  // The member `key` of `object`, or null when absent (an error when `required`).
  Status member(const json &object, const std::string &field, const std::string &key,
                bool required, const json *&out) const {
    auto it = object.find(key);
    out = it == object.end() ? nullptr : &*it;
    if (!out && required)
      return fail(dotted(field, key), "is required");
    return Status::ok();
  }

  Status object(const json &value, const std::string &field) const {
    return value.is_object() ? Status::ok() : fail(field, "must be an object, got " + shown(value));
  }

  Status string(const json &value, const std::string &field, std::string &out) const {
    if (!value.is_string() || value.get<std::string>().empty())
      return fail(field, "must be a non-empty string, got " + shown(value));
    out = value.get<std::string>();
    return Status::ok();
  }

  Status oneOf(const json &value, const std::string &field, const std::set<std::string> &names,
               std::string &out) const {
    APC_RETURN_IF_ERROR(string(value, field, out));
    return names.count(out) ? Status::ok()
                            : fail(field, "must be one of " + join(names) + ", got " + shown(value));
  }

  // A finite number: > 0, >= 0, or a fraction in (0, 1].
  enum class Range { Positive, NonNegative, Fraction };
  Status number(const json &value, const std::string &field, double &out,
                Range range = Range::Positive) const {
    double v = value.is_number() ? value.get<double>() : NAN;
    bool ok = std::isfinite(v) && (range == Range::NonNegative ? v >= 0 : v > 0) &&
              (range != Range::Fraction || v <= 1);
    if (!ok)
      return fail(field, std::string("must be ") +
                             (range == Range::Positive      ? "a positive finite number"
                              : range == Range::NonNegative ? "a finite number >= 0"
                                                            : "a fraction in (0, 1]") +
                             ", got " + shown(value));
    out = v;
    return Status::ok();
  }

  Status integer(const json &value, const std::string &field, int64_t min, int64_t max,
                 int64_t &out) const {
    bool ok = value.is_number_integer() &&
              (!value.is_number_unsigned() || value.get<uint64_t>() <= uint64_t(max));
    ok = ok && value.get<int64_t>() >= min && value.get<int64_t>() <= max;
    if (!ok)
      return fail(field, "must be an integer from " + std::to_string(min) + " to " +
                             std::to_string(max) + ", got " + shown(value));
    out = value.get<int64_t>();
    return Status::ok();
  }

  Status boolean(const json &value, const std::string &field, bool &out) const {
    if (!value.is_boolean())
      return fail(field, "must be true or false, got " + shown(value));
    out = value.get<bool>();
    return Status::ok();
  }

  static std::string dotted(const std::string &field, const std::string &key) {
    return field.empty() ? key : field + "." + key;
  }

private:
  std::string path_;
};

Status readLink(const Reader &r, const json &value, const std::string &field, Link &link) {
  APC_RETURN_IF_ERROR(r.object(value, field));
  APC_RETURN_IF_ERROR(r.onlyKnown(value, field, {"bytes_per_second", "latency_seconds"}));
  const json *v = nullptr;
  APC_RETURN_IF_ERROR(r.member(value, field, "bytes_per_second", true, v));
  APC_RETURN_IF_ERROR(r.number(*v, field + ".bytes_per_second", link.bytesPerSecond));
  APC_RETURN_IF_ERROR(r.member(value, field, "latency_seconds", true, v));
  return r.number(*v, field + ".latency_seconds", link.latencySeconds, Reader::Range::NonNegative);
}

Status readGemm(const Reader &r, const json &value, const std::string &field,
                std::vector<GemmSample> &out) {
  if (!value.is_array())
    return r.fail(field, "must be an array of {m, n, k, dtype, flops_per_second}");
  for (size_t i = 0; i < value.size(); ++i) {
    std::string at = field + "[" + std::to_string(i) + "]";
    const json &s = value[i];
    APC_RETURN_IF_ERROR(r.object(s, at));
    APC_RETURN_IF_ERROR(r.onlyKnown(s, at, {"m", "n", "k", "dtype", "flops_per_second"}));
    GemmSample sample;
    const json *v = nullptr;
    for (auto [key, dim] : {std::pair{"m", &sample.m}, {"n", &sample.n}, {"k", &sample.k}}) {
      APC_RETURN_IF_ERROR(r.member(s, at, key, true, v));
      APC_RETURN_IF_ERROR(r.integer(*v, at + "." + key, 1, INT64_MAX, *dim));
    }
    APC_RETURN_IF_ERROR(r.member(s, at, "dtype", true, v));
    APC_RETURN_IF_ERROR(r.oneOf(*v, at + ".dtype", kDtypes, sample.dtype));
    APC_RETURN_IF_ERROR(r.member(s, at, "flops_per_second", true, v));
    APC_RETURN_IF_ERROR(r.number(*v, at + ".flops_per_second", sample.flopsPerSecond));
    out.push_back(sample);
  }
  return Status::ok();
}

Status readCollectives(const Reader &r, const json &value, const std::string &field,
                       std::vector<CollectiveSample> &out) {
  if (!value.is_array())
    return r.fail(field, "must be an array of {kind, ranks, bytes, seconds}");
  for (size_t i = 0; i < value.size(); ++i) {
    std::string at = field + "[" + std::to_string(i) + "]";
    const json &s = value[i];
    APC_RETURN_IF_ERROR(r.object(s, at));
    APC_RETURN_IF_ERROR(r.onlyKnown(s, at, {"kind", "ranks", "bytes", "seconds"}));
    CollectiveSample sample;
    const json *v = nullptr;
    APC_RETURN_IF_ERROR(r.member(s, at, "kind", true, v));
    APC_RETURN_IF_ERROR(r.oneOf(*v, at + ".kind", kCollectiveKinds, sample.kind));
    APC_RETURN_IF_ERROR(r.member(s, at, "ranks", true, v));
    APC_RETURN_IF_ERROR(r.integer(*v, at + ".ranks", 1, kMaxDevices, sample.ranks));
    APC_RETURN_IF_ERROR(r.member(s, at, "bytes", true, v));
    APC_RETURN_IF_ERROR(r.integer(*v, at + ".bytes", 1, INT64_MAX, sample.bytes));
    APC_RETURN_IF_ERROR(r.member(s, at, "seconds", true, v));
    APC_RETURN_IF_ERROR(r.number(*v, at + ".seconds", sample.seconds));
    out.push_back(sample);
  }
  return Status::ok();
}

// "kernel_rates": {"attention": [{"flops": F, "flops_per_second": R}, ...],
//                  "rms_norm": [{"bytes": B, "bytes_per_second": R}, ...]}
Status readKernelRates(const Reader &r, const json &value, const std::string &field,
                       std::map<std::string, KernelRate> &out) {
  APC_RETURN_IF_ERROR(r.object(value, field));
  for (auto it = value.begin(); it != value.end(); ++it) {
    std::string at = field + "." + it.key();
    if (!it->is_array() || it->empty())
      return r.fail(at, "must be a non-empty array of {flops, flops_per_second} or {bytes, "
                        "bytes_per_second}");
    KernelRate rate;
    rate.byFlops = (*it)[0].is_object() && (*it)[0].contains("flops");
    const char *work = rate.byFlops ? "flops" : "bytes";
    const char *perSecond = rate.byFlops ? "flops_per_second" : "bytes_per_second";
    for (size_t i = 0; i < it->size(); ++i) {
      std::string item = at + "[" + std::to_string(i) + "]";
      const json &s = (*it)[i];
      APC_RETURN_IF_ERROR(r.object(s, item));
      APC_RETURN_IF_ERROR(r.onlyKnown(s, item, {work, perSecond}));
      RateSample sample;
      const json *v = nullptr;
      APC_RETURN_IF_ERROR(r.member(s, item, work, true, v));
      APC_RETURN_IF_ERROR(r.number(*v, item + "." + work, sample.work));
      APC_RETURN_IF_ERROR(r.member(s, item, perSecond, true, v));
      APC_RETURN_IF_ERROR(r.number(*v, item + "." + perSecond, sample.perSecond));
      rate.samples.push_back(sample);
    }
    std::sort(rate.samples.begin(), rate.samples.end(),
              [](const RateSample &a, const RateSample &b) { return a.work < b.work; });
    out[it.key()] = std::move(rate);
  }
  return Status::ok();
}

Status readDevice(const Reader &r, const json &value, Device &d) {
  const std::string f = "device";
  APC_RETURN_IF_ERROR(r.object(value, f));
  APC_RETURN_IF_ERROR(r.onlyKnown(value, f,
                                  {"name", "peak_flops", "memory_bytes", "usable_memory_fraction",
                                   "memory_bandwidth", "gemm_efficiency", "memory_efficiency",
                                   "kernel_overhead_seconds", "gemm", "kernel_rates"}));
  const json *v = nullptr;
  APC_RETURN_IF_ERROR(r.member(value, f, "name", true, v));
  APC_RETURN_IF_ERROR(r.string(*v, "device.name", d.name));

  APC_RETURN_IF_ERROR(r.member(value, f, "peak_flops", true, v));
  APC_RETURN_IF_ERROR(r.object(*v, "device.peak_flops"));
  APC_RETURN_IF_ERROR(r.onlyKnown(*v, "device.peak_flops", kDtypes));
  for (const char *needed : {"f32", "bf16"}) // what plans compute in (--precision)
    if (!v->contains(needed))
      return r.fail(std::string("device.peak_flops.") + needed, "is required");
  for (auto it = v->begin(); it != v->end(); ++it)
    APC_RETURN_IF_ERROR(r.number(*it, "device.peak_flops." + it.key(), d.peakFlops[it.key()]));

  APC_RETURN_IF_ERROR(r.member(value, f, "memory_bytes", true, v));
  APC_RETURN_IF_ERROR(r.number(*v, "device.memory_bytes", d.memoryBytes));
  APC_RETURN_IF_ERROR(r.member(value, f, "memory_bandwidth", true, v));
  APC_RETURN_IF_ERROR(r.number(*v, "device.memory_bandwidth", d.memoryBandwidth));
  // Fractions of a figure: (0, 1]; absent, the whole figure.
  for (auto [key, out] : {std::pair{"usable_memory_fraction", &d.usableMemoryFraction},
                          {"gemm_efficiency", &d.gemmEfficiency},
                          {"memory_efficiency", &d.memoryEfficiency}}) {
    APC_RETURN_IF_ERROR(r.member(value, f, key, false, v));
    if (v)
      APC_RETURN_IF_ERROR(r.number(*v, f + "." + key, *out, Reader::Range::Fraction));
  }
  APC_RETURN_IF_ERROR(r.member(value, f, "kernel_overhead_seconds", false, v));
  if (v)
    APC_RETURN_IF_ERROR(
        r.number(*v, "device.kernel_overhead_seconds", d.kernelOverheadSeconds, Reader::Range::NonNegative));
  APC_RETURN_IF_ERROR(r.member(value, f, "gemm", false, v));
  if (v)
    APC_RETURN_IF_ERROR(readGemm(r, *v, "device.gemm", d.gemm));
  APC_RETURN_IF_ERROR(r.member(value, f, "kernel_rates", false, v));
  if (v)
    APC_RETURN_IF_ERROR(readKernelRates(r, *v, "device.kernel_rates", d.kernelRates));
  return Status::ok();
}

Status readCluster(const Reader &r, const json &top, Cluster &c) {
  // The format first: another JSON file is told what it lacks, not its first odd field.
  const json *v = nullptr;
  APC_RETURN_IF_ERROR(r.member(top, "", "format", true, v));
  if (!v->is_string() || v->get<std::string>() != kFormat)
    return r.fail("format", std::string("must be \"") + kFormat + "\", got " + shown(*v));
  APC_RETURN_IF_ERROR(r.onlyKnown(top, "",
                                  {"format", "name", "backend", "device", "devices_per_node",
                                   "nodes", "links", "collective_algorithm",
                                   "overlap_communication", "collective_sync_seconds",
                                   "collectives", "sources"}));
  APC_RETURN_IF_ERROR(r.member(top, "", "name", true, v));
  APC_RETURN_IF_ERROR(r.string(*v, "name", c.profile));
  APC_RETURN_IF_ERROR(r.member(top, "", "backend", true, v));
  APC_RETURN_IF_ERROR(r.oneOf(*v, "backend", kBackends, c.backend));
  APC_RETURN_IF_ERROR(r.member(top, "", "device", true, v));
  APC_RETURN_IF_ERROR(readDevice(r, *v, c.device));

  APC_RETURN_IF_ERROR(r.member(top, "", "devices_per_node", true, v));
  APC_RETURN_IF_ERROR(r.integer(*v, "devices_per_node", 1, kMaxDevicesPerNode, c.devicesPerNode));
  APC_RETURN_IF_ERROR(r.member(top, "", "nodes", true, v));
  APC_RETURN_IF_ERROR(r.integer(*v, "nodes", 1, kMaxNodes, c.nodes));
  if (c.devices() > kMaxDevices)
    return r.fail("nodes", "x devices_per_node (" + std::to_string(c.nodes) + " x " +
                               std::to_string(c.devicesPerNode) + ") is more than " +
                               std::to_string(kMaxDevices) + " devices");

  APC_RETURN_IF_ERROR(r.member(top, "", "links", true, v));
  const json &links = *v;
  APC_RETURN_IF_ERROR(r.object(links, "links"));
  APC_RETURN_IF_ERROR(r.onlyKnown(links, "links", {"intra_node", "inter_node"}));
  APC_RETURN_IF_ERROR(r.member(links, "links", "intra_node", true, v));
  APC_RETURN_IF_ERROR(readLink(r, *v, "links.intra_node", c.intraNode));
  // One node never crosses the network: its file may leave inter_node out.
  APC_RETURN_IF_ERROR(r.member(links, "links", "inter_node", c.nodes > 1, v));
  if (v)
    APC_RETURN_IF_ERROR(readLink(r, *v, "links.inter_node", c.interNode));

  APC_RETURN_IF_ERROR(r.member(top, "", "collective_algorithm", false, v));
  if (v)
    APC_RETURN_IF_ERROR(r.oneOf(*v, "collective_algorithm", kAlgorithms, c.collectiveAlgorithm));
  APC_RETURN_IF_ERROR(r.member(top, "", "overlap_communication", false, v));
  if (v)
    APC_RETURN_IF_ERROR(r.boolean(*v, "overlap_communication", c.overlapCommunication));
  APC_RETURN_IF_ERROR(r.member(top, "", "collective_sync_seconds", false, v));
  if (v)
    APC_RETURN_IF_ERROR(r.number(*v, "collective_sync_seconds", c.collectiveSyncSeconds,
                                 Reader::Range::NonNegative));
  APC_RETURN_IF_ERROR(r.member(top, "", "collectives", false, v));
  if (v)
    APC_RETURN_IF_ERROR(readCollectives(r, *v, "collectives", c.collectives));
  APC_RETURN_IF_ERROR(r.member(top, "", "sources", false, v));
  if (v) {
    APC_RETURN_IF_ERROR(r.object(*v, "sources"));
    for (auto it = v->begin(); it != v->end(); ++it)
      APC_RETURN_IF_ERROR(r.string(*it, "sources." + it.key(), c.sources[it.key()]));
  }
  return Status::ok();
}

ordered_json linkJson(const Link &link) {
  return {{"bytes_per_second", link.bytesPerSecond}, {"latency_seconds", link.latencySeconds}};
}

// nlohmann keeps the last of two equal keys; a file that gives one figure twice is
// ambiguous, so the first repeated field (dotted, "[]" for an array element) is noted.
class DuplicateKeys {
public:
  bool operator()(int, json::parse_event_t event, json &parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
    case json::parse_event_t::array_start:
      frames_.push_back({childPath(), event == json::parse_event_t::array_start, {}, {}});
      break;
    case json::parse_event_t::object_end:
    case json::parse_event_t::array_end:
      if (!frames_.empty())
        frames_.pop_back();
      break;
    case json::parse_event_t::key:
      if (!frames_.empty()) {
        Frame &top = frames_.back();
        top.lastKey = parsed.get<std::string>();
        if (!top.keys.insert(top.lastKey).second && first.empty())
          first = Reader::dotted(top.path, top.lastKey);
      }
      break;
    case json::parse_event_t::value:
      break;
    }
    return true;
  }
  std::string first; // the first field given twice; empty when none

private:
  struct Frame {
    std::string path;
    bool isArray;
    std::set<std::string> keys;
    std::string lastKey;
  };
  std::string childPath() const {
    if (frames_.empty())
      return "";
    const Frame &top = frames_.back();
    return top.isArray ? top.path + "[]" : Reader::dotted(top.path, top.lastKey);
  }
  std::vector<Frame> frames_;
};

} // namespace

Result<Cluster> parseClusterJson(const std::string &text, const std::string &path) {
  json top;
  DuplicateKeys duplicates;
  try {
    top = json::parse(text, std::ref(duplicates));
  } catch (const json::exception &e) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, ..."
    std::string what = e.what();
    size_t at = what.find("] ");
    return Result<Cluster>::error(path + ": not JSON: " +
                                  (at == std::string::npos ? what : what.substr(at + 2)));
  }
  if (!duplicates.first.empty())
    return Result<Cluster>::error(path + ": field '" + duplicates.first +
                                  "' is given twice");
  if (!top.is_object())
    return Result<Cluster>::error(path + ": not a cluster file: the top level must be an "
                                         "object with \"format\": \"" + kFormat + "\"");
  Cluster cluster;
  cluster.spec = path;
  APC_RETURN_IF_ERROR(readCluster(Reader(path), top, cluster));
  return cluster;
}

std::string clusterToJson(const Cluster &c) {
  const Device &d = c.device;
  ordered_json device = {{"name", d.name}};
  device["peak_flops"] = ordered_json::object();
  for (const auto &[dtype, flops] : d.peakFlops)
    device["peak_flops"][dtype] = flops;
  device["memory_bytes"] = d.memoryBytes;
  device["usable_memory_fraction"] = d.usableMemoryFraction;
  device["memory_bandwidth"] = d.memoryBandwidth;
  device["gemm_efficiency"] = d.gemmEfficiency;
  device["memory_efficiency"] = d.memoryEfficiency;
  device["kernel_overhead_seconds"] = d.kernelOverheadSeconds;
  if (!d.gemm.empty()) {
    device["gemm"] = ordered_json::array();
    for (const GemmSample &s : d.gemm)
      device["gemm"].push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"dtype", s.dtype},
                                {"flops_per_second", s.flopsPerSecond}});
  }
  if (!d.kernelRates.empty()) {
    device["kernel_rates"] = ordered_json::object();
    for (const auto &[kernel, rate] : d.kernelRates) {
      ordered_json list = ordered_json::array();
      for (const RateSample &sample : rate.samples)
        list.push_back(rate.byFlops ? ordered_json{{"flops", sample.work},
                                                   {"flops_per_second", sample.perSecond}}
                                    : ordered_json{{"bytes", sample.work},
                                                   {"bytes_per_second", sample.perSecond}});
      device["kernel_rates"][kernel] = list;
    }
  }
  ordered_json links = {{"intra_node", linkJson(c.intraNode)}};
  if (c.interNode.bytesPerSecond > 0) // none known: a one-node file leaves it out
    links["inter_node"] = linkJson(c.interNode);
  ordered_json top = {{"format", kFormat},     {"name", c.profile},
                      {"backend", c.backend},  {"device", device},
                      {"devices_per_node", c.devicesPerNode},
                      {"nodes", c.nodes},      {"links", links},
                      {"collective_algorithm", c.collectiveAlgorithm},
                      {"overlap_communication", c.overlapCommunication}};
  if (c.collectiveSyncSeconds > 0)
    top["collective_sync_seconds"] = c.collectiveSyncSeconds;
  if (!c.collectives.empty()) {
    top["collectives"] = ordered_json::array();
    for (const CollectiveSample &s : c.collectives)
      top["collectives"].push_back(
          {{"kind", s.kind}, {"ranks", s.ranks}, {"bytes", s.bytes}, {"seconds", s.seconds}});
  }
  top["sources"] = ordered_json::object();
  for (const auto &[figure, source] : c.sources)
    top["sources"][figure] = source;
  return top.dump(2) + "\n";
}

} // namespace apc::cost
