// The CUDA loss kernels (runtime/kernels/cuda/Loss.cu) against the CPU backend's
// (runtime/kernels/cpu/Loss.cpp).
//
// Host tests, run everywhere: each kernel's launches emulated on the host as Loss.cu
// makes them (a block per row of rowsLaunch's threads, thread t taking columns t, t + T,
// ..., the partials folded in BlockFold.h's order; the label scan's one block through
// scanThread and scanFinish), calling LossMath.h's arithmetic as the kernels do, compared
// with the CPU kernels' outputs with CudaParity.h's tolerances. Also: the exp bit for bit
// against the CPU backend's, the refusal of a bad label word for word, the workspace
// sizes and the refusal of too little. CudaParity.Loss* run the kernels on a GPU
// (skipped without one).
#include "test/unit/kernels/CudaParity.h"
#include "test/unit/kernels/cuda/EmulatedBlock.h"

#include "runtime/kernels/cpu/Common.h"
#include "runtime/kernels/cuda/BlockFold.h"
#include "runtime/kernels/cuda/LossMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::Max;
using cuda::Plus;
using namespace cuda::loss;

int64_t rowsOf(const Operand &logits) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < logits.shape.size(); ++d)
    rows *= logits.shape[d];
  return rows;
}

// Calls f with the labels as the kernels read them (int32_t or int64_t).
template <typename F> void withLabels(const Operand &labels, F &&f) {
  if (labels.dtype == DType::I32)
    f(dataOf<int32_t>(labels));
  else
    f(dataOf<int64_t>(labels));
}

const float *optionalScalar(const std::vector<Operand> &in, size_t index) {
  return in.size() > index ? dataOf<float>(in[index]) : nullptr;
}

// ---- The kernels, emulated ---------------------------------------------------------------

// rowMaxOf and rowSumExp of Loss.cu.
float rowMaxOf(const Operand &x, int64_t row, int64_t vocab, int threads) {
  return emulateBlock(
      threads, vocab, negativeInfinity(),
      [&](float m, int64_t i) { return Max()(m, float(x.at(row * vocab + i))); }, Max());
}
double rowSumExp(const Operand &x, int64_t row, int64_t vocab, float m, int threads) {
  return emulateBlock(
      threads, vocab, 0.0,
      [&](double s, int64_t i) { return s + expTerm(float(x.at(row * vocab + i)), m); }, Plus());
}

// scanLabels: kLabelThreads threads, each field folded on its own.
template <typename Id> void scanLabels(const Id *labels, const ScanArgs &a) {
  std::vector<ScanPartial> lanes(kLabelThreads);
  for (uint32_t t = 0; t < kLabelThreads; ++t)
    lanes[t] = scanThread(labels, a, t, kLabelThreads);
  std::vector<double> totals;
  std::vector<int64_t> kept, bad;
  for (const ScanPartial &p : lanes) {
    totals.push_back(p.total);
    kept.push_back(p.kept);
    bad.push_back(p.firstBad);
  }
  ScanPartial block;
  block.total = cuda::foldHalves(totals.data(), kLabelThreads, Plus());
  block.kept = cuda::foldHalves(kept.data(), kLabelThreads, Plus());
  block.firstBad = cuda::foldHalves(bad.data(), kLabelThreads, cuda::Min());
  scanFinish(labels, a, block);
}

// softmaxGradRows.
template <typename Id>
void softmaxGradRows(const Operand &x, Operand &dx, const Id *labels, const LabelReport &report,
                     const float *rowMaxIn, const float *rowSumIn, int64_t ignore, int64_t start) {
  if (report.badPosition >= 0)
    return;
  int64_t vocab = x.shape.back(), rows = rowsOf(x);
  int threads = int(rowsLaunch(rows, vocab).threads);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t label = int64_t(labels[row]);
    if (label == ignore) {
      for (int64_t i = 0; i < vocab; ++i)
        dx.set(row * vocab + i, 0.0f);
      continue;
    }
    double weight = report.weight;
    float m = rowMaxIn ? rowMaxIn[row] : rowMaxOf(x, row, vocab, threads);
    double s = rowSumIn ? double(rowSumIn[row]) : rowSumExp(x, row, vocab, m, threads);
    float scale = softmaxScale(weight, s);
    int64_t column = localColumn(label, ignore, start, vocab);
    for (int64_t i = 0; i < vocab; ++i) {
      float e = expF32(float(x.at(row * vocab + i)) - m);
      dx.set(row * vocab + i,
             i == column ? targetGradValue(e, scale, weight) : gradValue(e, scale));
    }
  }
}

