// The CUDA optimizer kernels (runtime/kernels/cuda/Optimizer.cu) against the CPU
// backend's (runtime/kernels/cpu/Optimizer.cpp).
//
// Host tests, run everywhere: grad_norm's batches and chunks cover every element once;
// grad_norm's launches emulated on the host as Optimizer.cu makes them (a block per chunk,
// thread t taking elements t, t + T, ..., folded in BlockFold.h's order; one block adding
// the partials) against the CPU's result; adamw's scalars and per-element update
// (OptimizerMath.h) bit for bit against the CPU's, attributes and dtypes varied; the
// workspace size and the refusal of too little. CudaParity.GradNorm / AdamW run the
// kernels on a GPU (skipped without one).
#include "test/unit/kernels/CudaParity.h"
#include "test/unit/kernels/cuda/EmulatedBlock.h"

#include "runtime/kernels/cuda/BlockFold.h"
#include "runtime/kernels/cuda/OptimizerMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace apc::kernels {
namespace {

using namespace testing;
using cuda::Plus;
using namespace cuda::optimizer;

std::vector<TensorView> viewsOf(std::vector<Operand> &operands) {
  std::vector<TensorView> views;
  for (Operand &o : operands)
    views.push_back({o.bytes.data(), o.dtype, o.shape});
  return views;
}

// grad_norm as launched: the chunk blocks' partials, then the finishing block.
float gradNorm(std::vector<Operand> grads, bool squared) {
  std::vector<TensorView> views = viewsOf(grads);
  std::vector<double> partials(size_t(normPartials(views)), std::nan(""));
  NormBatch batch;
  size_t next = 0;
  int64_t base = 0;
  while (nextNormBatch(views, next, base, batch))
    for (int64_t c = 0; c < batch.firstChunk[batch.size]; ++c) {
      NormChunk chunk = normChunk(batch, c);
      const Operand *g = nullptr; // the operand whose data the entry names
      for (const Operand &o : grads)
        if (o.bytes.data() == batch.data[chunk.entry])
          g = &o;
      partials[size_t(batch.base + c)] = emulateBlock(
          int(kNormThreads), chunk.end - chunk.begin, 0.0,
          [&](double s, int64_t i) { return s + squareTerm(float(g->at(chunk.begin + i))); },
          Plus());
    }
  double sum = emulateBlock(
      int(kNormFinishThreads), int64_t(partials.size()), 0.0,
      [&](double s, int64_t c) { return s + partials[size_t(c)]; }, Plus());
  return normResult(sum, squared);
}

// adamw as launched: the scalars from the step, lr and grad_norm operands, then each
// element (inputs: param, grad, exp_avg, exp_avg_sq, step, lr[, grad_norm]).
std::vector<Operand> adamw(const std::vector<Operand> &in, const Attributes &attrs) {
  AdamWHyper h;
  h.beta1 = attrs.getFloat("beta1", 0.9);
  h.beta2 = attrs.getFloat("beta2", 0.999);
  h.epsilon = attrs.getFloat("epsilon", 1e-8);
  h.weightDecay = attrs.getFloat("weight_decay", 0.01);
  h.clip = attrs.has("max_grad_norm");
  h.maxGradNorm = attrs.getFloat("max_grad_norm", 0.0);
  h.skipNonFinite = in.size() == 7 && attrs.getBool("skip_non_finite");
  AdamWScalars s =
      adamwScalars(h, int64_t(in[4].at(0)), in[5].at(0), in.size() == 7 ? in[6].at(0) : 0.0);
  std::vector<Operand> out = {in[0], in[2], in[3]};
  for (int64_t i = 0; i < in[0].count(); ++i) {
    AdamWElement e = adamwElement(s, float(in[1].at(i)), float(in[0].at(i)), float(in[2].at(i)),
                                  float(in[3].at(i)));
    dataOf<float>(out[0])[i] = e.param;
    dataOf<float>(out[1])[i] = e.expAvg;
    dataOf<float>(out[2])[i] = e.expAvgSq;
  }
  return out;
}

Operand scalarOf(DType dtype, double v) {
  Operand o = zeros(dtype, {});
  o.set(0, v);
  return o;
}

// ---- Host tests ---------------------------------------------------------------------

TEST(CudaOptimizer, GradNormBatchesCoverEveryElementOnce) {
  // Empty gradients, chunk edges, and more gradients than one launch takes.
  std::vector<int64_t> sizes = {0, 1, kNormChunk, kNormChunk + 1, 40000, 0, 7};
  for (int i = 0; i < 2 * kNormBatch + 5; ++i)
    sizes.push_back(1 + i % 3 * 9000);
  std::vector<std::vector<float>> data;
  std::vector<TensorView> grads;
  for (int64_t n : sizes) {
    data.emplace_back(size_t(n));
    grads.push_back({data.back().data(), DType::F32, {n}});
  }
  std::vector<std::vector<int>> covered(sizes.size());
  for (size_t g = 0; g < sizes.size(); ++g)
    covered[g].assign(size_t(sizes[g]), 0);
  std::vector<int> partialWrites(size_t(normPartials(grads)), 0);
  NormBatch batch;
  size_t next = 0;
  int64_t base = 0;
  int launches = 0;
  while (nextNormBatch(grads, next, base, batch)) {
    ++launches;
    ASSERT_LE(batch.size, kNormBatch);
    for (int64_t c = 0; c < batch.firstChunk[batch.size]; ++c) {
      NormChunk chunk = normChunk(batch, c);
      ASSERT_GE(chunk.entry, 0);
      ASSERT_LT(chunk.entry, batch.size);
      ASSERT_LT(chunk.begin, chunk.end);
      ASSERT_LE(chunk.end - chunk.begin, kNormChunk);
      size_t g = 0;
      while (grads[g].data != batch.data[chunk.entry])
        ++g;
      for (int64_t i = chunk.begin; i < chunk.end; ++i)
        ++covered[g][size_t(i)];
      ++partialWrites[size_t(batch.base + c)];
    }
  }
  EXPECT_EQ(launches, 3); // 140 non-empty gradients, 64 a launch
  EXPECT_EQ(base, int64_t(partialWrites.size()));
  for (size_t g = 0; g < sizes.size(); ++g)
    for (size_t i = 0; i < covered[g].size(); ++i)
      ASSERT_EQ(covered[g][i], 1) << "gradient " << g << " element " << i;
  for (int w : partialWrites)
    EXPECT_EQ(w, 1);
}

TEST(CudaOptimizer, GradNormAsLaunchedMatchesTheCpu) {
  std::mt19937 rng(41);
  std::vector<std::vector<Operand>> cases = {
      {randomOperand(DType::F32, {1}, rng)},
      {randomOperand(DType::BF16, {3, 5}, rng), zeros(DType::F32, {0}),
       randomOperand(DType::F32, {kNormChunk + 1}, rng),
       randomOperand(DType::F16, {2, 20000}, rng)},
      {zeros(DType::F32, {0})},
  };
  std::vector<Operand> many; // more than a launch's gradients
  for (int i = 0; i < kNormBatch + 3; ++i)
    many.push_back(randomOperand(i % 2 ? DType::BF16 : DType::F32, {1 + i * 37}, rng));
  cases.push_back(many);
  for (const auto &grads : cases)
    for (bool squared : {false, true}) {
      std::vector<Operand> cpu = {zeros(DType::F32, {})};
      Attributes attrs({boolAttr("squared", squared)});
      Status s = runCpu("grad_norm", grads, cpu, attrs);
      ASSERT_TRUE(s) << s.message();
      Operand mine = scalarOf(DType::F32, gradNorm(grads, squared));
      expectClose("grad_norm of " + std::to_string(grads.size()) + " gradients" +
                      (squared ? " squared" : ""),
                  cpu[0], mine, 1e-12);
    }
}

TEST(CudaOptimizer, AdamWIsTheCpuBackendsBitForBit) {
  std::mt19937 rng(42);
  struct Case {
    const char *what;
    std::vector<Attribute> attrs;
    bool gradNorm;
    double norm;
  } cases[] = {
      {"defaults", {}, false, 0},
      {"hyperparameters",
       {floatAttr("beta1", 0.8), floatAttr("beta2", 0.95), floatAttr("epsilon", 1e-6),
        floatAttr("weight_decay", 0.1)},
       false,
       0},
      {"no decay", {floatAttr("weight_decay", 0.0)}, false, 0},
      {"clipped", {floatAttr("max_grad_norm", 1.0)}, true, 3.5},
      {"under the clip", {floatAttr("max_grad_norm", 10.0)}, true, 3.5},
      {"clip of a NaN norm", {floatAttr("max_grad_norm", 1.0)}, true, NAN},
      {"finite, skip set", {boolAttr("skip_non_finite", true)}, true, 2.0},
      {"infinite, skipped", {boolAttr("skip_non_finite", true)}, true, INFINITY},
      {"NaN, skipped",
       {boolAttr("skip_non_finite", true), floatAttr("max_grad_norm", 1.0)},
       true,
       NAN},
      {"NaN, skip unset", {boolAttr("skip_non_finite", false)}, true, NAN},
  };
  for (const Case &c : cases)
    for (DType gradType : {DType::F32, DType::BF16, DType::F16})
      for (DType stepType : {DType::I32, DType::I64})
        for (int64_t step : {int64_t(1), int64_t(2), int64_t(1000)}) {
          int64_t n = 1000;
          std::vector<Operand> in = {randomOperand(DType::F32, {n}, rng),
                                     randomOperand(gradType, {n}, rng, -3, 3),
                                     randomOperand(DType::F32, {n}, rng, -0.1, 0.1),
                                     randomOperand(DType::F32, {n}, rng, 0, 0.01),
                                     scalarOf(stepType, double(step)),
                                     scalarOf(DType::F32, 3e-4)};
          if (c.gradNorm)
            in.push_back(scalarOf(gradType, c.norm));
          Attributes attrs(c.attrs);
          std::vector<Operand> cpu = {zeros(DType::F32, {n}), zeros(DType::F32, {n}),
                                      zeros(DType::F32, {n})};
          Status s = runCpu("adamw", in, cpu, attrs);
          ASSERT_TRUE(s) << c.what << ": " << s.message();
          std::vector<Operand> mine = adamw(in, attrs);
          for (int k = 0; k < 3; ++k)
            EXPECT_EQ(mine[size_t(k)].bytes, cpu[size_t(k)].bytes)
                << c.what << ", output " << k << ", grad " << dtypeName(gradType) << ", step "
                << step;
        }
}

TEST(CudaOptimizer, AdamWPoisonsAStepBelowOneThatTheCpuRefuses) {
  std::mt19937 rng(43);
  std::vector<Operand> in = {randomOperand(DType::F32, {4}, rng),
                             randomOperand(DType::F32, {4}, rng),
                             zeros(DType::F32, {4}),
                             zeros(DType::F32, {4}),
                             scalarOf(DType::I64, 0),
                             scalarOf(DType::F32, 1e-3)};
  std::vector<Operand> cpu = {zeros(DType::F32, {4}), zeros(DType::F32, {4}),
                              zeros(DType::F32, {4})};
  EXPECT_FALSE(runCpu("adamw", in, cpu, Attributes()));
  for (const Operand &o : adamw(in, Attributes()))
    for (int64_t i = 0; i < o.count(); ++i)
      EXPECT_TRUE(std::isnan(o.at(i)));
}

TEST(CudaOptimizer, GradNormAsksForItsWorkspaceAndRefusesLess) {
  const KernelInfo *k = cuda::findCudaKernel("grad_norm");
  ASSERT_NE(k, nullptr);
  ASSERT_NE(k->workspace, nullptr);
  ASSERT_NE(cuda::findCudaKernel("adamw"), nullptr);
  EXPECT_EQ(cuda::findCudaKernel("adamw")->workspace, nullptr);
  std::vector<TensorView> in = {{nullptr, DType::BF16, {4096, 4096}},
                                {nullptr, DType::F32, {0}},
                                {nullptr, DType::F32, {kNormChunk + 1}}};
  std::vector<TensorView> out = {{nullptr, DType::F32, {}}};
  // 4096 x 4096 / 16384 = 1024 chunks, then 2: a double each.
  EXPECT_EQ(k->workspace(in, out, Attributes()), (1024u + 2) * 8);
  Status s = k->run(KernelContext{}, in, out, Attributes());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.message(), "grad_norm needs 8208 bytes of workspace; the backend gave 0");
}

