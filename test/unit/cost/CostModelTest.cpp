// The cost model's pieces against hand-worked numbers: collectives (ring, tree, measured
// samples, which link a group uses), kernel rooflines, the 1F1B critical path, and a
// whole prediction of a hand-built program.
#include "compiler/cost/CollectiveTime.h"
#include "compiler/cost/CostModel.h"
#include "compiler/cost/KernelTime.h"
#include "compiler/stages/ScheduleTiming.h"
#include "test/unit/cost/TestClusters.h"
#include "tools/apc/explain/PipelineSchedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace apc;
using namespace apc::cost;
using lowering::ExecBuffer;
using lowering::ExecInstruction;
using lowering::ExecProgram;

TEST(CollectiveCost, RingAllReduceAllGatherAndSend) {
  Link link{100e9, 1e-5};
  // 2 (n-1)/n B / bw + 2 (n-1) alpha = 1.5 * 1e9 / 1e11 + 6e-5.
  EXPECT_DOUBLE_EQ(ringSeconds(Collective::AllReduce, 4, 1e9, link), 0.015 + 6e-5);
  // (n-1)/n B / bw + (n-1) alpha over 8 ranks.
  EXPECT_DOUBLE_EQ(ringSeconds(Collective::AllGather, 8, 8e8, link), 7e8 / 1e11 + 7e-5);
  EXPECT_DOUBLE_EQ(ringSeconds(Collective::ReduceScatter, 2, 1e6, link), 5e5 / 1e11 + 1e-5);
  EXPECT_DOUBLE_EQ(ringSeconds(Collective::SendRecv, 2, 1e6, link), 1e-5 + 1e-5);
  EXPECT_EQ(ringSeconds(Collective::AllReduce, 1, 1e9, link), 0);
}

TEST(CollectiveCost, TreeAndAutoPickTheCheaper) {
  Link link{100e9, 1e-5};
  // 2 B / bw + 2 ceil(log2 n) alpha.
  EXPECT_DOUBLE_EQ(treeSeconds(Collective::AllReduce, 64, 1e3, link), 2e3 / 1e11 + 12e-5);
  EXPECT_DOUBLE_EQ(treeSeconds(Collective::AllGather, 8, 8e8, link),
                   ringSeconds(Collective::AllGather, 8, 8e8, link));
  Cluster c = apc::testing::h100Like(64, 1);
  c.intraNode = link;
  c.collectiveAlgorithm = "auto";
  // Small messages over many ranks: latency bound, the tree wins; large ones over a few
  // ranks: the ring (1.5 B / bw against 2 B / bw).
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 64, 1e3, false),
                   treeSeconds(Collective::AllReduce, 64, 1e3, link));
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 4, 1e9, false),
                   ringSeconds(Collective::AllReduce, 4, 1e9, link));
  c.collectiveAlgorithm = "tree";
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 4, 1e9, false), 0.02 + 4e-5);
}

TEST(CollectiveCost, MeasuredSamplesAreInterpolated) {
  Cluster c = apc::testing::cpuLike(4);
  c.collectives = {{"all_reduce", 4, 1000, 1e-4}, {"all_reduce", 4, 3000, 3e-4},
                   {"all_reduce", 2, 1000, 9.0}};
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 4, 2000, false), 2e-4);
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 4, 5000, false), 5e-4);
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 4, 10, false), 1e-4);
  // No sample of 8 ranks: alpha-beta.
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 8, 2000, false),
                   ringSeconds(Collective::AllReduce, 8, 2000, c.intraNode));
}