struct LossAttrs {
  int64_t ignore = -100;
  bool mean = true;
  int64_t start = 0;
  Attributes attributes() const {
    return Attributes({intAttr("ignore_index", ignore),
                       stringAttr("reduction", mean ? "mean" : "sum"),
                       intAttr("vocab_start", start)});
  }
};

// cross_entropy: crossEntropyRows, then scanLabels. Returns the report.
LabelReport crossEntropy(const std::vector<Operand> &in, Operand &result, const LossAttrs &at) {
  const Operand &logits = in[0];
  int64_t vocab = logits.shape.back(), rows = rowsOf(logits);
  int threads = int(rowsLaunch(rows, vocab).threads);
  std::vector<double> losses(size_t(rows), std::nan(""));
  LabelReport report{};
  withLabels(in[1], [&](const auto *label) {
    for (int64_t r = 0; r < rows && vocab > 0; ++r) {
      int64_t l = int64_t(label[r]);
      if (l == at.ignore || isBadLabel(l, at.ignore, vocab))
        continue;
      float m = rowMaxOf(logits, r, vocab, threads);
      double s = rowSumExp(logits, r, vocab, m, threads);
      losses[size_t(r)] = rowLoss(m, s, float(logits.at(r * vocab + l)));
    }
    ScanArgs a;
    a.rows = rows;
    a.vocab = vocab;
    a.ignore = at.ignore;
    a.validate = true;
    a.mean = at.mean;
    a.losses = losses.data();
    a.keptCount = optionalScalar(in, 2);
    a.loss = dataOf<float>(result);
    a.report = &report;
    scanLabels(label, a);
  });
  return report;
}

// cross_entropy_grad (validate, start 0, own statistics) and vocab_parallel_loss_grad.
LabelReport softmaxGrad(const std::vector<Operand> &in, Operand &grad, const LossAttrs &at,
                        bool vocabParallel) {
  const Operand &logits = in[0];
  LabelReport report{};
  withLabels(in[1], [&](const auto *label) {
    ScanArgs a;
    a.rows = rowsOf(logits);
    a.vocab = logits.shape.back();
    a.ignore = at.ignore;
    a.validate = !vocabParallel;
    a.mean = at.mean;
    a.gradLoss = dataOf<float>(in[vocabParallel ? 4 : 2]);
    a.keptCount = optionalScalar(in, vocabParallel ? 5 : 3);
    a.report = &report;
    scanLabels(label, a);
    softmaxGradRows(logits, grad, label, report, vocabParallel ? dataOf<float>(in[2]) : nullptr,
                    vocabParallel ? dataOf<float>(in[3]) : nullptr, at.ignore,
                    vocabParallel ? at.start : 0);
  });
  return report;
}

// ---- Inputs --------------------------------------------------------------------------

Operand scalar(float v) {
  Operand o = zeros(DType::F32, {});
  o.set(0, v);
  return o;
}

// Labels in [0, vocab) with about one in four the ignore index.
Operand labelsFor(DType idType, std::vector<int64_t> shape, int64_t vocab, int64_t ignore,
                  std::mt19937 &rng) {
  Operand labels = randomInts(idType, std::move(shape), rng, 0, vocab);
  for (int64_t i = 0; i < labels.count(); ++i)
    if (rng() % 4 == 0)
      labels.set(i, double(ignore));
  return labels;
}

std::vector<int64_t> withoutLast(std::vector<int64_t> shape) {
  shape.pop_back();
  return shape;
}

