// Layout kernels: transpose, reshape, slice, reduce_sum and broadcast.
//
// Design idea: before looping, the shapes are simplified. Dims of size 1 are dropped
// and neighbouring dims that are treated alike (both reduced, both kept, both
// broadcast) are merged, so that any reduce_sum or broadcast becomes "outer groups ×
// one contiguous innermost group" and the innermost loop is unit-stride. Each output
// element is produced by exactly one task with a fixed summation order (double
// accumulators), so results are identical for any thread count.
#include "runtime/kernels/cpu/Common.h"

#include <cstring>

namespace apc::kernels::cpu {
namespace {

// ---- transpose ----------------------------------------------------------------------

Status prepareTranspose(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("transpose");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Any));
  APC_RETURN_IF_ERROR(check.intsAttr(attrs, "permutation"));
  std::vector<int64_t> perm = attrs.getInts("permutation");
  int64_t rank = int64_t(in[0].shape.size());
  if (int64_t(perm.size()) != rank)
    return check.error("permutation " + shapeString(perm) + " has " +
                       std::to_string(perm.size()) + " entries but input " +
                       describe(in[0]) + " has rank " + std::to_string(rank));
  std::vector<bool> seen(perm.size(), false);
  std::vector<int64_t> shape;
  for (int64_t d : perm) {
    if (d < 0 || d >= rank || seen[d])
      return check.error("permutation " + shapeString(perm) +
                         " is not a permutation of the dims of input " + describe(in[0]));
    seen[d] = true;
    shape.push_back(in[0].shape[d]);
  }
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], in[0].dtype));
  return check.shape("result", out[0], shape);
}

template <typename T>
void transposeElements(const KernelContext &context, const TensorView &x, const TensorView &y,
                       const std::vector<int64_t> &perm) {
  size_t rank = perm.size();
  const T *src = x.as<T>();
  T *dst = y.as<T>();
  if (rank == 0) {
    dst[0] = src[0];
    return;
  }
  std::vector<int64_t> inStrides(rank, 1);
  for (int64_t d = int64_t(rank) - 2; d >= 0; --d)
    inStrides[d] = inStrides[d + 1] * x.shape[d + 1];
  // Source stride of each output dim.
  std::vector<int64_t> sourceStride(rank);
  for (size_t d = 0; d < rank; ++d)
    sourceStride[d] = inStrides[perm[d]];
  int64_t inner = y.shape.back(), innerStride = sourceStride.back();
  int64_t rows = rowsOf(y.shape);
  int threads = threadsFor(context, rows * inner);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t source = 0, rest = row;
    for (int64_t d = int64_t(rank) - 2; d >= 0; --d) {
      source += (rest % y.shape[d]) * sourceStride[d];
      rest /= y.shape[d];
    }
    T *to = dst + row * inner;
    if (innerStride == 1) {
      std::memcpy(to, src + source, sizeof(T) * size_t(inner));
    } else {
      for (int64_t i = 0; i < inner; ++i)
        to[i] = src[source + i * innerStride];
    }
  }
}

Status runTranspose(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  std::vector<int64_t> perm = attrs.getInts("permutation");
  if (out[0].numElements() == 0)
    return Status::ok();
  switch (dtypeSize(in[0].dtype)) {
  case 2: transposeElements<uint16_t>(context, in[0], out[0], perm); break;
  case 4: transposeElements<uint32_t>(context, in[0], out[0], perm); break;
  default: transposeElements<uint64_t>(context, in[0], out[0], perm); break;
  }
  return Status::ok();
}

// ---- reshape ------------------------------------------------------------------------

Status prepareReshape(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                      const Attributes &) {
  Checker check("reshape");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Any));
  APC_RETURN_IF_ERROR(check.tensor("result", out[0], Kind::Any));
  APC_RETURN_IF_ERROR(check.sameDtype("input", in[0], "result", out[0]));
  if (in[0].numElements() != out[0].numElements())
    return check.error("result " + describe(out[0]) + " must have as many elements as input " +
                       describe(in[0]));
  return Status::ok();
}

Status runReshape(const KernelContext &, const std::vector<TensorView> &in,
                  const std::vector<TensorView> &out, const Attributes &) {
  if (in[0].data != out[0].data)
    std::memmove(out[0].data, in[0].data,
                 size_t(in[0].numElements()) * dtypeSize(in[0].dtype));
  return Status::ok();
}

// ---- slice: a contiguous block of one dim (a pipeline's micro-batch) ------------------

Status prepareSlice(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                    const Attributes &attrs) {
  Checker check("slice");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Any));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "dim", true));
  APC_RETURN_IF_ERROR(check.intAttr(attrs, "offset", true));
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], in[0].dtype));
  int64_t dim = attrs.getInt("dim"), offset = attrs.getInt("offset");
  int64_t rank = int64_t(in[0].shape.size());
  if (dim < 0 || dim >= rank || out[0].shape.size() != in[0].shape.size())
    return check.error("dim " + std::to_string(dim) + " is not a dim of input " +
                       describe(in[0]) + " and result " + describe(out[0]));
  std::vector<int64_t> shape = in[0].shape;
  shape[dim] = out[0].shape[dim];
  APC_RETURN_IF_ERROR(check.shape("result", out[0], shape));
  if (offset < 0 || offset + shape[dim] > in[0].shape[dim])
    return check.error("block [" + std::to_string(offset) + ", " +
                       std::to_string(offset + shape[dim]) + ") of dim " + std::to_string(dim) +
                       " is outside input " + describe(in[0]));
  return Status::ok();
}

