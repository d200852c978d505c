// Split parameters and moments (Buffer.dim_axes) in weights and checkpoints: mesh
// coordinates and blocks, reading a block of a safetensors tensor (f32, bf16, f16; one
// file and shards), the seeded initialisation of a block, and the gathered checkpoint:
// ranks as threads (and as processes over Gloo) write exactly the files one device
// writes, a failure to write reaches every rank, and each rank resumes its blocks.
#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/checkpoint/Sharding.h"
#include "runtime/checkpoint/Weights.h"

#include "runtime/comm/GlooCommunicator.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanLoader.h"
#include "runtime/train/Trainer.h"
#include "test/unit/runtime/PlanBuilder.h"
#include "test/unit/runtime/TensorIndex.h"
#include "runtime/comm/TcpStore.h"
#include "runtime/safetensors/Safetensors.h"
#include "runtime/support/HalfFloat.h"
#include "test/unit/comm/ForkRanks.h"
#include "test/unit/runtime/ThreadCommunicator.h"

#include "test/unit/TempDirTest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

// Heap bytes a thread holds, for the memory bound of a streamed save: every operator new
// of this test binary carries a 16-byte header with its size and whether the allocating
// thread was counting; a thread that counts adds its allocations and subtracts its frees
// of counted blocks, and keeps the peak.
namespace {
thread_local bool tCounting = false;
thread_local int64_t tLiveBytes = 0, tPeakBytes = 0;
constexpr uint64_t kCounted = 0x636f756e74656431, kNotCounted = 0x636f756e74656430;
} // namespace

void *operator new(size_t n) {
  auto *header = static_cast<uint64_t *>(std::malloc(n + 16));
  if (!header)
    throw std::bad_alloc();
  header[0] = n;
  header[1] = tCounting ? kCounted : kNotCounted;
  if (tCounting)
    tPeakBytes = std::max(tPeakBytes, tLiveBytes += int64_t(n));
  return header + 2;
}
void operator delete(void *p) noexcept {
  if (!p)
    return;
  uint64_t *header = static_cast<uint64_t *>(p) - 2;
  if (tCounting && header[1] == kCounted)
    tLiveBytes -= int64_t(header[0]);
  std::free(header);
}
void operator delete(void *p, size_t) noexcept { operator delete(p); }