const std::vector<std::vector<int64_t>> &lossShapes() {
  // One element; a partial warp; rows wider than a block (1024 threads x 4); a 3-D batch;
  // more rows than the label scan's threads.
  static const std::vector<std::vector<int64_t>> shapes = {
      {1, 1}, {3, 5}, {2, 3, 257}, {2, 5000}, {1100, 7}};
  return shapes;
}

std::string where(DType t, const std::vector<int64_t> &shape, const LossAttrs &at) {
  std::string s = std::string(dtypeName(t)) + " [";
  for (int64_t d : shape)
    s += std::to_string(d) + ",";
  return s + "] " + (at.mean ? "mean" : "sum") + " ignore " + std::to_string(at.ignore);
}

// ---- Host tests ---------------------------------------------------------------------

TEST(CudaLoss, ExpIsTheCpuBackendsBitForBit) {
  std::vector<float> xs = {0.0f,  -0.0f,  1e-30f,  -87.336544f, -87.3365f, -87.34f, 88.376259f,
                           88.4f, 100.0f, -100.0f, INFINITY,    -INFINITY, NAN};
  for (int i = -200000; i <= 200000; ++i)
    xs.push_back(float(i) * 4.5e-4f);
  for (float x : xs) {
    float mine = expF32(x), cpu = cpu::expF32(x);
    if (std::isnan(cpu)) {
      EXPECT_TRUE(std::isnan(mine)) << x;
      continue;
    }
    uint32_t a, b;
    std::memcpy(&a, &mine, 4);
    std::memcpy(&b, &cpu, 4);
    ASSERT_EQ(a, b) << "exp(" << x << "): " << mine << " vs the CPU's " << cpu;
  }
}

TEST(CudaLoss, CrossEntropyAsLaunchedMatchesTheCpu) {
  std::mt19937 rng(21);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const auto &shape : lossShapes())
      for (LossAttrs at : {LossAttrs{-100, true}, LossAttrs{-100, false}, LossAttrs{2, true}}) {
        int64_t vocab = shape.back();
        Operand logits = randomOperand(t, shape, rng, -4, 4);
        Operand labels = labelsFor(rng() % 2 ? DType::I32 : DType::I64, withoutLast(shape), vocab,
                                   at.ignore, rng);
        for (bool given : {false, true}) {
          std::vector<Operand> in = {logits, labels};
          if (given)
            in.push_back(scalar(7.0f)); // the global kept count
          std::vector<Operand> cpu = {zeros(DType::F32, {})};
          Status s = runCpu("cross_entropy", in, cpu, at.attributes());
          ASSERT_TRUE(s) << s.message();
          Operand mine = zeros(DType::F32, {});
          LabelReport report = crossEntropy(in, mine, at);
          EXPECT_EQ(report.badPosition, -1);
          expectClose("cross_entropy " + where(t, shape, at) + (given ? " kept given" : ""), cpu[0],
                      mine);
        }
      }
}

TEST(CudaLoss, CrossEntropyOfNothingKeptIsNaNForTheMeanAndZeroForTheSum) {
  for (bool mean : {true, false}) {
    LossAttrs at{-100, mean};
    std::vector<Operand> in = {zeros(DType::F32, {3, 4}), zeros(DType::I32, {3})};
    for (int64_t i = 0; i < 3; ++i)
      in[1].set(i, -100);
    std::vector<Operand> cpu = {zeros(DType::F32, {})};
    ASSERT_TRUE(runCpu("cross_entropy", in, cpu, at.attributes()));
    Operand mine = zeros(DType::F32, {});
    crossEntropy(in, mine, at);
    EXPECT_EQ(std::isnan(mine.at(0)), mean);
    expectClose(mean ? "mean" : "sum", cpu[0], mine);
  }
}