Status runSlice(const KernelContext &, const std::vector<TensorView> &in,
                const std::vector<TensorView> &out, const Attributes &attrs) {
  int64_t dim = attrs.getInt("dim"), offset = attrs.getInt("offset");
  const TensorView &x = in[0], &y = out[0];
  // outer blocks x (rows of `dim`) x inner contiguous elements
  int64_t outer = 1, inner = int64_t(dtypeSize(x.dtype));
  for (int64_t d = 0; d < dim; ++d)
    outer *= x.shape[d];
  for (size_t d = size_t(dim) + 1; d < x.shape.size(); ++d)
    inner *= x.shape[d];
  const auto *src = static_cast<const uint8_t *>(x.data);
  auto *dst = static_cast<uint8_t *>(y.data);
  size_t block = size_t(y.shape[dim] * inner);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + size_t(o) * block, src + size_t(o * x.shape[dim] + offset) * size_t(inner),
                block);
  return Status::ok();
}

// ---- Shape simplification shared by reduce_sum and broadcast --------------------------

// A run of neighbouring dims treated alike, merged into one.
struct Group {
  int64_t size;
  bool marked; // reduced (reduce_sum) or broadcast (broadcast)
};

// Drops dims of size 1 and merges neighbours with the same mark.
std::vector<Group> simplify(const std::vector<int64_t> &shape, const std::vector<bool> &marked) {
  std::vector<Group> groups;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1)
      continue;
    if (!groups.empty() && groups.back().marked == marked[d])
      groups.back().size *= shape[d];
    else
      groups.push_back({shape[d], bool(marked[d])});
  }
  return groups;
}

// Every offset sum_k index_k * stride_k over the index space of `dims` ({size, stride}
// pairs), in row-major order. One entry ({0}) when `dims` is empty.
std::vector<int64_t> offsets(const std::vector<std::pair<int64_t, int64_t>> &dims) {
  std::vector<int64_t> result{0};
  for (auto [size, stride] : dims) {
    std::vector<int64_t> next;
    next.reserve(result.size() * size_t(size));
    for (int64_t base : result)
      for (int64_t i = 0; i < size; ++i)
        next.push_back(base + i * stride);
    result = std::move(next);
  }
  return result;
}

// ---- reduce_sum ---------------------------------------------------------------------

Status prepareReduceSum(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("reduce_sum");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.intsAttr(attrs, "dims"));
  APC_RETURN_IF_ERROR(check.boolAttr(attrs, "keep_dims"));
  std::vector<int64_t> dims = attrs.getInts("dims");
  int64_t rank = int64_t(in[0].shape.size());
  std::vector<bool> reduced(size_t(rank), false);
  for (int64_t d : dims) {
    if (d < 0 || d >= rank || reduced[d])
      return check.error("dims " + shapeString(dims) + " must be distinct dims of input " +
                         describe(in[0]));
    reduced[d] = true;
  }
  bool keepDims = attrs.getBool("keep_dims", false);
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d])
      shape.push_back(in[0].shape[d]);
    else if (keepDims)
      shape.push_back(1);
  }
  APC_RETURN_IF_ERROR(check.dtype("result", out[0], in[0].dtype));
  return check.shape("result", out[0], shape);
}