namespace apc::checkpoint {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::vector<int64_t> kMesh = {2, 2};

using apc::testing::product;
using apc::testing::ravel;
using apc::testing::unravel;

// The block of `full` (global `shape`) held by the device at `rank` under `dimAxes`.
std::vector<float> expectedBlock(const std::vector<float> &full, const std::vector<int64_t> &shape,
                                 const std::vector<int> &dimAxes, int rank) {
  int64_t coords[2] = {rank / 2, rank % 2};
  std::vector<int64_t> local = shape, offset(shape.size(), 0);
  for (size_t d = 0; d < shape.size(); ++d)
    if (!dimAxes.empty() && dimAxes[d] >= 0) {
      local[d] = shape[d] / kMesh[size_t(dimAxes[d])];
      offset[d] = coords[dimAxes[d]] * local[d];
    }
  std::vector<float> out(size_t(product(local)));
  for (int64_t i = 0; i < product(local); ++i) {
    std::vector<int64_t> x = unravel(i, local);
    for (size_t d = 0; d < x.size(); ++d)
      x[d] += offset[d];
    out[size_t(i)] = full[size_t(ravel(x, shape))];
  }
  return out;
}

bool bitwiseEqual(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<float> ramp(int64_t n, float scale, float shift = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = scale * float(i) + shift;
  return v;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The splits the tests walk: whole, one dim over either axis, both dims.
const std::vector<std::vector<int>> kSplits = {{}, {-1, -1}, {1, -1}, {-1, 0}, {0, 1}, {1, 0}};

// ---- blocks (mesh coordinates: test/unit/runtime/MeshCoordinatesTest.cpp) ----------------

TEST(Sharding, BlockOfASplit) {
  Block b = blockOf({4, 6}, {1, 0}, kMesh, {1, 0});
  EXPECT_EQ(b.start, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(b.count, (std::vector<int64_t>{2, 3}));
  b = blockOf({4, 6}, {1, 0}, kMesh, {0, 1});
  EXPECT_EQ(b.start, (std::vector<int64_t>{2, 0}));
  EXPECT_TRUE(blockOf({4, 6}, {-1, -1}, kMesh, {1, 1}).whole());
  EXPECT_TRUE(blockOf({4, 6}, {}, kMesh, {1, 1}).whole());
  EXPECT_EQ(localShape({4, 6}, blockOf({4, 6}, {-1, 1}, kMesh, {0, 1})),
            (std::vector<int64_t>{4, 3}));
}

// forEachRun visits every element of the block once, at the right places, in runs as
// long as the split allows.
TEST(Sharding, RunsCoverTheBlock) {
  std::vector<int64_t> shape = {3, 4, 6};
  struct Case {
    std::vector<int64_t> start, count;
    size_t runs;
  };
  for (const Case &c : {Case{{0, 0, 0}, {3, 4, 6}, 1}, Case{{1, 0, 0}, {1, 4, 6}, 1},
                        Case{{0, 2, 0}, {3, 2, 6}, 3}, Case{{0, 0, 3}, {3, 4, 3}, 12},
                        Case{{2, 1, 2}, {1, 2, 2}, 2}, Case{{0, 0, 0}, {3, 0, 6}, 0}}) {
    std::vector<int> seen(size_t(product(shape)), 0);
    std::vector<int> localSeen(size_t(product(c.count)), 0);
    size_t runs = 0;
    forEachRun(shape, c.start, c.count, [&](int64_t global, int64_t local, int64_t n) {
      ++runs;
      for (int64_t k = 0; k < n; ++k) {
        ++seen[size_t(global + k)];
        ++localSeen[size_t(local + k)];
        std::vector<int64_t> x = unravel(local + k, c.count);
        for (size_t d = 0; d < x.size(); ++d)
          x[d] += c.start[d];
        EXPECT_EQ(ravel(x, shape), global + k);
      }
    });
    EXPECT_EQ(runs, c.runs);
    for (int v : localSeen)
      EXPECT_EQ(v, 1);
    int total = 0;
    for (int v : seen)
      total += v;
    EXPECT_EQ(total, int(product(c.count)));
  }
  int scalarRuns = 0;
  forEachRun({}, {}, {}, [&](int64_t g, int64_t l, int64_t n) {
    ++scalarRuns;
    EXPECT_EQ(g, 0);
    EXPECT_EQ(l, 0);
    EXPECT_EQ(n, 1);
  });
  EXPECT_EQ(scalarRuns, 1);
}

// ---- files -----------------------------------------------------------------------------

class ShardedTest : public apc::testing::TempDirTest {};

safetensors::TensorToWrite tensor(std::string name, safetensors::DType dtype,
                                  std::vector<int64_t> shape, const std::vector<float> &values) {
  std::vector<double> d(values.begin(), values.end());
  return {std::move(name), dtype, std::move(shape), safetensors::fromDoubles(d, dtype)};
}

// Values exactly representable in bf16 and f16.
const std::vector<float> kW = ramp(24, 0.25f, -3.0f);   // [4, 6]
const std::vector<float> kV = ramp(6, -0.5f, 1.0f);     // [6]
const std::vector<int64_t> kWShape = {4, 6}, kVShape = {6};

TEST_F(ShardedTest, EachRankReadsItsBlockOfEveryDtype) {
  for (safetensors::DType dtype :
       {safetensors::DType::F32, safetensors::DType::BF16, safetensors::DType::F16,
        safetensors::DType::F64}) {
    std::string file = path(std::string("w-") + safetensors::dtypeName(dtype) + ".safetensors");
    ASSERT_TRUE(safetensors::write(file, {tensor("w", dtype, kWShape, kW),
                                          tensor("v", dtype, kVShape, kV)})
                    .isOk());
    for (const std::vector<int> &split : kSplits)
      for (int rank = 0; rank < 4; ++rank) {
        std::vector<int64_t> coords = coordinatesOf(rank, kMesh);
        Block wb = blockOf(kWShape, split, kMesh, coords);
        Block vb = blockOf(kVShape, split.empty() ? std::vector<int>{} : std::vector<int>{split[1]},
                           kMesh, coords);
        std::vector<float> w(size_t(product(localShape(kWShape, wb))), -99.0f);
        std::vector<float> v(size_t(product(localShape(kVShape, vb))), -99.0f);
        std::vector<ParameterSlot> slots = {{"w", kWShape, w.data(), "normal", wb},
                                            {"v", kVShape, v.data(), "ones", vb}};
        Status s = loadWeights(file, slots);
        ASSERT_TRUE(s.isOk()) << s.message();
        EXPECT_TRUE(bitwiseEqual(w, expectedBlock(kW, kWShape, split, rank)))
            << safetensors::dtypeName(dtype) << " rank " << rank;
        EXPECT_TRUE(bitwiseEqual(
            v, expectedBlock(kV, kVShape,
                             split.empty() ? std::vector<int>{} : std::vector<int>{split[1]},
                             rank)))
            << safetensors::dtypeName(dtype) << " rank " << rank;
      }
  }
}

TEST_F(ShardedTest, BlocksOfAShardedCheckpointAndGlobalShapeErrors) {
  fs::create_directories(path("hf"));
  ASSERT_TRUE(safetensors::write(path("hf/model-00001-of-00002.safetensors"),
                                 {tensor("w", safetensors::DType::BF16, kWShape, kW)})
                  .isOk());
  ASSERT_TRUE(safetensors::write(path("hf/model-00002-of-00002.safetensors"),
                                 {tensor("v", safetensors::DType::F32, kVShape, kV)})
                  .isOk());
  std::ofstream(path("hf/model.safetensors.index.json"))
      << R"({"metadata": {}, "weight_map": {"w": "model-00001-of-00002.safetensors",
            "v": "model-00002-of-00002.safetensors"}})";
  Block wb = blockOf(kWShape, {0, 1}, kMesh, {1, 1});
  std::vector<float> w(6), v(6);
  Status s = loadWeights(path("hf"), {{"w", kWShape, w.data(), "normal", wb},
                                      {"v", kVShape, v.data(), "ones", {}}});
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_TRUE(bitwiseEqual(w, expectedBlock(kW, kWShape, {0, 1}, 3)));
  EXPECT_TRUE(bitwiseEqual(v, kV));
  // Shapes are checked against the global shape, and the message says it.
  s = loadWeights(path("hf"), {{"w", {4, 3}, w.data(), "normal", blockOf({4, 3}, {0, -1}, kMesh, {0, 0})},
                               {"v", kVShape, v.data(), "ones", {}}});
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("tensor 'w' has shape [4, 6] but the plan expects [4, 3]"),
            std::string::npos)
      << s.message();
}