TEST(CollectiveCost, TheInnermostAxisStaysInANode) {
  // [dp, tp] = [2, 8] on nodes of 8: tp groups are ranks 0-7 and 8-15, dp groups cross.
  EXPECT_FALSE(groupSpansNodes({2, 8}, {1}, 8));
  EXPECT_TRUE(groupSpansNodes({2, 8}, {0}, 8));
  // [dp, tp] = [8, 2]: dp groups {0, 2, ..., 14} cross; tp pairs stay.
  EXPECT_TRUE(groupSpansNodes({8, 2}, {0}, 8));
  EXPECT_FALSE(groupSpansNodes({8, 2}, {1}, 8));
  // One node holds everything.
  EXPECT_FALSE(groupSpansNodes({4, 2}, {0, 1}, 8));
  // [dp, pp, tp] = [2, 2, 4] on nodes of 8: pp neighbours (stride 4) stay in a node.
  EXPECT_FALSE(groupSpansNodes({2, 2, 4}, {1}, 8));
  EXPECT_TRUE(groupSpansNodes({2, 2, 4}, {0}, 8));
  // An axis of 3 over nodes of 4 cuts some groups and not others.
  EXPECT_TRUE(groupSpansNodes({4, 3}, {1}, 4));
  // The inter-node link is the slower one.
  Cluster c = apc::testing::h100Like(8, 2);
  EXPECT_GT(collectiveSeconds(c, Collective::AllReduce, 2, 1e8, true),
            collectiveSeconds(c, Collective::AllReduce, 2, 1e8, false));
}

TEST(CollectiveCost, AGroupCrossesNodesOnTheNicsOfItsRanks) {
  // [dp] = [16] on nodes of 8: the group holds 8 ranks of each node; [dp, tp] = [2, 8]:
  // a dp group holds 1 rank of each node; [dp, tp] = [8, 2]: 4 of each.
  EXPECT_EQ(groupRanksPerNode({16}, {0}, 8), 8);
  EXPECT_EQ(groupRanksPerNode({2, 8}, {0}, 8), 1);
  EXPECT_EQ(groupRanksPerNode({8, 2}, {0}, 8), 4);
  // An axis of 3 over nodes of 4: groups {0,1,2}, {3,4,5} (1 on node 0), ...: the fewest.
  EXPECT_EQ(groupRanksPerNode({4, 3}, {1}, 4), 1);
  Cluster c = apc::testing::h100Like(8, 2); // 400 GB/s inside a node, 50 between
  c.collectiveAlgorithm = "ring";
  Link inter = c.interNode;
  // One rank per node: one NIC, the inter-node link as it is.
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 2, 1e8, true, 1),
                   ringSeconds(Collective::AllReduce, 2, 1e8, inter));
  // 4 ranks per node: 4 NICs at once, 200 GB/s; 8 per node: capped by the 400 of NVLink
  // at 8 x 50 = 400.
  Link four{200e9, inter.latencySeconds}, eight{400e9, inter.latencySeconds};
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllReduce, 8, 1e8, true, 4),
                   ringSeconds(Collective::AllReduce, 8, 1e8, four));
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllGather, 16, 1e8, true, 8),
                   ringSeconds(Collective::AllGather, 16, 1e8, eight));
  c.intraNode.bytesPerSecond = 300e9;
  Link capped{300e9, inter.latencySeconds};
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::AllGather, 16, 1e8, true, 8),
                   ringSeconds(Collective::AllGather, 16, 1e8, capped));
  // A point-to-point transfer has one sender and one receiver: one link.
  EXPECT_DOUBLE_EQ(collectiveSeconds(c, Collective::SendRecv, 2, 1e8, true, 8),
                   ringSeconds(Collective::SendRecv, 2, 1e8, inter));
}

// A program with one [m, k] x [k, n] GEMM (bf16) and nothing else.
ExecProgram gemmProgram(int64_t m, int64_t n, int64_t k, DType dtype = DType::BF16) {
  ExecProgram p;
  p.meshShape = {1};
  p.meshAxes = {"dp"};
  p.buffers = {ExecBuffer{"a", dtype, {m, k}}, ExecBuffer{"b", dtype, {k, n}},
               ExecBuffer{"c", dtype, {m, n}}};
  ExecInstruction g;
  g.kernel = "gemm";
  g.inputs = {0, 1};
  g.outputs = {2};
  g.flops = 2.0 * double(m) * double(n) * double(k);
  g.bytesRead = double(p.buffers[0].bytes() + p.buffers[1].bytes());
  g.bytesWritten = double(p.buffers[2].bytes());
  g.pass = lowering::Pass::Forward;
  g.microBatch = 0;
  p.instructions = {g};
  return p;
}

