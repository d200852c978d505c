// --cluster: the built-in profiles, the count syntax, cluster files and their refusals.
#include "compiler/cost/Cluster.h"

#include <gtest/gtest.h>

#include <fstream>

namespace apc::cost {
namespace {

// Expects `r` to fail with a message containing every one of `parts`.
template <typename T>
void expectError(const Result<T> &r, std::initializer_list<const char *> parts) {
  ASSERT_FALSE(r) << "accepted";
  for (const char *part : parts)
    EXPECT_NE(r.message().find(part), std::string::npos)
        << "'" << part << "' not in: " << r.message();
}

TEST(Cluster, EveryBuiltInProfileLoadsWithItsSources) {
  std::vector<std::string> names = builtinProfiles();
  EXPECT_EQ(names, (std::vector<std::string>{"a100-80g", "cpu", "h100-500w", "h100-sxm", "h200"}));
  for (const std::string &name : names) {
    auto c = resolveCluster(name + ":1");
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->profile, name);
    EXPECT_EQ(c->backend, name == "cpu" ? "cpu" : "cuda");
    EXPECT_EQ(c->overlapCommunication, name != "cpu");
    EXPECT_GT(c->device.peakFlops.at("bf16"), 0);
    EXPECT_GT(c->device.peakFlops.at("f32"), 0);
    EXPECT_GT(c->interNode.bytesPerSecond, 0);
    // Every figure says where it comes from.
    for (const char *figure :
         {"device.peak_flops.bf16", "device.peak_flops.f32", "device.memory_bytes",
          "device.memory_bandwidth", "device.gemm_efficiency", "device.memory_efficiency",
          "device.kernel_overhead_seconds", "device.usable_memory_fraction", "devices_per_node",
          "links.intra_node.bytes_per_second", "links.intra_node.latency_seconds",
          "links.inter_node.bytes_per_second", "links.inter_node.latency_seconds",
          "overlap_communication"})
      EXPECT_TRUE(c->sources.count(figure)) << name << " has no source for " << figure;    // What apc calibrate writes from a profile reads back the same.
    auto again = parseClusterJson(clusterToJson(*c), name + ".json");
    ASSERT_TRUE(again) << again.message();
    EXPECT_EQ(clusterToJson(*again), clusterToJson(*c));
  }
}

TEST(Cluster, DatasheetFiguresOfH100Sxm) {
  auto c = resolveCluster("h100-sxm:8");
  ASSERT_TRUE(c) << c.message();
  EXPECT_DOUBLE_EQ(c->device.peakFlops.at("bf16"), 989.4e12);
  EXPECT_DOUBLE_EQ(c->device.peakFlops.at("f32"), 67e12);
  EXPECT_DOUBLE_EQ(c->device.memoryBandwidth, 3.35e12);
  EXPECT_DOUBLE_EQ(c->intraNode.bytesPerSecond, 370e9); // NCCL over NVLink 4 (450 line rate)
  EXPECT_DOUBLE_EQ(c->interNode.bytesPerSecond, 50e9);  // 400 Gb/s per GPU
  EXPECT_NE(c->sources.at("device.gemm_efficiency").find("assumption"), std::string::npos);
  EXPECT_NE(c->sources.at("device.peak_flops.bf16").find("989.4"), std::string::npos);
}

TEST(Cluster, CountsFillNodesOfTheProfile) {
  struct Case {
    const char *spec;
    int64_t perNode, nodes;
  };
  for (Case c : {Case{"h100-sxm:8", 8, 1}, {"h100-sxm:64", 8, 8}, {"h100-sxm:8x16", 8, 16},
                 {"h100-sxm:4", 4, 1}, {"h100-sxm:4x2", 4, 2}, {"cpu:3", 3, 1},
                 {"cpu:1", 1, 1}, {"cpu:8192", 1024, 8}, {"a100-80g:16", 8, 2}}) {
    auto cluster = resolveCluster(c.spec);
    ASSERT_TRUE(cluster) << c.spec << ": " << cluster.message();
    EXPECT_EQ(cluster->spec, c.spec);
    EXPECT_EQ(cluster->devicesPerNode, c.perNode) << c.spec;
    EXPECT_EQ(cluster->nodes, c.nodes) << c.spec;
  }
  EXPECT_EQ(resolveCluster("cpu:3")->backend, "cpu");
}

TEST(Cluster, RefusesBadCountsNamingWhatIsWrong) {
  expectError(resolveCluster("h100-sxm:0"), {"h100-sxm:0: ", "device count", "got 0"});
  expectError(resolveCluster("h100-sxm:12"),
              {"h100-sxm:12: ", "not whole nodes", "'devices_per_node'", "multiple of 8"});
  expectError(resolveCluster("h100-sxm:8x0"), {"h100-sxm:8x0: ", "field 'nodes'", "got 0"});
  expectError(resolveCluster("h100-sxm:16x2"), {"field 'devices_per_node'", "8 a h100-sxm"});
  expectError(resolveCluster("h100-sxm:1024x1024x1"), {"the count must be N"});
  expectError(resolveCluster("h100-sxm:8x200000"), {"field 'nodes'", "65536"});
  expectError(resolveCluster("h100-sxm:99999999999999999999999"), {"from 1 to 1048576"});
  expectError(resolveCluster("h100-sxm:2097152"), {"from 1 to 1048576"});
  expectError(resolveCluster("cpu:1024x1025"), {"1025 nodes of 1024 are more than 1048576"});
  for (const char *bad : {"cpu:", "cpu:-1", "cpu:2x", "cpu:+3", "cpu: 3", "cpu:3 "})
    expectError(resolveCluster(bad), {bad, "count"});
  expectError(resolveCluster("h100-sxm"), {"give a device count", "h100-sxm:N"});
  expectError(resolveCluster(""), {"empty"});
}

TEST(Cluster, UnknownProfileListsTheBuiltInOnes) {
  expectError(resolveCluster("h100x8"),
              {"h100x8: unknown cluster profile 'h100x8'",
               "a100-80g, cpu, h100-500w, h100-sxm, h200", "FILE.json"});
  expectError(resolveCluster("gpu:8"), {"unknown cluster profile 'gpu'"});
  expectError(resolveCluster("no/such/cluster.json"),
              {"no/such/cluster.json: no such cluster file", "h100-sxm"});
}

std::string writeFile(const std::string &name, const std::string &text) {
  std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Cluster, FileRoundTrips) {
  auto profile = resolveCluster("h100-sxm:8x2");
  ASSERT_TRUE(profile) << profile.message();
  Cluster c = *profile;
  c.profile = "measured";
  c.device.gemm = {{4096, 4096, 4096, "bf16", 7.1e14}, {128, 4096, 4096, "f32", 3.3e13}};
  c.collectives = {{"all_reduce", 8, 1 << 20, 4.5e-5}, {"send_recv", 2, 4096, 1.2e-5}};
  c.collectiveSyncSeconds = 1.5e-3;
  c.device.kernelRates["attention"] = {true, {{1e8, 3e14}, {1e10, 5e14}}};
  c.device.kernelRates["rms_norm"] = {false, {{1e5, 9e11}, {1e8, 2.5e12}}};
  c.sources["device.gemm"] = "apc calibrate, 2026-12-01";
  std::string text = clusterToJson(c);
  std::string path = writeFile("measured.json", text);
  auto back = resolveCluster(path);
  ASSERT_TRUE(back) << back.message();
  EXPECT_EQ(back->spec, path);
  EXPECT_EQ(back->profile, "measured");
  EXPECT_EQ(back->devicesPerNode, 8);
  EXPECT_EQ(back->nodes, 2);
  EXPECT_EQ(back->device.peakFlops, c.device.peakFlops);
  EXPECT_EQ(back->device.memoryBytes, c.device.memoryBytes);
  EXPECT_EQ(back->interNode.latencySeconds, c.interNode.latencySeconds);
  ASSERT_EQ(back->device.gemm.size(), 2u);
  EXPECT_EQ(back->device.gemm[1].m, 128);
  EXPECT_EQ(back->device.gemm[1].dtype, "f32");
  EXPECT_EQ(back->device.gemm[0].flopsPerSecond, 7.1e14);
  ASSERT_EQ(back->collectives.size(), 2u);
  EXPECT_EQ(back->collectives[0].kind, "all_reduce");
  EXPECT_EQ(back->collectives[0].bytes, 1 << 20);
  EXPECT_EQ(back->collectives[1].seconds, 1.2e-5);
  EXPECT_EQ(back->collectiveSyncSeconds, 1.5e-3);
  ASSERT_EQ(back->device.kernelRates.size(), 2u);
  EXPECT_TRUE(back->device.kernelRates["attention"].byFlops);
  EXPECT_FALSE(back->device.kernelRates["rms_norm"].byFlops);
  ASSERT_EQ(back->device.kernelRates["rms_norm"].samples.size(), 2u);
  EXPECT_EQ(back->device.kernelRates["rms_norm"].samples[1].work, 1e8);
  EXPECT_EQ(back->device.kernelRates["rms_norm"].samples[1].perSecond, 2.5e12);
  EXPECT_EQ(back->sources, c.sources);
  EXPECT_EQ(clusterToJson(*back), text); // nothing lost or changed
}

// A small valid file; each refusal test changes one thing in it.
const char *kMinimal = R"({
  "format": "apc-cluster-1", "name": "box", "backend": "cpu",
  "device": {"name": "a box", "peak_flops": {"f32": 1e11, "bf16": 1e11},
             "memory_bytes": 8e9, "memory_bandwidth": 2e10},
  "devices_per_node": 2, "nodes": 1,
  "links": {"intra_node": {"bytes_per_second": 1e9, "latency_seconds": 1e-5}}
})";