TEST(CudaLoss, CrossEntropyGradAsLaunchedMatchesTheCpu) {
  std::mt19937 rng(22);
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (const auto &shape : lossShapes())
      for (LossAttrs at : {LossAttrs{-100, true}, LossAttrs{-100, false}, LossAttrs{0, true}}) {
        int64_t vocab = shape.back();
        Operand logits = randomOperand(t, shape, rng, -4, 4);
        Operand labels = labelsFor(DType::I64, withoutLast(shape), vocab, at.ignore, rng);
        for (bool given : {false, true}) {
          std::vector<Operand> in = {logits, labels, scalar(1.5f)};
          if (given)
            in.push_back(scalar(11.0f));
          std::vector<Operand> cpu = {zeros(t, shape)};
          Status s = runCpu("cross_entropy_grad", in, cpu, at.attributes());
          ASSERT_TRUE(s) << s.message();
          Operand mine = zeros(t, shape);
          LabelReport report = softmaxGrad(in, mine, at, false);
          EXPECT_EQ(report.badPosition, -1);
          expectClose("cross_entropy_grad " + where(t, shape, at) + (given ? " kept given" : ""),
                      cpu[0], mine);
        }
      }
}

TEST(CudaLoss, BadLabelsAreRefusedAsTheCpuRefusesThem) {
  // Labels 5 (= vocab) at [0, 2] and -3 at [1, 0]: the first in flat order is named.
  LossAttrs at;
  std::vector<Operand> in = {zeros(DType::BF16, {2, 3, 5}), zeros(DType::I32, {2, 3}),
                             scalar(1.0f)};
  int32_t labels[] = {1, -100, 5, -3, 2, 4};
  std::memcpy(in[1].bytes.data(), labels, sizeof labels);
  for (const char *kernel : {"cross_entropy", "cross_entropy_grad"}) {
    bool grad = std::string(kernel) == "cross_entropy_grad";
    std::vector<Operand> inputs = in;
    if (!grad)
      inputs.pop_back();
    Operand untouched = grad ? zeros(DType::BF16, {2, 3, 5}) : scalar(42.0f);
    std::vector<Operand> cpu = {untouched};
    Status refused = runCpu(kernel, inputs, cpu, at.attributes());
    ASSERT_FALSE(refused);
    Operand mine = untouched;
    LabelReport report =
        grad ? softmaxGrad(inputs, mine, at, false) : crossEntropy(inputs, mine, at);
    EXPECT_EQ(report.badPosition, 2);
    EXPECT_EQ(report.badLabel, 5);
    EXPECT_EQ(badLabelMessage(kernel, inputs[1].shape, report.badPosition, report.badLabel, 5),
              refused.message());
    EXPECT_EQ(mine.bytes, untouched.bytes) << kernel << ": a refused run writes nothing";
  }
}

TEST(CudaLoss, CountKeptAsLaunchedMatchesTheCpu) {
  std::mt19937 rng(23);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(5000)})
    for (DType id : {DType::I32, DType::I64}) {
      Operand labels = labelsFor(id, {n}, 50, -100, rng);
      std::vector<Operand> cpu = {zeros(DType::F32, {})};
      LossAttrs at;
      ASSERT_TRUE(runCpu("count_kept", {labels}, cpu, at.attributes()));
      Operand mine = zeros(DType::F32, {});
      withLabels(labels, [&](const auto *label) {
        ScanArgs a;
        a.rows = n;
        a.ignore = at.ignore;
        a.count = dataOf<float>(mine);
        scanLabels(label, a);
      });
      EXPECT_EQ(mine.at(0), cpu[0].at(0)) << n;
    }
}