TEST(KernelCost, GemmRooflineLosesEfficiencyOnSmallDims) {
  Cluster d = apc::testing::h100Like();
  ExecProgram big = gemmProgram(4096, 4096, 4096);
  double eff = 4096.0 / (4096 + 128);
  double rate = 1e15 * 0.8 * eff * eff * eff;
  EXPECT_DOUBLE_EQ(kernelSeconds(d, big, big.instructions[0], KernelKind::Gemm),
                   big.instructions[0].flops / rate);
  // A thin GEMM is memory bound: its bytes at half of 2 TB/s.
  ExecProgram thin = gemmProgram(8, 8192, 8192);
  double bytes = thin.instructions[0].bytesRead + thin.instructions[0].bytesWritten;
  EXPECT_DOUBLE_EQ(kernelSeconds(d, thin, thin.instructions[0], KernelKind::Gemm), bytes / 1e12);
  // A tiny one takes the kernel floor.
  ExecProgram tiny = gemmProgram(4, 4, 4);
  EXPECT_DOUBLE_EQ(kernelSeconds(d, tiny, tiny.instructions[0], KernelKind::Gemm), 5e-6);
  // f32 runs at the f32 peak.
  ExecProgram f32 = gemmProgram(4096, 4096, 4096, DType::F32);
  EXPECT_NEAR(kernelSeconds(d, f32, f32.instructions[0], KernelKind::Gemm) /
                  kernelSeconds(d, big, big.instructions[0], KernelKind::Gemm),
              20.0, 1e-9);
}

TEST(KernelCost, GemmSamplesOverrideTheEfficiency) {
  Cluster d = apc::testing::h100Like();
  d.device.gemm = {{4096, 4096, 4096, "bf16", 7e14}, {1024, 1024, 1024, "bf16", 4e14}};
  EXPECT_DOUBLE_EQ(gemmFlopsPerSecond(d, {4096, 4096, 4096}, "bf16"), 7e14);
  double between = gemmFlopsPerSecond(d, {2048, 2048, 2048}, "bf16");
  EXPECT_NEAR(between, 5.5e14, 1e6); // equidistant in log space: the mean
  // No f32 samples: the efficiency model.
  EXPECT_DOUBLE_EQ(gemmFlopsPerSecond(d, {1e9, 1e9, 1e9}, "f32"), 5e13 * 0.8 * std::pow(1e9 / (1e9 + 128), 3));
}

TEST(KernelCost, GemmGridIsInterpolatedTrilinearlyInLogShape) {
  Cluster d = apc::testing::h100Like();
  // A 2 x 2 x 2 grid whose rate is linear in log2 of each dim: interpolation is exact.
  auto rate = [](double m, double n, double k) {
    return 1e12 * (1 + std::log2(m / 64) + 2 * std::log2(n / 64) + 4 * std::log2(k / 64));
  };
  for (double m : {64.0, 1024.0})
    for (double n : {64.0, 1024.0})
      for (double k : {64.0, 1024.0})
        d.device.gemm.push_back({int64_t(m), int64_t(n), int64_t(k), "f32", rate(m, n, k)});
  EXPECT_NEAR(gemmFlopsPerSecond(d, {256, 128, 512}, "f32"), rate(256, 128, 512), 1e3);
  EXPECT_DOUBLE_EQ(gemmFlopsPerSecond(d, {64, 1024, 64}, "f32"), rate(64, 1024, 64));
  // Outside the grid: its edge.
  EXPECT_NEAR(gemmFlopsPerSecond(d, {8, 4096, 128}, "f32"), rate(64, 1024, 128), 1e3);
  // Not a grid (a corner missing): inverse-distance weighting of what there is.
  d.device.gemm.pop_back();
  double idw = gemmFlopsPerSecond(d, {256, 128, 512}, "f32");
  EXPECT_GT(idw, 0);
  EXPECT_NE(idw, rate(256, 128, 512));
}