TEST(ShardedInit, ABlockEqualsTheBlockOfTheWholeInitialisation) {
  // Odd sizes: the Box-Muller pairs straddle block boundaries.
  std::vector<int64_t> shape = {6, 10}, norm = {10};
  std::vector<float> full(60), fullNorm(10);
  std::vector<ParameterSlot> whole = {{"a", shape, full.data(), "normal"},
                                      {"n", norm, fullNorm.data(), "ones"}};
  initWeights(whole, 0.02, 1234);
  for (const std::vector<int> &split : kSplits)
    for (int rank = 0; rank < 4; ++rank) {
      Block b = blockOf(shape, split, kMesh, coordinatesOf(rank, kMesh));
      std::vector<int> normSplit = split.empty() ? std::vector<int>{} : std::vector<int>{split[1]};
      Block nb = blockOf(norm, normSplit, kMesh, coordinatesOf(rank, kMesh));
      std::vector<float> mine(size_t(product(localShape(shape, b))), -1.0f);
      std::vector<float> mineNorm(size_t(product(localShape(norm, nb))), -1.0f);
      initWeights({{"a", shape, mine.data(), "normal", b}, {"n", norm, mineNorm.data(), "ones", nb}},
                  0.02, 1234);
      EXPECT_TRUE(bitwiseEqual(mine, expectedBlock(full, shape, split, rank))) << "rank " << rank;
      EXPECT_TRUE(bitwiseEqual(mineNorm, expectedBlock(fullNorm, norm, normSplit, rank)));
    }
}

// ---- the gathered checkpoint -------------------------------------------------------------

// A model of two parameters whose parameter and moments are split differently; the
// whole tensors and each rank's blocks.
struct SplitModel {
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::string init;
    std::vector<int> split[3]; // parameter, exp_avg, exp_avg_sq
    std::vector<float> whole[3];
  };
  std::vector<Tensor> tensors;
  std::vector<float> blocks[4][2][3]; // [rank][tensor][slot]

  SplitModel() {
    tensors.push_back({"model.layers.0.mlp.up_proj.weight", {4, 6}, "normal",
                       {{1, -1}, {1, 0}, {}}, {}});
    tensors.push_back({"model.norm.weight", {6}, "ones", {{-1}, {0}, {1}}, {}});
    for (size_t t = 0; t < tensors.size(); ++t)
      for (int s = 0; s < 3; ++s)
        tensors[t].whole[s] = ramp(product(tensors[t].shape), 0.01f * float(s + 1),
                                   float(t) - 0.3f);
    for (int r = 0; r < 4; ++r)
      for (size_t t = 0; t < tensors.size(); ++t)
        for (int s = 0; s < 3; ++s)
          blocks[r][t][s] =
              expectedBlock(tensors[t].whole[s], tensors[t].shape, tensors[t].split[s], r);
  }
  // Rank `rank`'s slots (rank -1: the whole tensors, one device).
  CheckpointContents contents(int rank, const TrainerState &state) {
    CheckpointContents c;
    for (size_t t = 0; t < tensors.size(); ++t)
      for (int s = 0; s < 3; ++s) {
        ParameterSlot slot{tensors[t].name, tensors[t].shape,
                           rank < 0 ? tensors[t].whole[s].data() : blocks[rank][t][s].data(),
                           tensors[t].init, {}};
        if (rank >= 0)
          slot.block = blockOf(tensors[t].shape, tensors[t].split[s], kMesh,
                               coordinatesOf(rank, kMesh));
        (s == 0 ? c.parameters : s == 1 ? c.expAvg : c.expAvgSq).push_back(slot);
      }
    c.configJson = "{\"model_type\": \"llama\"}\n";
    c.state = state;
    return c;
  }
};

TrainerState stateAt(int64_t step) {
  TrainerState s;
  s.step = step;
  s.epoch = 1;
  s.batchInEpoch = 2;
  s.seed = 7;
  s.numRows = 100;
  s.batch = 4;
  s.seqLen = 8;
  s.dataPath = "data.arrow";
  return s;
}

void expectSameFiles(const std::string &a, const std::string &b) {
  for (const char *file :
       {"model.safetensors", "optimizer.safetensors", "config.json", "trainer_state.json"}) {
    std::string x = readFile(a + "/" + file), y = readFile(b + "/" + file);
    EXPECT_FALSE(x.empty()) << a << "/" << file;
    EXPECT_TRUE(x == y) << file << " differs between " << a << " and " << b;
  }
}

