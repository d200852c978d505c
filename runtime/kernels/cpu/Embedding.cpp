// Embedding lookup (a row gather) and its gradient (a row scatter-add).
//
// Design idea: ids are validated by one serial scan first, so a bad id is reported at
// its first position and the parallel part cannot fail. The gradient is not a racy
// scatter: a stable counting sort groups the positions by id, then each vocabulary
// row sums its own positions in position order in double, in parallel over rows. No
// atomics, and every row is bit-identical for any thread count.
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

Status prepareEmbedding(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &) {
  Checker check("embedding");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
  APC_RETURN_IF_ERROR(check.tensor("weight", in[0], Kind::Float, 2));
  APC_RETURN_IF_ERROR(check.tensor("ids", in[1], Kind::Id));
  std::vector<int64_t> shape = in[1].shape;
  shape.push_back(in[0].shape[1]);
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], in[0].dtype));
  return check.shape("result", out[0], shape);
}

Status runEmbedding(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &) {
  const TensorView &weight = in[0], &ids = in[1];
  int64_t vocab = weight.shape[0], hidden = weight.shape[1], n = ids.numElements();
  size_t rowBytes = size_t(hidden) * dtypeSize(weight.dtype);
  return dispatchId(ids.dtype, [&](auto idType) {
    using Id = decltype(idType);
    APC_RETURN_IF_ERROR(checkIds<Id>("embedding", ids, vocab));
    const Id *idData = ids.as<Id>();
    const char *table = static_cast<const char *>(weight.data);
    char *result = static_cast<char *>(out[0].data);
    int threads = threadsFor(context, n * hidden / 4);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t p = 0; p < n; ++p)
      std::memcpy(result + p * rowBytes, table + int64_t(idData[p]) * rowBytes, rowBytes);
    return Status::ok();
  });
}

Status prepareEmbeddingGrad(const std::vector<TensorView> &in,
                            const std::vector<TensorView> &out, const Attributes &) {
  Checker check("embedding_grad");
  APC_RETURN_IF_ERROR(check.arity(in, out, 2, 2, 1));
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
                        const std::vector<TensorView> &out, const Attributes &) {
  const TensorView &ids = in[0], &grad = in[1], &gradWeight = out[0];
  int64_t vocab = gradWeight.shape[0], hidden = gradWeight.shape[1], n = ids.numElements();
  return dispatchId(ids.dtype, [&](auto idType) {
    using Id = decltype(idType);
    APC_RETURN_IF_ERROR(checkIds<Id>("embedding_grad", ids, vocab));
    const Id *idData = ids.as<Id>();
    // Stable counting sort: positions of id v are order[start[v] .. start[v + 1]).
    static thread_local std::vector<int64_t> startBuffer, orderBuffer;
    int64_t *start = scratch(startBuffer, size_t(vocab + 1));
    int64_t *order = scratch(orderBuffer, size_t(n));
    std::fill(start, start + vocab + 1, 0);
    for (int64_t p = 0; p < n; ++p)
      ++start[idData[p] + 1];
    for (int64_t v = 0; v < vocab; ++v)
      start[v + 1] += start[v];
    for (int64_t p = 0; p < n; ++p) // start[v] advances to the end of v's range
      order[start[idData[p]]++] = p;
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