TEST(KernelCost, MemoryBoundKernelsRunAtBandwidth) {
  Cluster d = apc::testing::h100Like();
  ExecProgram p = gemmProgram(1024, 1024, 1024);
  ExecInstruction add;
  add.kernel = "add";
  add.inputs = {2, 2};
  add.outputs = {2};
  add.flops = 1024.0 * 1024;
  add.bytesRead = 2 * 2097152.0;
  add.bytesWritten = 2097152.0;
  EXPECT_EQ(kernelKind("add"), KernelKind::MemoryBound);
  EXPECT_DOUBLE_EQ(kernelSeconds(d, p, add, KernelKind::MemoryBound), 3 * 2097152.0 / 1e12);
}

TEST(KernelCost, MeasuredRatesInterpolateInLogWork) {
  KernelRate rate{false, {{1e3, 1e10}, {1e5, 2e10}, {1e7, 4e9}}};
  EXPECT_DOUBLE_EQ(rateAt(rate, 10), 1e10);   // below the smallest: its rate
  EXPECT_DOUBLE_EQ(rateAt(rate, 1e9), 4e9);   // above the largest: its rate
  EXPECT_DOUBLE_EQ(rateAt(rate, 1e5), 2e10);
  EXPECT_NEAR(rateAt(rate, 1e4), 1.5e10, 1);  // halfway in log(work)
  EXPECT_NEAR(rateAt(rate, 1e6), 1.2e10, 1);
}

TEST(KernelCost, MeasuredKernelsRunAtTheirOwnRates) {
  Cluster d = apc::testing::h100Like();
  ExecProgram p = gemmProgram(1024, 1024, 1024);
  ExecInstruction add;
  add.kernel = "add";
  add.inputs = {2, 2};
  add.outputs = {2};
  add.bytesRead = 2 * 2097152.0;
  add.bytesWritten = 2097152.0;
  ExecInstruction silu = add;
  silu.kernel = "silu";
  // The streaming add measured: unmeasured memory-bound kernels run at its rate too.
  d.device.kernelRates["add"] = {false, {{6291456.0, 5e11}}};
  EXPECT_DOUBLE_EQ(kernelSeconds(d, p, add, KernelKind::MemoryBound), 6291456.0 / 5e11);
  EXPECT_DOUBLE_EQ(kernelSeconds(d, p, silu, KernelKind::MemoryBound), 6291456.0 / 5e11);
  d.device.kernelRates["silu"] = {false, {{6291456.0, 2e11}}};
  EXPECT_DOUBLE_EQ(kernelSeconds(d, p, silu, KernelKind::MemoryBound), 6291456.0 / 2e11);
  // Attention measured by FLOPs: its rate, not the GEMM efficiency.
  ExecInstruction attention = add;
  attention.kernel = "attention";
  attention.flops = 4e9;
  d.device.kernelRates["attention"] = {true, {{1e9, 1e13}, {1e11, 3e13}}};
  EXPECT_NEAR(kernelSeconds(d, p, attention, KernelKind::Attention),
              4e9 / (1e13 + 2e13 * std::log(4.0) / std::log(100.0)), 1e-15);
}