TEST_F(ShardedTest, RanksAsThreadsWriteTheFilesOfOneDevice) {
  SplitModel model;
  auto single = saveCheckpoint(path("one"), model.contents(-1, stateAt(3)));
  ASSERT_TRUE(single.isOk()) << single.message();

  apc::testing::ThreadMesh mesh(kMesh, {{0, 1}});
  std::string paths[4];
  apc::testing::runRanks(4, [&](int rank) {
    auto written = saveCheckpoint(path("four"), model.contents(rank, stateAt(3)),
                                  *mesh.find({0, 1}, rank), kMesh);
    ASSERT_TRUE(written.isOk()) << "rank " << rank << ": " << written.message();
    paths[rank] = *written;
  });
  for (int rank = 0; rank < 4; ++rank)
    EXPECT_EQ(paths[rank], path("four/checkpoint-3"));
  expectSameFiles(*single, path("four/checkpoint-3"));
  // Blocks owned by rank 0 are not sent: up_proj's parameter has 2 blocks (1 sent),
  // its exp_avg 4 (3 sent), the norm's moments 2 each (1 sent each); plus the outcome
  // (flag and path).
  EXPECT_EQ(mesh.find({0, 1}, 2)->broadcasts, 1 + 3 + 1 + 1 + 2);

  // Each rank resumes its blocks, whatever the split it saved under.
  apc::testing::runRanks(4, [&](int rank) {
    SplitModel empty;
    for (auto &byTensor : empty.blocks[rank])
      for (auto &block : byTensor)
        std::fill(block.begin(), block.end(), 0.0f);
    auto state = loadCheckpoint(path("four/checkpoint-3"), empty.contents(rank, {}));
    ASSERT_TRUE(state.isOk()) << state.message();
    EXPECT_EQ(state->step, 3);
    for (size_t t = 0; t < 2; ++t)
      for (int s = 0; s < 3; ++s)
        EXPECT_TRUE(bitwiseEqual(empty.blocks[rank][t][s], model.blocks[rank][t][s]))
            << "rank " << rank << " tensor " << t << " slot " << s;
  });
}

TEST_F(ShardedTest, WholeTensorsNeedNoGathering) {
  SplitModel model;
  for (auto &t : model.tensors)
    for (auto &split : t.split)
      split.clear();
  SplitModel whole = model;
  apc::testing::ThreadMesh mesh(kMesh, {{0, 1}});
  apc::testing::runRanks(4, [&](int rank) {
    // Every rank holds the whole tensors (replicated).
    auto written = saveCheckpoint(path("rep"), whole.contents(-1, stateAt(5)),
                                  *mesh.find({0, 1}, rank), kMesh);
    ASSERT_TRUE(written.isOk()) << written.message();
  });
  EXPECT_EQ(mesh.find({0, 1}, 3)->broadcasts, 2); // the outcome only
  auto single = saveCheckpoint(path("one"), model.contents(-1, stateAt(5)));
  ASSERT_TRUE(single.isOk());
  expectSameFiles(*single, path("rep/checkpoint-5"));
}

TEST_F(ShardedTest, AFailureToWriteOnRankZeroEndsEveryRank) {
  SplitModel model;
  std::ofstream(path("a-file")) << "not a folder";
  apc::testing::ThreadMesh mesh(kMesh, {{0, 1}});
  std::string messages[4];
  apc::testing::runRanks(4, [&](int rank) {
    auto written = saveCheckpoint(path("a-file"), model.contents(rank, stateAt(1)),
                                  *mesh.find({0, 1}, rank), kMesh);
    ASSERT_FALSE(written.isOk()) << "rank " << rank;
    messages[rank] = written.message();
  });
  EXPECT_NE(messages[0].find("cannot create the checkpoint folder"), std::string::npos)
      << messages[0];
  for (int rank = 1; rank < 4; ++rank)
    EXPECT_EQ(messages[rank], "rank 0 could not write the checkpoint: " + messages[0]);
}

TEST_F(ShardedTest, SingleSaveRefusesSplitSlots) {
  SplitModel model;
  auto written = saveCheckpoint(path("x"), model.contents(1, stateAt(1)));
  ASSERT_FALSE(written.isOk());
  EXPECT_EQ(written.message(), "checkpoint: 'model.layers.0.mlp.up_proj.weight' is split; save "
                               "it with the job's communicator");
}

// The same over Gloo, 4 processes: what aprun does.
TEST_F(ShardedTest, RanksAsProcessesOverGlooWriteTheFilesOfOneDevice) {
  SplitModel model;
  auto single = saveCheckpoint(path("one"), model.contents(-1, stateAt(9)));
  ASSERT_TRUE(single.isOk()) << single.message();
  int port = comm::testing::freePort();
  auto ends = comm::testing::forkRanks(4, [&](int rank) {
    comm::ProcessInfo info;
    info.rank = rank;
    info.worldSize = 4;
    info.localRank = rank;
    info.localWorldSize = 4;
    info.masterAddr = "127.0.0.1";
    info.masterPort = port;
    info.jobToken = "sharded-checkpoint-test";
    info.launcher = "test";
    auto store = comm::TcpStore::create(info, 20s);
    ASSERT_TRUE(store.isOk()) << store.message();
    auto world = comm::createWorldCommunicator(**store, info, 20s);
    ASSERT_TRUE(world.isOk()) << world.message();
    auto written = saveCheckpoint(path("gloo"), model.contents(rank, stateAt(9)), **world, kMesh);
    ASSERT_TRUE(written.isOk()) << written.message();
    EXPECT_EQ(*written, path("gloo/checkpoint-9"));
    world->reset();
    Status closed = (*store)->close();
    EXPECT_TRUE(closed.isOk()) << closed.message();
  });
  comm::testing::expectAllPassed(ends);
  expectSameFiles(*single, path("gloo/checkpoint-9"));
}

// ---- pipeline stages: each rank holds its stage's parameters ----------------------------

// Two stages on mesh [dp 1, pp 2]: program 0 (the embedding) holds E and A, program 1
// (the head) E, B and N; E is the tied embedding both hold. The same model on one device
// holds all four. Plan order: E, A, B, N.
struct StageModel {
  std::vector<testing::PlanSpec::Parameter> parameters = {
      {"model.embed_tokens.weight", {8, 4}, "normal"},
      {"model.layers.0.mlp.up_proj.weight", {4, 6}, "normal"},
      {"model.layers.1.mlp.up_proj.weight", {6, 4}, "normal"},
      {"model.norm.weight", {4}, "ones"}};
  std::vector<float> whole[4][3]; // [parameter][slot]: the values a checkpoint holds