Status runReduceSum(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  const TensorView &x = in[0];
  std::vector<bool> reduced(x.shape.size(), false);
  for (int64_t d : attrs.getInts("dims"))
    reduced[d] = true;
  std::vector<Group> groups = simplify(x.shape, reduced);
  dispatchFloat(x.dtype, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    const T *src = x.as<T>();
    T *dst = out[0].as<T>();
    int64_t outCount = out[0].numElements();
    if (x.numElements() == 0) { // an empty reduction: zeros
      for (int64_t i = 0; i < outCount; ++i)
        dst[i] = S::store(0.0f);
      return;
    }
    // Input strides of the groups; the innermost group is contiguous.
    std::vector<int64_t> strides(groups.size(), 1);
    for (int64_t g = int64_t(groups.size()) - 2; g >= 0; --g)
      strides[g] = strides[g + 1] * groups[g + 1].size;
    bool innerReduced = !groups.empty() && groups.back().marked;
    int64_t inner = groups.empty() ? 1 : groups.back().size;
    std::vector<std::pair<int64_t, int64_t>> keptDims, reducedDims;
    for (size_t g = 0; g + 1 < groups.size(); ++g)
      (groups[g].marked ? reducedDims : keptDims).push_back({groups[g].size, strides[g]});
    std::vector<int64_t> kept = offsets(keptDims), red = offsets(reducedDims);
    int64_t keptCount = int64_t(kept.size()), redCount = int64_t(red.size());
    int threads = threadsFor(context, x.numElements());
    if (innerReduced) {
      // out[o] = sum over r, l of x[kept[o] + red[r] + l].
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
      for (int64_t o = 0; o < keptCount; ++o) {
        double sum = 0;
        for (int64_t r = 0; r < redCount; ++r) {
          const T *run = src + kept[o] + red[r];
#pragma omp simd reduction(+ : sum)
          for (int64_t l = 0; l < inner; ++l)
            sum += double(S::load(run[l]));
        }
        dst[o] = storeDouble<S>(sum);
      }
    } else {
      // out[o * inner + c] = sum over r of x[kept[o] + red[r] + c], in column chunks.
      constexpr int64_t kChunk = 256;
      int64_t chunks = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
      for (int64_t task = 0; task < keptCount * chunks; ++task) {
        int64_t o = task / chunks, begin = (task % chunks) * kChunk;
        int64_t width = std::min(kChunk, inner - begin);
        double acc[kChunk] = {};
        for (int64_t r = 0; r < redCount; ++r) {
          const T *run = src + kept[o] + red[r] + begin;
#pragma omp simd
          for (int64_t c = 0; c < width; ++c)
            acc[c] += double(S::load(run[c]));
        }
        for (int64_t c = 0; c < width; ++c)
          dst[o * inner + begin + c] = storeDouble<S>(acc[c]);
      }
    }
  });
  return Status::ok();
}

// ---- broadcast ----------------------------------------------------------------------

Status prepareBroadcast(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                        const Attributes &attrs) {
  Checker check("broadcast");
  APC_RETURN_IF_ERROR(check.arity(in, out, 1, 1, 1));
  APC_RETURN_IF_ERROR(check.tensor("input", in[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.tensor("result", out[0], Kind::Float));
  APC_RETURN_IF_ERROR(check.sameDtype("input", in[0], "result", out[0]));
  APC_RETURN_IF_ERROR(check.intsAttr(attrs, "dims"));
  std::vector<int64_t> dims = attrs.getInts("dims");
  int64_t rank = int64_t(out[0].shape.size());
  std::vector<bool> added(size_t(rank), false);
  for (int64_t d : dims) {
    if (d < 0 || d >= rank || added[d])
      return check.error("dims " + shapeString(dims) + " must be distinct dims of result " +
                         describe(out[0]));
    added[d] = true;
  }
  std::vector<int64_t> expected;
  for (int64_t d = 0; d < rank; ++d)
    if (!added[d])
      expected.push_back(out[0].shape[d]);
  if (expected != in[0].shape)
    return check.error("input " + describe(in[0]) + " must be result " + describe(out[0]) +
                       " without dims " + shapeString(dims));
  return Status::ok();
}

template <typename T>
void broadcastElements(const KernelContext &context, const T *src, T *dst,
                       const std::vector<Group> &groups, int64_t total) {
  // Input strides of the groups (0 for broadcast ones).
  std::vector<int64_t> strides(groups.size(), 0);
  int64_t stride = 1;
  for (int64_t g = int64_t(groups.size()) - 1; g >= 0; --g)
    if (!groups[g].marked) {
      strides[g] = stride;
      stride *= groups[g].size;
    }
  int64_t inner = groups.empty() ? 1 : groups.back().size;
  bool innerBroadcast = !groups.empty() && groups.back().marked;
  int64_t rows = total / inner;
  int threads = threadsFor(context, total);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t source = 0, rest = row;
    for (int64_t g = int64_t(groups.size()) - 2; g >= 0; --g) {
      source += (rest % groups[g].size) * strides[g];
      rest /= groups[g].size;
    }
    T *to = dst + row * inner;
    if (innerBroadcast)
      std::fill(to, to + inner, src[source]);
    else
      std::memcpy(to, src + source, sizeof(T) * size_t(inner));
  }
}

Status runBroadcast(const KernelContext &context, const std::vector<TensorView> &in,
                    const std::vector<TensorView> &out, const Attributes &attrs) {
  std::vector<bool> added(out[0].shape.size(), false);
  for (int64_t d : attrs.getInts("dims"))
    added[d] = true;
  std::vector<Group> groups = simplify(out[0].shape, added);
  int64_t total = out[0].numElements();
  if (total == 0)
    return Status::ok();
  if (dtypeSize(in[0].dtype) == 2)
    broadcastElements(context, in[0].as<uint16_t>(), out[0].as<uint16_t>(), groups, total);
  else
    broadcastElements(context, in[0].as<uint32_t>(), out[0].as<uint32_t>(), groups, total);
  return Status::ok();
}

} // namespace

std::vector<KernelInfo> layoutKernels() {
  return {
      {"transpose", runTranspose, prepareTranspose},
      {"reshape", runReshape, prepareReshape},
      {"slice", runSlice, prepareSlice},
      {"reduce_sum", runReduceSum, prepareReduceSum},
      {"broadcast", runBroadcast, prepareBroadcast},
  };
}

} // namespace apc::kernels::cpu