TEST(PipelineCost, OneFOneBCriticalPath) {
  auto order = schedule::oneFOneB(4, 8);
  ASSERT_TRUE(order);
  // Equal stages: (m + p - 1) (f + b).
  std::vector<schedule::StageTimes> equal(4, {1.0, 2.0, 0, 0});
  auto t = schedule::timeSchedule(*order, equal);
  ASSERT_TRUE(t) << t.message();
  EXPECT_DOUBLE_EQ(t->makespan, (8 + 4 - 1) * 3.0);
  // Equal to the explain tool's simulation, for equal and unequal stage times.
  for (std::vector<double> forward : {std::vector<double>{1, 1, 1, 1},
                                      std::vector<double>{1, 0.5, 2, 0.75}}) {
    std::vector<schedule::StageTimes> times;
    for (double f : forward)
      times.push_back({f, 2 * f, 0, 0});
    auto ours = schedule::timeSchedule(*order, times);
    auto explain = apc::explain::scheduleOneFOneB(forward, 8);
    ASSERT_TRUE(ours && explain);
    EXPECT_DOUBLE_EQ(ours->makespan, explain->makespan);
    for (int s = 0; s < 4; ++s)
      for (size_t i = 0; i < ours->passes[size_t(s)].size(); ++i)
        EXPECT_DOUBLE_EQ(ours->passes[size_t(s)][i].end, explain->ops[size_t(s)][i].end);
  }
  // Two stages, one micro-batch: F0 F1 B1 B0 in a row, with both transfers between.
  auto two = schedule::oneFOneB(2, 1);
  auto path = schedule::timeSchedule(*two, {{1, 2, 0.25, 0}, {3, 4, 0, 0.5}});
  ASSERT_TRUE(path);
  EXPECT_DOUBLE_EQ(path->makespan, 1 + 0.25 + 3 + 4 + 0.5 + 2);
  EXPECT_FALSE(schedule::timeSchedule(*two, {{1, 2, 0, 0}}));
  EXPECT_FALSE(schedule::timeSchedule(*two, {{1, -2, 0, 0}, {1, 1, 0, 0}}));
}

// An interleaved stage's program split by chunk: each forward and backward instruction
// goes to the chunk holding its layer (the embedding to the first, the head to the last),
// the update to none, a receive marked with another stage's layer to none.
TEST(PipelineCost, AnInterleavedStageIsTimedChunkByChunk) {
  ExecProgram p = gemmProgram(64, 64, 64);
  ASSERT_EQ(p.instructions.size(), 1u);
  ExecInstruction gemm = p.instructions[0];
  p.instructions.clear();
  p.chunks = 2;
  p.chunkLayers = {{0, 1}, {2, 1}}; // stage 0 of pp=2 over 4 layers
  using lowering::Pass;
  auto add = [&](int layer, Pass pass, const char *kernel = "gemm") {
    ExecInstruction inst = gemm;
    inst.kernel = kernel;
    inst.layer = layer;
    inst.pass = pass;
    inst.microBatch = 0;
    p.instructions.push_back(inst);
  };
  add(-2, Pass::Forward);                   // embedding: chunk 0
  add(0, Pass::Forward);                    // chunk 0
  add(1, Pass::Forward, "recv");            // layer 1 (stage 1's), received: none
  add(2, Pass::Forward);                    // chunk 1
  add(2, Pass::Backward);                   // chunk 1
  add(0, Pass::Backward);                   // chunk 0
  add(-1, Pass::Step);                      // the update: none
  ExecProgram first = cost::chunkOf(p, 0), second = cost::chunkOf(p, 1);
  ASSERT_EQ(first.instructions.size(), 3u);
  EXPECT_EQ(first.instructions[0].layer, -2);
  EXPECT_EQ(first.instructions[2].pass, Pass::Backward);
  ASSERT_EQ(second.instructions.size(), 2u);
  EXPECT_EQ(second.instructions[0].layer, 2);
  // The last stage's head (layer 4 of 4) belongs to its last chunk.
  p.chunkLayers = {{1, 1}, {3, 1}};
  p.instructions.clear();
  add(4, Pass::Forward);
  EXPECT_EQ(cost::chunkOf(p, 1).instructions.size(), 1u);
  EXPECT_EQ(cost::chunkOf(p, 0).instructions.size(), 0u);
}