// ---- Parity with the CPU backend (needs a GPU) ---------------------------------------

TEST(CudaParity, GradNormMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(51);
  for (DType t : {DType::F32, DType::BF16}) {
    std::vector<Operand> grads = {randomOperand(t, {1}, rng), zeros(t, {0}),
                                  randomOperand(t, {kNormChunk + 1}, rng),
                                  randomOperand(t, {600000}, rng)};
    for (int i = 0; i < kNormBatch + 3; ++i) // a second launch
      grads.push_back(randomOperand(i % 2 ? DType::F32 : t, {1 + i * 37}, rng));
    for (bool squared : {false, true}) {
      std::vector<Operand> cpu, gpu;
      runBoth("grad_norm", grads, {zeros(DType::F32, {})},
              Attributes({boolAttr("squared", squared)}), cpu, gpu);
      expectClose(std::string("grad_norm ") + dtypeName(t) + (squared ? " squared" : ""), cpu[0],
                  gpu[0], 1e-6);
    }
    std::vector<Operand> cpu, gpu;
    runBoth("grad_norm", {zeros(t, {0})}, {zeros(DType::F32, {})}, Attributes(), cpu, gpu);
    expectClose("grad_norm of nothing", cpu[0], gpu[0]);
  }
}

TEST(CudaParity, AdamWMatchesTheCpu) {
  APC_REQUIRE_GPU();
  std::mt19937 rng(52);
  for (DType t : {DType::F32, DType::BF16})
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(600000)})
      for (double norm : {3.5, double(INFINITY)}) {
        std::vector<Operand> in = {randomOperand(DType::F32, {n}, rng),
                                   randomOperand(t, {n}, rng, -3, 3),
                                   randomOperand(DType::F32, {n}, rng, -0.1, 0.1),
                                   randomOperand(DType::F32, {n}, rng, 0, 0.01),
                                   scalarOf(DType::I64, 7),
                                   scalarOf(DType::F32, 3e-4),
                                   scalarOf(t, norm)};
        Attributes attrs({floatAttr("max_grad_norm", 1.0), boolAttr("skip_non_finite", true)});
        std::vector<Operand> outputs = {zeros(DType::F32, {n}), zeros(DType::F32, {n}),
                                        zeros(DType::F32, {n})};
        std::vector<Operand> cpu, gpu;
        runBoth("adamw", in, outputs, attrs, cpu, gpu);
        std::string name = std::string("adamw ") + dtypeName(t) + " n=" + std::to_string(n) +
                           " norm " + std::to_string(norm);
        // The same operations in the same order: equal but for pow's last double bit.
        expectClose(name + " param", cpu[0], gpu[0], 1e-6);
        expectClose(name + " exp_avg", cpu[1], gpu[1], 1e-6);
        expectClose(name + " exp_avg_sq", cpu[2], gpu[2], 1e-6);
      }
}

} // namespace
} // namespace apc::kernels