  StageModel() {
    for (int p = 0; p < 4; ++p)
      for (int s = 0; s < 3; ++s)
        whole[p][s] = ramp(product(parameters[size_t(p)].shape), 0.01f * float(s + 1),
                           float(p) - 0.5f);
  }
  static void hold(testing::ProgramSpec &program, int p, const std::vector<int64_t> &shape) {
    program.parameter(p, shape);
    program.parameter(p, shape, {}, "exp_avg");
    program.parameter(p, shape, {}, "exp_avg_sq");
  }
  // `stage1Params`: what program 1 holds besides E (default B and N).
  std::string twoStages(std::vector<int> stage1Params = {2, 3}, bool stage1Labels = true) const {
    testing::PlanSpec spec;
    spec.mesh = {1, 2};
    spec.axisNames = {"dp", "pp"};
    spec.parameters = parameters;
    spec.stages = {{0, 1, true, false}, {1, 1, false, true}};
    testing::ProgramSpec first, second;
    first.stage = 0;
    first.addStandardInputs(spec, /*ids=*/true, /*labels=*/false);
    hold(first, 0, parameters[0].shape);
    hold(first, 1, parameters[1].shape);
    second.stage = 1;
    second.addStandardInputs(spec, /*ids=*/false, stage1Labels);
    hold(second, 0, parameters[0].shape);
    for (int p : stage1Params)
      hold(second, p, parameters[size_t(p)].shape);
    spec.programs = {first, second};
    return spec.build();
  }
  std::string oneDevice() const {
    testing::PlanSpec spec;
    spec.parameters = parameters;
    testing::ProgramSpec program;
    program.addStandardInputs(spec);
    for (int p = 0; p < 4; ++p)
      hold(program, p, parameters[size_t(p)].shape);
    spec.programs = {program};
    return spec.build();
  }
  // The whole tensors as one device's checkpoint slots.
  CheckpointContents wholeContents(const TrainerState &state) {
    CheckpointContents c;
    for (int p = 0; p < 4; ++p)
      for (int s = 0; s < 3; ++s)
        (s == 0 ? c.parameters : s == 1 ? c.expAvg : c.expAvgSq)
            .push_back({parameters[size_t(p)].name, parameters[size_t(p)].shape,
                        whole[p][s].data(), parameters[size_t(p)].init, {}});
    c.configJson = "{\"model_type\": \"llama\"}\n";
    c.state = state;
    return c;
  }
};

// One rank's program memory: a float array per buffer, made when bindProgram asks.
struct RankMemory {
  std::map<int, std::vector<float>> buffers;
  Result<train::ProgramBinding> bind(const plan::Plan &plan, int rank) {
    const plan::Program *program = plan::programOf(plan, rank);
    return train::bindProgram(plan, rank, [&, program](int b) {
      std::vector<float> &v = buffers[b];
      v.assign(size_t(program->buffers()->Get(flatbuffers::uoffset_t(b))->bytes() / 4), -7.0f);
      return v.data();
    });
  }
};

std::vector<ParameterSlot> *slotList(CheckpointContents &c, int s) {
  return s == 0 ? &c.parameters : s == 1 ? &c.expAvg : &c.expAvgSq;
}
std::vector<float> values(const ParameterSlot &slot) {
  return std::vector<float>(slot.data, slot.data + product(localShape(slot.shape, slot.block)));
}

plan::LoadedPlan loadPlan(const std::string &bytes) {
  auto loaded = plan::LoadedPlan::fromBytes(bytes, "test.fb");
  EXPECT_TRUE(loaded.isOk()) << loaded.message();
  return std::move(*loaded);
}

TEST(PipelineSlots, EachRankHoldsItsStageAndKnowsTheHolders) {
  StageModel model;
  plan::LoadedPlan loaded = loadPlan(model.twoStages());
  for (int rank = 0; rank < 2; ++rank) {
    RankMemory memory;
    auto bound = memory.bind(loaded.plan(), rank);
    ASSERT_TRUE(bound.isOk()) << bound.message();
    EXPECT_EQ(bound->stage, rank);
    EXPECT_EQ(bound->ids >= 0, rank == 0);
    EXPECT_EQ(bound->labels >= 0, rank == 1);
    EXPECT_GE(bound->step, 0);
    EXPECT_GE(bound->lr, 0);
    ASSERT_EQ(bound->slots.parameters.size(), 4u);
    bool holds[2][4] = {{true, true, false, false}, {true, false, true, true}};
    std::vector<int> holders[4] = {{}, {0}, {1}, {1}}; // E: every rank (none listed)
    for (int s = 0; s < 3; ++s)
      for (int p = 0; p < 4; ++p) {
        const ParameterSlot &slot = (*slotList(bound->slots, s))[size_t(p)];
        EXPECT_EQ(slot.name, model.parameters[size_t(p)].name);
        EXPECT_EQ(slot.data != nullptr, holds[rank][p]) << "rank " << rank << " p " << p;
        EXPECT_EQ(slot.holders, holders[p]) << "p " << p;
      }
  }
}