// One stage: a GEMM forward, the same backward (recomputing a forward copy), a dp
// all-reduce of a 4 MB gradient and an elementwise update.
ExecProgram stepProgram() {
  ExecProgram p = gemmProgram(4096, 4096, 4096);
  p.meshShape = {8};
  p.buffers[0].kind = lowering::BufferKind::Parameter;
  p.arenaBytes = 1000;
  p.buffers.push_back(ExecBuffer{"grad", DType::F32, {1024, 1024}});
  ExecInstruction recomputed = p.instructions[0];
  recomputed.pass = lowering::Pass::Backward;
  recomputed.recomputed = true;
  ExecInstruction backward = recomputed;
  backward.recomputed = false;
  ExecInstruction reduce;
  reduce.kernel = "all_reduce";
  reduce.inputs = reduce.outputs = {3};
  reduce.attributes = {lowering::ExecAttribute{"axes", lowering::ExecAttribute::Kind::Ints}};
  reduce.attributes[0].ints = {0};
  reduce.pass = lowering::Pass::Step;
  ExecInstruction update;
  update.kernel = "adamw";
  update.inputs = {3};
  update.bytesRead = 4 * 4194304.0;
  update.pass = lowering::Pass::Step;
  p.instructions.insert(p.instructions.end(), {recomputed, backward, reduce, update});
  return p;
}

TEST(Prediction, AddsUpTheStepAndItsBreakdown) {
  ExecProgram p = stepProgram();
  ModelFigures model;
  model.parameters = 1e9;
  model.layers = 2;
  model.heads = 4;
  model.headDim = 64;
  model.seqLen = 1024;
  model.globalBatch = 64;
  Cluster cpu = apc::testing::cpuLike(8);
  auto r = predict({p}, model, cpu);
  ASSERT_TRUE(r) << r.message();
  const Cluster &d = cpu;
  double gemm = kernelSeconds(d, p, p.instructions[0], KernelKind::Gemm);
  double reduce = ringSeconds(Collective::AllReduce, 8, 4194304, cpu.intraNode);
  double update = kernelSeconds(d, p, p.instructions[4], KernelKind::MemoryBound);
  EXPECT_DOUBLE_EQ(r->secondsPerStep, 3 * gemm + reduce + update);
  EXPECT_DOUBLE_EQ(breakdownSeconds(*r, "compute"), 2 * gemm);
  EXPECT_DOUBLE_EQ(breakdownSeconds(*r, "recompute"), gemm);
  EXPECT_DOUBLE_EQ(breakdownSeconds(*r, "communication.dp"), reduce);
  EXPECT_DOUBLE_EQ(breakdownSeconds(*r, "optimizer"), update);
  EXPECT_NEAR(breakdownSeconds(*r, "bubble"), 0, 1e-15);
  double total = 0;
  for (const auto &e : r->breakdown)
    total += e.second;
  EXPECT_DOUBLE_EQ(total, r->secondsPerStep);
  // MFU: tokens per second per device x (6N + 12 L H Dh T) / the f32 peak.
  EXPECT_DOUBLE_EQ(r->flopsPerToken, 6e9 + 12.0 * 2 * 4 * 64 * 1024);
  EXPECT_DOUBLE_EQ(r->tokensPerSecondPerDevice, 64.0 * 1024 / r->secondsPerStep / 8);
  EXPECT_DOUBLE_EQ(r->mfu, r->tokensPerSecondPerDevice * r->flopsPerToken / 50e9);
  EXPECT_EQ(r->peakBytesPerDevice, 4096u * 4096 * 2 + 1000); // parameter a + the arena
  // By kernel, only when asked: the three GEMMs (the recomputed one too), the reduction at
  // its full time, the update; in first-seen order.
  EXPECT_TRUE(r->stages[0].kernels.empty());
  auto byKernel = predict({p}, model, cpu, /*byKernel=*/true);
  ASSERT_TRUE(byKernel) << byKernel.message();
  const auto &k = byKernel->stages[0].kernels;
  ASSERT_EQ(k.size(), 3u);
  EXPECT_EQ(k[0].first, "gemm");
  EXPECT_DOUBLE_EQ(k[0].second, 3 * gemm);
  EXPECT_EQ(k[1].first, "all_reduce.dp");
  EXPECT_DOUBLE_EQ(k[1].second, reduce);
  EXPECT_EQ(k[2].first, "adamw");
  EXPECT_DOUBLE_EQ(k[2].second, update);
  EXPECT_DOUBLE_EQ(byKernel->secondsPerStep, r->secondsPerStep);
}

