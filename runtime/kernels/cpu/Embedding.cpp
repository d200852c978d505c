// Embedding lookup (a row gather) and its gradient (a row scatter-add).
//
// Design idea: ids are validated by one serial scan first, so a bad id is reported at
// its first position and the parallel part cannot fail. The gradient is not a racy
// scatter: a stable counting sort groups the positions by id, then each vocabulary
// row sums its own positions in position order in double, in parallel over rows. No
// atomics, and every row is bit-identical for any thread count.
//
// Vocabulary parallelism: with the Int attribute `vocab_start` the table (or the
// gradient) is the block of rows of global ids [vocab_start, vocab_start + rows). An
// id in the block uses row id - vocab_start; any other id (negative or absurd ones
// included: another device's block) gives a zero row in `embedding` and contributes
// nothing in `embedding_grad`. Without `vocab_start`, ids outside [0, rows) are errors.
#include "runtime/kernels/cpu/Common.h"

#include <cstring>

namespace apc::kernels::cpu {
namespace {

// The first id outside [0, vocab) as an error naming its position, or ok.
template <typename Id>
Status checkIds(const char *kernel, const TensorView &ids, int64_t vocab) {
  const Id *data = ids.as<Id>();
  int64_t n = ids.numElements();
  for (int64_t p = 0; p < n; ++p)
    if (data[p] < 0 || int64_t(data[p]) >= vocab)
      return Status::error(std::string(kernel) + ": token id " + std::to_string(data[p]) +
                           " at ids" + positionString(ids.shape, p) +
                           " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  return Status::ok();
}

// The row of global id `id` in a block of `rows` rows starting at `start`, or -1.
inline int64_t localRow(int64_t id, int64_t start, int64_t rows) {
  return id >= start && id - start < rows ? id - start : -1;
}

} // namespace

// The optional `vocab_start` of the vocabulary-parallel kernels (embedding,
// embedding_grad, vocab_parallel_stats, vocab_parallel_loss_grad): an Int >= 0. The op
// attribute `vocab_shard_axis` must have been resolved into it by the lowering.
Status checkVocabStart(const Checker &check, const Attributes &attrs) {
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "vocab_start", false));
  if (attrs.has("vocab_start") && attrs.getInt("vocab_start") < 0)
    return check.error("vocab_start must be non-negative, got " +
                       std::to_string(attrs.getInt("vocab_start")));
  if (attrs.has("vocab_shard_axis") && !attrs.has("vocab_start"))
    return check.error("vocab_shard_axis without vocab_start: the first vocabulary id of "
                       "this device's block must be resolved when lowering");
  return Status::ok();
}

namespace {

Status prepareEmbedding(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("embedding");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("weight", in[0], Kind::Float, 2));
  APC_RETURN_IF_ERROR(check.tensor("ids", in[1], Kind::Id));
  APC_RETURN_IF_ERROR(checkVocabStart(check, attrs));
  std::vector<int64_t> shape = in[1].shape;
  shape.push_back(in[0].shape[1]);
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], in[0].dtype));
  return check.shape("result", out[0], shape);
}

Status runEmbedding(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &weight = in[0], &ids = in[1];
  int64_t vocab = weight.shape[0], hidden = weight.shape[1], n = ids.numElements();
  size_t rowBytes = size_t(hidden) * dtypeSize(weight.dtype);
  bool block = attrs.has("vocab_start");
  int64_t start = attrs.getInt("vocab_start", 0);
  return dispatchId(ids.dtype, [&](auto idType) {
    using Id = decltype(idType);
    if (!block)
      APC_RETURN_IF_ERROR(checkIds<Id>("embedding", ids, vocab));
    const Id *idData = ids.as<Id>();
    const char *table = static_cast<const char *>(weight.data);
    char *result = static_cast<char *>(out[0].data);
    int threads = threadsFor(context, n * hidden / 4);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t p = 0; p < n; ++p) {
      int64_t row = localRow(int64_t(idData[p]), start, vocab);
      if (row >= 0)
        std::memcpy(result + p * rowBytes, table + row * rowBytes, rowBytes);
      else // another block's id: a zero row (all-zero bits are +0 in every float dtype)
        std::memset(result + p * rowBytes, 0, rowBytes);
    }
    return Status::ok();
  });
}