TEST(PipelineSlots, AParameterNoProgramHoldsIsAnError) {
  StageModel model;
  plan::LoadedPlan loaded = loadPlan(model.twoStages({3})); // B: nowhere
  for (int rank = 0; rank < 2; ++rank) {
    RankMemory memory;
    auto bound = memory.bind(loaded.plan(), rank);
    ASSERT_FALSE(bound.isOk());
    EXPECT_EQ(bound.message(), "parameter 'model.layers.1.mlp.up_proj.weight' is held by no "
                               "program: no program has its parameter buffer");
  }
  // The stage with the head needs labels (the stages without the embedding need no
  // input_ids: twoStages has none on stage 1 and loads).
  auto noLabels = plan::LoadedPlan::fromBytes(model.twoStages({2, 3}, /*stage1Labels=*/false),
                                              "test.fb");
  ASSERT_FALSE(noLabels.isOk());
  EXPECT_EQ(noLabels.message(), "test.fb: program 1 needs exactly one Labels input, has 0");
}

// A one-stage plan has one program, run by every device: a parameter it lacks is held
// by no device.
TEST(PipelineSlots, AOneStagePlanStillNeedsEveryParameterInItsProgram) {
  testing::PlanSpec spec;
  spec.mesh = {2};
  spec.parameters = {{"a", {4}}, {"b", {4}}};
  testing::ProgramSpec program;
  program.addStandardInputs(spec);
  StageModel::hold(program, 0, {4});
  spec.programs = {program};
  plan::LoadedPlan loaded = loadPlan(spec.build());
  RankMemory memory;
  auto bound = memory.bind(loaded.plan(), 1);
  ASSERT_FALSE(bound.isOk());
  EXPECT_EQ(bound.message(), "parameter 'b' is held by no program: no program has its "
                             "parameter buffer");
}

TEST_F(ShardedTest, PipelineRanksWriteEveryParameterAndResumeUnderAnyPlan) {
  StageModel model;
  plan::LoadedPlan two = loadPlan(model.twoStages());
  RankMemory memory[2];
  CheckpointContents contents[2];
  for (int rank = 0; rank < 2; ++rank) {
    auto bound = memory[rank].bind(two.plan(), rank);
    ASSERT_TRUE(bound.isOk()) << bound.message();
    contents[rank] = bound->slots;
    contents[rank].configJson = "{\"model_type\": \"llama\"}\n";
    contents[rank].state = stateAt(4);
    for (int s = 0; s < 3; ++s)
      for (int p = 0; p < 4; ++p) {
        const ParameterSlot &slot = (*slotList(contents[rank], s))[size_t(p)];
        if (!slot.data)
          continue;
        std::vector<float> v = model.whole[p][s];
        if (rank == 1 && p == 0) // E's second copy: the checkpoint takes rank 0's
          for (float &x : v)
            x += 100.0f;
        std::copy(v.begin(), v.end(), slot.data);
      }
  }
  auto single = saveCheckpoint(path("one"), model.wholeContents(stateAt(4)));
  ASSERT_TRUE(single.isOk()) << single.message();
  std::vector<int64_t> mesh = {1, 2};
  apc::testing::ThreadMesh threads(mesh, {{0, 1}});
  std::string paths[2];
  apc::testing::runRanks(2, [&](int rank) {
    auto written = saveCheckpoint(path("pp"), contents[rank], *threads.find({0, 1}, rank), mesh);
    ASSERT_TRUE(written.isOk()) << "rank " << rank << ": " << written.message();
    paths[rank] = *written;
  });
  EXPECT_EQ(paths[0], path("pp/checkpoint-4"));
  EXPECT_EQ(paths[1], path("pp/checkpoint-4"));
  expectSameFiles(*single, path("pp/checkpoint-4"));
  // Rank 1 sends B and N with their moments (E is rank 0's own); plus the outcome.
  EXPECT_EQ(threads.find({0, 1}, 1)->broadcasts, 6 + 2);

  // Resuming under the two-stage plan: each rank reads what it holds (E both).
  for (int rank = 0; rank < 2; ++rank) {
    RankMemory fresh;
    auto bound = fresh.bind(two.plan(), rank);
    ASSERT_TRUE(bound.isOk()) << bound.message();
    auto state = loadCheckpoint(path("pp/checkpoint-4"), bound->slots);
    ASSERT_TRUE(state.isOk()) << state.message();
    EXPECT_EQ(state->step, 4);
    for (int s = 0; s < 3; ++s)
      for (int p = 0; p < 4; ++p) {
        const ParameterSlot &slot = (*slotList(bound->slots, s))[size_t(p)];
        if (slot.data)
          EXPECT_TRUE(bitwiseEqual(values(slot), model.whole[p][s]))
              << "rank " << rank << " p " << p << " slot " << s;
      }
  }
  // And under one device, which holds all four.
  plan::LoadedPlan one = loadPlan(model.oneDevice());
  RankMemory fresh;
  auto bound = fresh.bind(one.plan(), 0);
  ASSERT_TRUE(bound.isOk()) << bound.message();
  auto state = loadCheckpoint(path("pp/checkpoint-4"), bound->slots);
  ASSERT_TRUE(state.isOk()) << state.message();
  for (int s = 0; s < 3; ++s)
    for (int p = 0; p < 4; ++p) {
      const ParameterSlot &slot = (*slotList(bound->slots, s))[size_t(p)];
      ASSERT_NE(slot.data, nullptr);
      EXPECT_TRUE(bitwiseEqual(values(slot), model.whole[p][s])) << "p " << p << " slot " << s;
    }
}

