// Context parallelism in the CPU kernels: rope, rope_grad, attention and attention_grad on
// a device's part of the sequence (seq_shard_rank r of seq_shard_parts n: chunks r and
// 2n-1-r of 2n) against the same kernels on the whole sequence, the independent oracle
// being the whole-sequence run's rows at the part's positions. Per-row results (rope, the
// attention output, dQ) must be bitwise equal: each row sees the same keys in the same
// order. dK and dV of the parts are partial sums over their queries: summed over the n
// parts they equal the whole run's within 1e-5.
#include "runtime/kernels/cpu/CpuKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace apc::kernels {
namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    data.assign(size_t(n), 0.0f);
  }
  TensorView view() { return {data.data(), DType::F32, shape}; }
  int64_t rowSize() const { return shape[2] * shape[3]; } // [batch, seq, heads, dim]
};

Tensor random(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  for (float &x : t.data)
    x = normal(rng);
  return t;
}

// The whole-sequence position of row i of the part of `rank` (chunks of c rows).
int64_t positionOf(int64_t i, int64_t rank, int64_t parts, int64_t c) {
  return (i < c ? rank : 2 * parts - 1 - rank) * c + i % c;
}

// The part of `rank`: its rows of the [batch, seq, ...] tensor.
Tensor partOf(const Tensor &whole, int64_t rank, int64_t parts) {
  std::vector<int64_t> shape = whole.shape;
  shape[1] /= parts;
  Tensor part(shape);
  int64_t c = shape[1] / 2, row = whole.rowSize();
  for (int64_t b = 0; b < shape[0]; ++b)
    for (int64_t i = 0; i < shape[1]; ++i)
      std::copy_n(whole.data.begin() + ((b * whole.shape[1] + positionOf(i, rank, parts, c)) * row),
                  row, part.data.begin() + (b * shape[1] + i) * row);
  return part;
}

Attributes partAttributes(Attributes a, int64_t rank, int64_t parts) {
  Attribute r, n;
  r.name = "seq_shard_rank";
  r.i = rank;
  n.name = "seq_shard_parts";
  n.i = parts;
  a.set(r);
  a.set(n);
  return a;
}

void run(const char *kernel, std::vector<Tensor *> in, std::vector<Tensor *> out,
         const Attributes &attrs) {
  std::vector<TensorView> ins, outs;
  for (Tensor *t : in)
    ins.push_back(t->view());
  for (Tensor *t : out)
    outs.push_back(t->view());
  const KernelInfo *k = findCpuKernel(kernel);
  ASSERT_NE(k, nullptr);
  Status s = k->prepare(ins, outs, attrs);
  ASSERT_TRUE(s.isOk()) << kernel << ": " << s.message();
  s = k->run(KernelContext{}, ins, outs, attrs);
  ASSERT_TRUE(s.isOk()) << kernel << ": " << s.message();
}

Attributes ropeAttributes() {
  Attribute theta, type, factor, low, high, original;
  theta.name = "theta";
  theta.kind = Attribute::Kind::Float;
  theta.f = 500000.0;
  type.name = "rope_type";
  type.kind = Attribute::Kind::String;
  type.s = "llama3";
  factor.name = "factor";
  factor.kind = Attribute::Kind::Float;
  factor.f = 8.0;
  low.name = "low_freq_factor";
  low.kind = Attribute::Kind::Float;
  low.f = 1.0;
  high.name = "high_freq_factor";
  high.kind = Attribute::Kind::Float;
  high.f = 4.0;
  original.name = "original_max_position_embeddings";
  original.i = 16;
  return Attributes({theta, type, factor, low, high, original});
}

TEST(SequencePart, RopeRotatesEachRowAtItsWholePosition) {
  Tensor x = random({2, 24, 3, 8}, 1);
  for (const char *kernel : {"rope", "rope_grad"})
    for (int64_t parts : {2, 3}) {
      Tensor whole(x.shape);
      run(kernel, {&x}, {&whole}, ropeAttributes());
      for (int64_t rank = 0; rank < parts; ++rank) {
        Tensor in = partOf(x, rank, parts), out(in.shape);
        run(kernel, {&in}, {&out}, partAttributes(ropeAttributes(), rank, parts));
        EXPECT_EQ(out.data, partOf(whole, rank, parts).data)
            << kernel << " rank " << rank << " of " << parts;
      }
    }
}

TEST(SequencePart, AttentionQueriesSeeTheWholeKeysUpToTheirPosition) {
  Tensor q = random({2, 24, 4, 8}, 2), k = random({2, 24, 2, 8}, 3), v = random({2, 24, 2, 8}, 4);
  Tensor dy = random(q.shape, 5);
  Tensor y(q.shape), dq(q.shape), dk(k.shape), dv(v.shape);
  run("attention", {&q, &k, &v}, {&y}, Attributes());
  run("attention_grad", {&q, &k, &v, &dy}, {&dq, &dk, &dv}, Attributes());
  for (int64_t parts : {2, 3}) {
    Tensor dkSum(k.shape), dvSum(v.shape);
    for (int64_t rank = 0; rank < parts; ++rank) {
      SCOPED_TRACE("rank " + std::to_string(rank) + " of " + std::to_string(parts));
      Attributes attrs = partAttributes(Attributes(), rank, parts);
      Tensor qPart = partOf(q, rank, parts), dyPart = partOf(dy, rank, parts);
      Tensor yPart(qPart.shape), dqPart(qPart.shape), dkPart(k.shape), dvPart(v.shape);
      run("attention", {&qPart, &k, &v}, {&yPart}, attrs);
      EXPECT_EQ(yPart.data, partOf(y, rank, parts).data);
      run("attention_grad", {&qPart, &k, &v, &dyPart}, {&dqPart, &dkPart, &dvPart}, attrs);
      EXPECT_EQ(dqPart.data, partOf(dq, rank, parts).data);
      for (size_t i = 0; i < dk.data.size(); ++i) {
        dkSum.data[i] += dkPart.data[i];
        dvSum.data[i] += dvPart.data[i];
      }
    }
    for (size_t i = 0; i < dk.data.size(); ++i) {
      EXPECT_NEAR(dkSum.data[i], dk.data[i], 1e-5 * (1 + std::fabs(dk.data[i]))) << i;
      EXPECT_NEAR(dvSum.data[i], dv.data[i], 1e-5 * (1 + std::fabs(dv.data[i]))) << i;
    }
  }
}

TEST(SequencePart, RefusesAPartThatIsNotTwoChunksOrAKeyOfTheWrongLength) {
  Tensor q = random({1, 3, 2, 4}, 6), k = random({1, 6, 2, 4}, 7), y(q.shape);
  std::vector<TensorView> ins = {q.view(), k.view(), k.view()}, outs = {y.view()};
  const KernelInfo *attention = findCpuKernel("attention");
  Status s = attention->prepare(ins, outs, partAttributes(Attributes(), 0, 2));
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("a device's part of the sequence (3 rows) must be two equal chunks"),
            std::string::npos)
      << s.message();
  Tensor q4 = random({1, 4, 2, 4}, 8), y4(q4.shape);
  ins = {q4.view(), k.view(), k.view()};
  outs = {y4.view()};
  s = attention->prepare(ins, outs, partAttributes(Attributes(), 0, 2));
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("the key holding seq_shard_parts times the query's rows"),
            std::string::npos)
      << s.message();
  s = attention->prepare(ins, outs, partAttributes(Attributes(), 2, 2));
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("seq_shard_rank 2 is not a device of 2 seq_shard_parts"),
            std::string::npos)
      << s.message();
}

} // namespace
} // namespace apc::kernels