Status prepareEmbeddingGrad(const std::vector<TensorView> &in,
                            const std::vector<TensorView> &out, const Attributes &attrs) {
  Checker check("embedding_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(checkVocabStart(check, attrs));
  APC_RETURN_IF_ERROR(check.tensor("ids", in[0], Kind::Id));
  APC_RETURN_IF_ERROR(check.tensor("grad_output", in[1], Kind::Float, kRankAtLeast1));
  APC_RETURN_IF_ERROR(check.tensor("grad_weight", out[0], Kind::Float, 2));
  APC_RETURN_IF_ERROR(check.sameDtype("grad_output", in[1], "grad_weight", out[0]));
  std::vector<int64_t> idsShape(in[1].shape.begin(), in[1].shape.end() - 1);
  if (idsShape != in[0].shape || in[1].shape.back() != out[0].shape[1])
    return check.error("grad_output " + describe(in[1]) + " must be ids " + describe(in[0]) +
                       " plus the hidden dim of grad_weight " + describe(out[0]));
  return Status::ok();
}

Status runEmbeddingGrad(const KernelContext &context, const std::vector<TensorView> &in,
                        const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &ids = in[0], &grad = in[1], &gradWeight = out[0];
  int64_t vocab = gradWeight.shape[0], hidden = gradWeight.shape[1], n = ids.numElements();
  bool block = attrs.has("vocab_start");
  int64_t vocabStart = attrs.getInt("vocab_start", 0);
  return dispatchId(ids.dtype, [&](auto idType) {
    using Id = decltype(idType);
    if (!block)
      APC_RETURN_IF_ERROR(checkIds<Id>("embedding_grad", ids, vocab));
    const Id *idData = ids.as<Id>();
    // Stable counting sort of the positions whose id is in the block: positions of row
    // v are order[start[v] .. start[v + 1]).
    static thread_local std::vector<int64_t> startBuffer, orderBuffer;
    int64_t *start = scratch(startBuffer, size_t(vocab + 1));
    int64_t *order = scratch(orderBuffer, size_t(n));
    std::fill(start, start + vocab + 1, 0);
    for (int64_t p = 0; p < n; ++p)
      if (int64_t row = localRow(int64_t(idData[p]), vocabStart, vocab); row >= 0)
        ++start[row + 1];
    for (int64_t v = 0; v < vocab; ++v)
      start[v + 1] += start[v];
    for (int64_t p = 0; p < n; ++p) // start[v] advances to the end of v's range
      if (int64_t row = localRow(int64_t(idData[p]), vocabStart, vocab); row >= 0)
        order[start[row]++] = p;
    for (int64_t v = vocab; v > 0; --v) // and is moved back to its beginning
      start[v] = start[v - 1];
    start[0] = 0;
    int threads = threadsFor(context, (vocab + n) * hidden);
    dispatchFloat(grad.dtype, [&](auto storage) {
      using S = decltype(storage);
      using T = typename S::T;
      const T *dy = grad.as<T>();
      T *dw = gradWeight.as<T>();
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic, 64)
      for (int64_t v = 0; v < vocab; ++v) {
        T *row = dw + v * hidden;
        int64_t begin = start[v], end = start[v + 1];
        if (begin == end) {
          std::memset(static_cast<void *>(row), 0, sizeof(T) * size_t(hidden));
          continue;
        }
        static thread_local std::vector<double> accBuffer;
        double *acc = scratch(accBuffer, size_t(hidden));
        std::fill(acc, acc + hidden, 0.0);
        for (int64_t k = begin; k < end; ++k) {
          const T *src = dy + order[k] * hidden;
#pragma omp simd
          for (int64_t h = 0; h < hidden; ++h)
            acc[h] += double(S::load(src[h]));
        }
        for (int64_t h = 0; h < hidden; ++h)
          row[h] = storeDouble<S>(acc[h]);
      }
    });
    return Status::ok();
  });
}

} // namespace

std::vector<KernelInfo> embeddingKernels() {
  return {
      {"embedding", runEmbedding, prepareEmbedding},
      {"embedding_grad", runEmbeddingGrad, prepareEmbeddingGrad},
  };
}

} // namespace apc::kernels::cpu