// The vocabulary split in two blocks as two devices hold it: each block's max, the whole
// rows' max (the all-reduce's), each block's stats with it, their sums, the loss and each
// block's gradient, every kernel against the CPU's on the same inputs.
TEST(CudaLoss, VocabParallelKernelsAsLaunchedMatchTheCpu) {
  std::mt19937 rng(24);
  struct Split {
    std::vector<int64_t> rowsShape;
    int64_t first, second; // the blocks' widths
  } splits[] = {{{1}, 1, 1}, {{3}, 300, 400}, {{2, 3}, 2500, 2600}, {{1100}, 5, 9}};
  for (DType t : {DType::F32, DType::BF16})
    for (const Split &split : splits)
      for (LossAttrs at : {LossAttrs{-100, true}, LossAttrs{-100, false}}) {
        int64_t vocab = split.first + split.second, rows = 1;
        for (int64_t d : split.rowsShape)
          rows *= d;
        Operand labels = labelsFor(DType::I32, split.rowsShape, vocab, at.ignore, rng);
        std::string name = where(t, split.rowsShape, at) + " blocks " +
                           std::to_string(split.first) + "+" + std::to_string(split.second);
        std::vector<Operand> blocks;
        Operand rowMax = zeros(DType::F32, split.rowsShape);
        for (int64_t r = 0; r < rows; ++r)
          rowMax.set(r, -INFINITY);
        for (int b = 0; b < 2; ++b) {
          std::vector<int64_t> shape = split.rowsShape;
          shape.push_back(b == 0 ? split.first : split.second);
          blocks.push_back(randomOperand(t, shape, rng, -4, 4));
          std::vector<Operand> cpu = {zeros(DType::F32, split.rowsShape)};
          ASSERT_TRUE(runCpu("vocab_parallel_max", {blocks[b]}, cpu, Attributes()));
          Operand mine = zeros(DType::F32, split.rowsShape);
          int64_t width = shape.back();
          int threads = int(rowsLaunch(rows, width).threads);
          for (int64_t r = 0; r < rows; ++r)
            mine.set(r, rowMaxOf(blocks[b], r, width, threads));
          expectClose("vocab_parallel_max " + name, cpu[0], mine);
          for (int64_t r = 0; r < rows; ++r) // the all-reduce's max
            rowMax.set(r, std::max(rowMax.at(r), cpu[0].at(r)));
        }
        Operand sumExp = zeros(DType::F32, split.rowsShape),
                target = zeros(DType::F32, split.rowsShape);
        for (int b = 0; b < 2; ++b) {
          LossAttrs blockAt = at;
          blockAt.start = b == 0 ? 0 : split.first;
          std::vector<Operand> cpu = {zeros(DType::F32, split.rowsShape),
                                      zeros(DType::F32, split.rowsShape)};
          ASSERT_TRUE(runCpu("vocab_parallel_stats", {blocks[b], labels, rowMax}, cpu,
                             blockAt.attributes()));
          std::vector<Operand> mine = cpu;
          int64_t width = blocks[b].shape.back();
          int threads = int(rowsLaunch(rows, width).threads);
          withLabels(labels, [&](const auto *label) {
            for (int64_t r = 0; r < rows; ++r) {
              mine[0].set(r, float(rowSumExp(blocks[b], r, width, float(rowMax.at(r)), threads)));
              int64_t column = localColumn(int64_t(label[r]), at.ignore, blockAt.start, width);
              mine[1].set(r, column >= 0 ? blocks[b].at(r * width + column) : 0.0);
            }
          });
          expectClose("vocab_parallel_stats sum_exp " + name, cpu[0], mine[0]);
          expectClose("vocab_parallel_stats target " + name, cpu[1], mine[1]);
          for (int64_t r = 0; r < rows; ++r) { // the all-reduce's sums
            sumExp.set(r, sumExp.at(r) + cpu[0].at(r));
            target.set(r, target.at(r) + cpu[1].at(r));
          }
        }
        for (bool given : {false, true}) {
          std::vector<Operand> in = {rowMax, sumExp, target, labels};
          if (given)
            in.push_back(scalar(5.0f));
          std::vector<Operand> cpu = {zeros(DType::F32, {})};
          ASSERT_TRUE(runCpu("vocab_parallel_loss", in, cpu, at.attributes()));
          Operand mine = zeros(DType::F32, {});
          ScanArgs a;
          a.rows = rows;
          a.ignore = at.ignore;
          a.mean = at.mean;
          a.rowMax = dataOf<float>(rowMax);
          a.sumExp = dataOf<float>(sumExp);
          a.target = dataOf<float>(target);
          a.keptCount = optionalScalar(in, 4);
          a.loss = dataOf<float>(mine);
          withLabels(labels, [&](const auto *label) { scanLabels(label, a); });
          expectClose("vocab_parallel_loss " + name, cpu[0], mine);
        }
        for (int b = 0; b < 2; ++b)
          for (bool given : {false, true}) {
            LossAttrs blockAt = at;
            blockAt.start = b == 0 ? 0 : split.first;
            std::vector<Operand> in = {blocks[b], labels, rowMax, sumExp, scalar(0.75f)};
            if (given)
              in.push_back(scalar(9.0f));
            std::vector<Operand> cpu = {zeros(t, blocks[b].shape)};
            ASSERT_TRUE(runCpu("vocab_parallel_loss_grad", in, cpu, blockAt.attributes()));
            Operand mine = zeros(t, blocks[b].shape);
            softmaxGrad(in, mine, blockAt, true);
            expectClose("vocab_parallel_loss_grad block " + std::to_string(b) + " " + name, cpu[0],
                        mine);
          }
      }
}