std::string replaced(std::string text, const std::string &from, const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(Cluster, MinimalFileTakesTheDefaults) {
  auto c = parseClusterJson(kMinimal, "box.json");
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->devices(), 2);
  EXPECT_EQ(c->device.gemmEfficiency, 1.0);
  EXPECT_EQ(c->collectiveAlgorithm, "ring");
  EXPECT_FALSE(c->overlapCommunication);
  EXPECT_EQ(c->collectiveSyncSeconds, 0); // not measured: none assumed
  EXPECT_EQ(c->interNode.bytesPerSecond, 0); // one node: none needed
  auto again = parseClusterJson(clusterToJson(*c), "box.json");
  ASSERT_TRUE(again) << again.message();
  EXPECT_EQ(clusterToJson(*again), clusterToJson(*c));
}

TEST(Cluster, RefusesBadFilesNamingTheField) {
  auto refused = [](const std::string &text, std::initializer_list<const char *> parts) {
    expectError(parseClusterJson(text, "box.json"), parts);
  };
  refused(replaced(kMinimal, R"("memory_bandwidth": 2e10)", R"("memory_bandwith": 2e10)"),
          {"box.json: field 'device.memory_bandwith' is not a cluster file field",
           "memory_bandwidth"});
  refused(replaced(kMinimal, R"("memory_bandwidth": 2e10)", R"("gemm_efficiency": 0.5)"),
          {"box.json: field 'device.memory_bandwidth' is required"});
  refused(replaced(kMinimal, R"("bytes_per_second": 1e9)", R"("bytes_per_second": -1e9)"),
          {"box.json: field 'links.intra_node.bytes_per_second' must be a positive finite number",
           "-1"});
  refused(replaced(kMinimal, "apc-cluster-1", "apc-cluster-2"),
          {"box.json: field 'format' must be \"apc-cluster-1\"", "apc-cluster-2"});
  refused(R"({"name": "x"})", {"box.json: field 'format' is required"});
  refused("{\"format\": \"apc-cluster-1\",", {"box.json: not JSON"});
  refused("[1, 2]", {"box.json: not a cluster file"});
  refused(replaced(kMinimal, R"("nodes": 1)", R"("nodes": 2)"),
          {"field 'links.inter_node' is required"});
  refused(replaced(kMinimal, R"("nodes": 1)", R"("nodes": 1.5)"),
          {"field 'nodes' must be an integer from 1 to 65536, got 1.5"});
  refused(replaced(kMinimal, R"("devices_per_node": 2)", R"("devices_per_node": 2048)"),
          {"field 'devices_per_node' must be an integer from 1 to 1024"});
  refused(replaced(replaced(kMinimal, R"("devices_per_node": 2, "nodes": 1)",
                            R"("devices_per_node": 1024, "nodes": 2048)"),
                   R"("links": {)",
                   R"("links": {"inter_node": {"bytes_per_second": 1, "latency_seconds": 0},)"),
          {"is more than 1048576 devices"});
  refused(replaced(kMinimal, R"("backend": "cpu")", R"("backend": "tpu")"),
          {"field 'backend' must be one of cpu, cuda"});
  refused(replaced(kMinimal, R"("f32": 1e11, )", ""), {"field 'device.peak_flops.f32' is required"});
  refused(replaced(kMinimal, R"("f32": 1e11)", R"("f32": "1e11")"),
          {"field 'device.peak_flops.f32' must be a positive finite number"});
  refused(replaced(kMinimal, R"("f32": 1e11)", R"("f32": 1e999)"), {"box.json: not JSON: number overflow"});
  refused(replaced(kMinimal, R"("f32": 1e11, )", R"("f32": 1e11, "int4": 1e12, )"),
          {"field 'device.peak_flops.int4' is not a cluster file field"});
  refused(replaced(kMinimal, R"("memory_bytes": 8e9)",
                   R"("memory_bytes": 8e9, "gemm_efficiency": 1.5)"),
          {"field 'device.gemm_efficiency' must be a fraction in (0, 1]"});
  refused(replaced(kMinimal, R"("memory_bytes": 8e9)",
                   R"("memory_bytes": 8e9, "gemm": [{"m": 8, "n": 8, "k": 0, "dtype": "f32",)"
                   R"( "flops_per_second": 1e9}])"),
          {"field 'device.gemm[0].k' must be an integer from 1"});
  refused(replaced(kMinimal, R"("nodes": 1,)",
                   R"("nodes": 1, "collectives": [{"kind": "all_reduce", "ranks": 2,)"
                   R"( "bytes": 8, "seconds": 1e-5, "algo": "ring"}],)"),
          {"field 'collectives[0].algo' is not a cluster file field"});
  refused(replaced(kMinimal, R"("nodes": 1,)", R"("nodes": 1, "collective_algorithm": "mesh",)"),
          {"field 'collective_algorithm' must be one of auto, ring, tree"});
  refused(replaced(kMinimal, R"("nodes": 1,)", R"("nodes": 1, "collective_sync_seconds": -1,)"),
          {"field 'collective_sync_seconds' must be a finite number >= 0, got -1"});
  refused(replaced(kMinimal, R"("nodes": 1,)", R"("nodes": 1, "sources": {"x": 3},)"),
          {"field 'sources.x' must be a non-empty string"});
  refused(replaced(kMinimal, R"("memory_bytes": 8e9)", R"("memory_bytes": 8e9, "memory_bytes": 9e9)"),
          {"box.json: field 'device.memory_bytes' is given twice"});
  refused(replaced(kMinimal, R"("nodes": 1,)",
                   R"("nodes": 1, "collectives": [{"kind": "all_reduce", "kind": "all_gather",)"
                   R"( "ranks": 2, "bytes": 8, "seconds": 1e-5}],)"),
          {"field 'collectives[].kind' is given twice"});
  auto withRates = [](const std::string &rates) {
    return replaced(kMinimal, R"("memory_bytes": 8e9)",
                    R"("memory_bytes": 8e9, "kernel_rates": )" + rates);
  };
  refused(withRates(R"({"rms_norm": []})"),
          {"field 'device.kernel_rates.rms_norm' must be a non-empty array"});
  refused(withRates(R"({"rms_norm": [{"bytes": 1e6, "bytes_per_second": 0}]})"),
          {"field 'device.kernel_rates.rms_norm[0].bytes_per_second' must be a positive"});
  refused(withRates(R"({"attention": [{"flops": 1e9, "flops_per_second": 1e12},)"
                    R"( {"flops": 1e10, "bytes_per_second": 1e12}]})"),
          {"field 'device.kernel_rates.attention[1].bytes_per_second' is not a cluster file "
           "field"});
}

TEST(Cluster, KernelRateSamplesAreSortedByWork) {
  auto c = parseClusterJson(
      replaced(kMinimal, R"("memory_bytes": 8e9)",
               R"("memory_bytes": 8e9, "kernel_rates": {"silu": [{"bytes": 1e8,)"
               R"( "bytes_per_second": 2e9}, {"bytes": 1e5, "bytes_per_second": 8e9}]})"),
      "box.json");
  ASSERT_TRUE(c) << c.message();
  const KernelRate &silu = c->device.kernelRates.at("silu");
  EXPECT_FALSE(silu.byFlops);
  ASSERT_EQ(silu.samples.size(), 2u);
  EXPECT_EQ(silu.samples[0].work, 1e5);
  EXPECT_EQ(silu.samples[1].perSecond, 2e9);
}

TEST(Cluster, ResolvesAFileAndRefusesItByPath) {
  std::string good = writeFile("box.json", kMinimal);
  auto c = resolveCluster(good);
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->profile, "box");
  std::string bad = writeFile("bad-box.json", replaced(kMinimal, R"("nodes": 1)", R"("nodes": 0)"));
  expectError(resolveCluster(bad), {bad.c_str(), "field 'nodes'"});
}

} // namespace
} // namespace apc::cost