TEST(PipelineSlots, SeededInitOfAStageEqualsOneDevice) {
  StageModel model;
  plan::LoadedPlan one = loadPlan(model.oneDevice());
  plan::LoadedPlan two = loadPlan(model.twoStages());
  RankMemory oneMemory;
  auto reference = oneMemory.bind(one.plan(), 0);
  ASSERT_TRUE(reference.isOk()) << reference.message();
  initWeights(reference->slots.parameters, 0.02, 4321);
  for (int rank = 0; rank < 2; ++rank) {
    RankMemory memory;
    auto bound = memory.bind(two.plan(), rank);
    ASSERT_TRUE(bound.isOk()) << bound.message();
    initWeights(bound->slots.parameters, 0.02, 4321);
    int held = 0;
    for (int p = 0; p < 4; ++p) {
      const ParameterSlot &slot = bound->slots.parameters[size_t(p)];
      if (!slot.data)
        continue;
      ++held;
      EXPECT_TRUE(bitwiseEqual(values(slot), values(reference->slots.parameters[size_t(p)])))
          << "rank " << rank << " p " << p;
    }
    EXPECT_EQ(held, rank == 0 ? 2 : 3);
  }
}

// Weights files: a rank reads only what it holds, and the other stages' tensors are not
// reported unused.
TEST_F(ShardedTest, PipelineRanksLoadOnlyTheirWeights) {
  StageModel model;
  std::vector<safetensors::TensorToWrite> tensors;
  for (int p = 0; p < 4; ++p)
    tensors.push_back(tensor(model.parameters[size_t(p)].name, safetensors::DType::F32,
                             model.parameters[size_t(p)].shape, model.whole[p][0]));
  ASSERT_TRUE(safetensors::write(path("w.safetensors"), tensors).isOk());
  plan::LoadedPlan two = loadPlan(model.twoStages());
  for (int rank = 0; rank < 2; ++rank) {
    RankMemory memory;
    auto bound = memory.bind(two.plan(), rank);
    ASSERT_TRUE(bound.isOk()) << bound.message();
    std::vector<std::string> unused;
    Status s = loadWeights(path("w.safetensors"), bound->slots.parameters, &unused);
    ASSERT_TRUE(s.isOk()) << s.message();
    EXPECT_TRUE(unused.empty());
    for (int p = 0; p < 4; ++p) {
      const ParameterSlot &slot = bound->slots.parameters[size_t(p)];
      if (slot.data)
        EXPECT_TRUE(bitwiseEqual(values(slot), model.whole[p][0])) << "rank " << rank;
    }
  }
  // A file without a tensor only the other stage holds still loads on this one.
  tensors.erase(tensors.begin() + 2); // B, held by rank 1
  ASSERT_TRUE(safetensors::write(path("noB.safetensors"), tensors).isOk());
  RankMemory memory[2];
  auto first = memory[0].bind(two.plan(), 0), second = memory[1].bind(two.plan(), 1);
  ASSERT_TRUE(first.isOk() && second.isOk());
  EXPECT_TRUE(loadWeights(path("noB.safetensors"), first->slots.parameters).isOk());
  Status s = loadWeights(path("noB.safetensors"), second->slots.parameters);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("no tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos)
      << s.message();
}

// ---- streaming: rank 0 writes each tensor as it is gathered -----------------------------

// Larger tensors, split every way, two of them held by some ranks only (as a pipeline
// stage's are): [param, exp_avg, exp_avg_sq] splits and holders per tensor.
struct StreamModel {
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<int> split[3];
    std::vector<int> holders; // empty: every rank
    std::vector<float> whole[3];
  };
  std::vector<Tensor> tensors = {
      {"a.weight", {128, 512}, {{1, -1}, {1, 0}, {}}, {}, {}},
      {"b.weight", {512, 128}, {{0, 1}, {-1, 0}, {0, -1}}, {}, {}},
      {"c.weight", {256}, {{-1}, {0}, {1}}, {}, {}},
      {"d.weight", {128, 256}, {{}, {}, {}}, {}, {}},
      {"e.weight", {64, 64}, {{0, -1}, {0, -1}, {}}, {1, 3}, {}}, // ranks (0,1), (1,1)
      {"f.weight", {32, 32}, {{}, {}, {}}, {2, 3}, {}},
  };
  std::vector<std::vector<float>> blocks[4][3]; // [rank][slot][tensor]; empty: not held

  StreamModel() {
    for (size_t t = 0; t < tensors.size(); ++t)
      for (int s = 0; s < 3; ++s)
        tensors[t].whole[s] = ramp(product(tensors[t].shape), 0.001f * float(s + 1),
                                   float(t) - 0.7f);
    for (int r = 0; r < 4; ++r)
      for (int s = 0; s < 3; ++s)
        for (const Tensor &t : tensors) {
          bool held = t.holders.empty() ||
                      std::find(t.holders.begin(), t.holders.end(), r) != t.holders.end();
          blocks[r][s].push_back(held ? expectedBlock(t.whole[s], t.shape, t.split[s], r)
                                      : std::vector<float>{});
        }
  }
  CheckpointContents contents(int rank) {
    CheckpointContents c;
    for (int s = 0; s < 3; ++s)
      for (size_t t = 0; t < tensors.size(); ++t) {
        std::vector<float> &mine = blocks[rank][s][t];
        ParameterSlot slot{tensors[t].name, tensors[t].shape, mine.empty() ? nullptr : mine.data(),
                           "normal",
                           blockOf(tensors[t].shape, tensors[t].split[s], kMesh,
                                   coordinatesOf(rank, kMesh)),
                           tensors[t].holders};
        slotList(c, s)->push_back(slot);
      }
    c.configJson = "{\"model_type\": \"llama\"}\n";
    c.state = stateAt(6);
    return c;
  }
  int64_t totalBytes() const {
    int64_t n = 0;
    for (const Tensor &t : tensors)
      n += 3 * product(t.shape) * 4;
    return n;
  }
};