TEST(CudaLoss, KernelsAskForTheirWorkspaceAndRefuseLess) {
  for (const char *name :
       {"cross_entropy", "cross_entropy_grad", "count_kept", "vocab_parallel_max",
        "vocab_parallel_stats", "vocab_parallel_loss", "vocab_parallel_loss_grad"})
    EXPECT_NE(cuda::findCudaKernel(name), nullptr) << name;
  TensorView logits{nullptr, DType::BF16, {2, 300, 1000}}, labels{nullptr, DType::I64, {2, 300}};
  TensorView one{nullptr, DType::F32, {}}, rowStat{nullptr, DType::F32, {2, 300}};
  Attributes attrs = LossAttrs().attributes();
  struct Case {
    const char *kernel;
    std::vector<TensorView> in, out;
    uint64_t bytes;
  } cases[] = {
      {"cross_entropy", {logits, labels}, {one}, 256 + 600 * 8},
      {"cross_entropy_grad", {logits, labels, one}, {logits}, 256},
      {"vocab_parallel_loss_grad", {logits, labels, rowStat, rowStat, one}, {logits}, 256},
  };
  for (const Case &c : cases) {
    const KernelInfo *k = cuda::findCudaKernel(c.kernel);
    ASSERT_NE(k, nullptr);
    ASSERT_NE(k->workspace, nullptr) << c.kernel;
    EXPECT_EQ(k->workspace(c.in, c.out, attrs), c.bytes) << c.kernel;
    Status s = k->run(KernelContext{}, c.in, c.out, attrs); // refused before any launch
    ASSERT_FALSE(s) << c.kernel;
    EXPECT_EQ(s.message(), std::string(c.kernel) + " needs " + std::to_string(c.bytes) +
                               " bytes of workspace; the backend gave 0");
  }
  for (const char *name :
       {"count_kept", "vocab_parallel_max", "vocab_parallel_stats", "vocab_parallel_loss"})
    EXPECT_EQ(cuda::findCudaKernel(name)->workspace, nullptr) << name;
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

TEST(CudaParity, LossKernelsMatchTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(31);
  for (DType t : {DType::F32, DType::BF16})
    for (const auto &shape : lossShapes())
      for (LossAttrs at : {LossAttrs{-100, true}, LossAttrs{-100, false}}) {
        int64_t vocab = shape.back();
        std::vector<int64_t> rowsShape = withoutLast(shape);
        Operand logits = randomOperand(t, shape, rng, -4, 4);
        Operand labels = labelsFor(DType::I64, rowsShape, vocab, at.ignore, rng);
        std::string name = where(t, shape, at);
        Attributes attrs = at.attributes();
        std::vector<Operand> cpu, gpu;
        runBoth("cross_entropy", {logits, labels}, {zeros(DType::F32, {})}, attrs, cpu, gpu);
        expectClose("cross_entropy " + name, cpu[0], gpu[0]);
        runBoth("cross_entropy", {logits, labels, scalar(3.0f)}, {zeros(DType::F32, {})}, attrs,
                cpu, gpu);
        expectClose("cross_entropy kept given " + name, cpu[0], gpu[0]);
        runBoth("cross_entropy_grad", {logits, labels, scalar(1.5f)}, {zeros(t, shape)}, attrs, cpu,
                gpu);
        expectClose("cross_entropy_grad " + name, cpu[0], gpu[0]);
        runBoth("count_kept", {labels}, {zeros(DType::F32, {})}, attrs, cpu, gpu);
        expectClose("count_kept " + name, cpu[0], gpu[0]);
        runBoth("vocab_parallel_max", {logits}, {zeros(DType::F32, rowsShape)}, attrs, cpu, gpu);
        expectClose("vocab_parallel_max " + name, cpu[0], gpu[0]);
        Operand rowMax = cpu[0];
        LossAttrs shifted = at;
        shifted.start = vocab / 2; // a block that holds only some rows' labels
        runBoth("vocab_parallel_stats", {logits, labels, rowMax},
                {zeros(DType::F32, rowsShape), zeros(DType::F32, rowsShape)}, shifted.attributes(),
                cpu, gpu);
        expectClose("vocab_parallel_stats sum_exp " + name, cpu[0], gpu[0]);
        expectClose("vocab_parallel_stats target " + name, cpu[1], gpu[1]);
        Operand sumExp = cpu[0], target = cpu[1];
        runBoth("vocab_parallel_loss", {rowMax, sumExp, target, labels}, {zeros(DType::F32, {})},
                attrs, cpu, gpu);
        expectClose("vocab_parallel_loss " + name, cpu[0], gpu[0]);
        runBoth("vocab_parallel_loss_grad", {logits, labels, rowMax, sumExp, scalar(0.5f)},
                {zeros(t, shape)}, shifted.attributes(), cpu, gpu);
        expectClose("vocab_parallel_loss_grad " + name, cpu[0], gpu[0]);
      }
}

TEST(CudaParity, CrossEntropyRefusesABadLabelAsTheCpu) {
  APC_REQUIRE_GPU();
  std::vector<Operand> in = {zeros(DType::F32, {2, 3, 5}), zeros(DType::I32, {2, 3})};
  int32_t labels[] = {1, -100, 5, -3, 2, 4};
  std::memcpy(in[1].bytes.data(), labels, sizeof labels);
  auto device = device::cudaDevice(0);
  ASSERT_TRUE(device) << device.message();
  for (const char *kernel : {"cross_entropy", "cross_entropy_grad"}) {
    bool grad = std::string(kernel) == "cross_entropy_grad";
    std::vector<Operand> inputs = in;
    if (grad)
      inputs.push_back(scalar(1.0f));
    std::vector<Operand> outputs = {grad ? zeros(DType::F32, {2, 3, 5}) : scalar(0.0f)};
    std::vector<Operand> cpuOut = outputs;
    Status cpu = runCpu(kernel, inputs, cpuOut, Attributes());
    ASSERT_FALSE(cpu);
    std::vector<void *> held;
    std::vector<TensorView> dIn, dOut;
    for (auto *list : {&inputs, &outputs})
      for (const Operand &o : *list) {
        auto memory = (*device)->allocate(o.bytes.size());
        ASSERT_TRUE(memory) << memory.message();
        ASSERT_TRUE((*device)->upload(*memory, o.bytes.data(), o.bytes.size()));
        held.push_back(*memory);
        (list == &inputs ? dIn : dOut).push_back({*memory, o.dtype, o.shape});
      }
    const KernelInfo *k = cuda::findCudaKernel(kernel);
    KernelContext context;
    context.workspaceBytes = k->workspace(dIn, dOut, Attributes());
    auto scratch = (*device)->allocate(context.workspaceBytes);
    ASSERT_TRUE(scratch) << scratch.message();
    held.push_back(*scratch);
    context.workspace = *scratch;
    Status gpu = k->run(context, dIn, dOut, Attributes());
    EXPECT_FALSE(gpu);
    EXPECT_EQ(gpu.message(), cpu.message());
    for (void *m : held)
      (*device)->release(m);
  }
}

} // namespace
} // namespace apc::kernels