TEST(Prediction, OverlapsDataParallelReductionsWhereTheBackendCan) {
  ExecProgram p = stepProgram();
  ModelFigures model;
  model.seqLen = 1;
  model.globalBatch = 8;
  Cluster gpu = apc::testing::h100Like(8, 1);
  auto overlapped = predict({p}, model, gpu);
  gpu.overlapCommunication = false;
  auto exposed = predict({p}, model, gpu);
  ASSERT_TRUE(overlapped && exposed);
  // The 4 MB all-reduce hides behind one backward's two GEMMs.
  EXPECT_EQ(breakdownSeconds(*overlapped, "communication.dp"), 0);
  EXPECT_GT(breakdownSeconds(*exposed, "communication.dp"), 0);
  EXPECT_LT(overlapped->secondsPerStep, exposed->secondsPerStep);
}

TEST(Prediction, GathersAfterTheUpdateDoNotHide) {
  ExecProgram p = stepProgram();
  ExecInstruction gather = p.instructions[3]; // the dp all-reduce's axes, after the update
  gather.kernel = "all_gather";
  gather.inputs = {3};
  gather.outputs = {3};
  p.instructions.push_back(gather);
  ModelFigures model;
  model.seqLen = 1;
  model.globalBatch = 8;
  Cluster gpu = apc::testing::h100Like(8, 1);
  auto r = predict({p}, model, gpu);
  ASSERT_TRUE(r) << r.message();
  EXPECT_DOUBLE_EQ(breakdownSeconds(*r, "communication.dp"),
                   ringSeconds(Collective::AllGather, 8, 4194304, gpu.intraNode));
}

TEST(Prediction, ACollectiveReachedFromComputePaysTheSynchronization) {
  ExecProgram p = stepProgram();
  ExecInstruction again = p.instructions[3]; // a second reduction right after the first
  p.instructions.insert(p.instructions.begin() + 4, again);
  ModelFigures model;
  model.seqLen = 1;
  model.globalBatch = 8;
  Cluster cpu = apc::testing::cpuLike(8);
  auto without = predict({p}, model, cpu);
  cpu.collectiveSyncSeconds = 1e-3;
  auto with = predict({p}, model, cpu);
  ASSERT_TRUE(without && with);
  // The first all-reduce follows a GEMM and pays it; the second follows the first.
  EXPECT_NEAR(breakdownSeconds(*with, "communication.dp") -
                  breakdownSeconds(*without, "communication.dp"),
              1e-3, 1e-12);
  EXPECT_NEAR(with->secondsPerStep - without->secondsPerStep, 1e-3, 1e-12);
  // Hidden behind compute (a GPU's streams), nothing waits for the ranks to meet.
  Cluster gpu = apc::testing::h100Like(8, 1);
  auto hidden = predict({p}, model, gpu);
  gpu.collectiveSyncSeconds = 1e-3;
  auto hiddenWith = predict({p}, model, gpu);
  ASSERT_TRUE(hidden && hiddenWith);
  EXPECT_DOUBLE_EQ(hiddenWith->secondsPerStep, hidden->secondsPerStep);
}

TEST(Prediction, RefusesAMeshThatIsNotTheCluster) {
  auto r = predict({stepProgram()}, ModelFigures(), apc::testing::cpuLike(4));
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("mesh has 8 devices but the cluster 'cpu-like:4' has 4"),
            std::string::npos)
      << r.message();
  EXPECT_FALSE(predict({}, ModelFigures(), apc::testing::cpuLike(4)));
}

} // namespace