// The old way, kept here as the reference: every tensor whole in memory, then one
// safetensors::write per file.
void writeFromMemory(const std::string &folder, const StreamModel &model) {
  std::vector<safetensors::TensorToWrite> files[2];
  for (int s = 0; s < 3; ++s)
    for (const StreamModel::Tensor &t : model.tensors) {
      const std::vector<float> &v = t.whole[s];
      safetensors::TensorToWrite w{std::string(s == 0 ? "" : s == 1 ? "exp_avg." : "exp_avg_sq.") +
                                       t.name,
                                   safetensors::DType::F32, t.shape,
                                   std::vector<uint8_t>(v.size() * 4)};
      std::memcpy(w.bytes.data(), v.data(), w.bytes.size());
      files[s == 0 ? 0 : 1].push_back(std::move(w));
    }
  fs::create_directories(folder);
  ASSERT_TRUE(safetensors::write(folder + "/model.safetensors", files[0], {{"format", "pt"}}).isOk());
  ASSERT_TRUE(
      safetensors::write(folder + "/optimizer.safetensors", files[1], {{"format", "apc"}}).isOk());
}

TEST_F(ShardedTest, StreamedSaveEqualsTheFilesWrittenFromMemory) {
  StreamModel model;
  writeFromMemory(path("memory"), model);
  apc::testing::ThreadMesh mesh(kMesh, {{0, 1}});
  apc::testing::runRanks(4, [&](int rank) {
    auto written = saveCheckpoint(path("streamed"), model.contents(rank),
                                  *mesh.find({0, 1}, rank), kMesh);
    ASSERT_TRUE(written.isOk()) << "rank " << rank << ": " << written.message();
    EXPECT_EQ(*written, path("streamed/checkpoint-6"));
  });
  for (const char *file : {"model.safetensors", "optimizer.safetensors"}) {
    std::string streamed = readFile(path("streamed/checkpoint-6/") + file);
    EXPECT_GT(streamed.size(), 1000u);
    EXPECT_TRUE(streamed == readFile(path("memory/") + file)) << file;
  }
  // Nothing but the checkpoint is left in the folder (no temporary files).
  std::vector<std::string> names;
  for (const auto &entry : fs::directory_iterator(path("streamed")))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"checkpoint-6"});
  std::set<std::string> inside;
  for (const auto &entry : fs::directory_iterator(path("streamed/checkpoint-6")))
    inside.insert(entry.path().filename().string());
  EXPECT_EQ(inside, (std::set<std::string>{"model.safetensors", "optimizer.safetensors",
                                           "config.json", "trainer_state.json"}));
}

// The bound: while saving, rank 0's heap grows by at most one whole tensor (assembled)
// plus one block (received), whatever the model's size; a single device's save copies
// no tensor at all (it streams from the slots).
TEST_F(ShardedTest, StreamedSaveHoldsOneTensorAtATimeOnRankZero) {
  StreamModel model;
  int64_t largestTensor = 0;
  for (const auto &t : model.tensors)
    largestTensor = std::max(largestTensor, product(t.shape) * 4);
  const int64_t slack = 64 << 10; // names, headers, paths, the communicator's bookkeeping
  const int64_t bound = largestTensor + largestTensor / 2 + slack;
  ASSERT_GT(model.totalBytes(), 4 * bound); // gathering everything first would exceed it

  apc::testing::ThreadMesh mesh(kMesh, {{0, 1}});
  int64_t peak = -1;
  apc::testing::runRanks(4, [&](int rank) {
    CheckpointContents c = model.contents(rank);
    if (rank == 0) {
      tLiveBytes = tPeakBytes = 0;
      tCounting = true;
    }
    auto written = saveCheckpoint(path("bounded"), c, *mesh.find({0, 1}, rank), kMesh);
    if (rank == 0) {
      tCounting = false;
      peak = tPeakBytes;
    }
    ASSERT_TRUE(written.isOk()) << "rank " << rank << ": " << written.message();
  });
  // A split tensor is the whole plus one block (at most half of it): under 1.5 tensors.
  EXPECT_GE(peak, largestTensor) << "rank 0 assembles a.weight's split blocks";
  RecordProperty("rank0_peak_bytes", std::to_string(peak));
  RecordProperty("model_and_moments_bytes", std::to_string(model.totalBytes()));
  EXPECT_LE(peak, bound) << "total " << model.totalBytes() << " bytes";

  StageModel stages; // outlives `whole`, which points into its tensors
  CheckpointContents whole = stages.wholeContents(stateAt(2));
  std::vector<float> big[3];
  for (int s = 0; s < 3; ++s) { // one large tensor per list, so a copy would show
    big[s] = ramp(1 << 18, 0.5f);
    slotList(whole, s)->push_back({"big.weight", {1 << 18}, big[s].data(), "normal", {}});
  }
  tLiveBytes = tPeakBytes = 0;
  tCounting = true;
  auto single = saveCheckpoint(path("single"), whole);
  tCounting = false;
  ASSERT_TRUE(single.isOk()) << single.message();
  RecordProperty("single_peak_bytes", std::to_string(tPeakBytes));
  EXPECT_LE(tPeakBytes, slack);
}

} // namespace
} // namespace apc::checkpoint
