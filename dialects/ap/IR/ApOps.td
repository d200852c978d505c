// Ops of the `ap` dialect. Every op has a C++ verifier (ApOps.cpp) that checks ranks,
// shapes, element types and attributes and names the offending value in a lowercase
// diagnostic; the reference semantics live in compiler/interpreter.
#ifndef APC_DIALECT_AP_OPS_TD
#define APC_DIALECT_AP_OPS_TD

include "dialects/ap/IR/ApDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Embedding and dense layers
//===----------------------------------------------------------------------===//

def Ap_EmbeddingOp : Ap_Op<"embedding", [Pure]> {
  let summary = "rows of an embedding table gathered by token id";
  let description = [{
    `result[i..., :] = weight[ids[i...], :]`. `weight` is [vocab, hidden] (as
    `model.embed_tokens.weight`), `ids` any shape of i32/i64 ids in [0, vocab).
    The result has shape `ids.shape + [hidden]` and the weight's element type.

    With `vocab_shard_axis` (partitioned IR, vocabulary parallelism) `weight` holds
    only the contiguous block of vocabulary rows of this device's coordinate along
    that mesh axis, starting at global id `vocab_start`: an id in the block gives
    row `id - vocab_start`, any other id (out of range ones included) a zero row,
    so that summing the results over the axis gives the full embedding. Lowering
    replaces the attribute by the kernel attribute `vocab_start`. The reference
    interpreter evaluates such an op as the device at coordinate 0 (vocab_start = 0).
  }];
  let arguments = (ins AnyRankedTensor:$weight, AnyRankedTensor:$ids,
                   OptionalAttr<I64Attr>:$vocab_shard_axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$weight `,` $ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let builders = [
    // The unpartitioned op (no vocab_shard_axis), as the tracer builds it.
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$weight, "::mlir::Value":$ids), [{
      build($_builder, $_state, result, weight, ids, ::mlir::IntegerAttr());
    }]>
  ];
}

def Ap_LinearOp : Ap_Op<"linear", [Pure]> {
  let summary = "x @ weight^T with the Hugging Face [out, in] weight layout";
  let description = [{
    `result[..., o] = sum_i input[..., i] * weight[o, i]` (no bias: Llama has none).
    Accumulation is at least f32 whatever the element type. Tensor parallelism
    splits `weight` on dim 0 (column-parallel) or dim 1 (row-parallel).
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_MatmulOp : Ap_Op<"matmul", [Pure]> {
  let summary = "batched matrix product with optional transposes";
  let description = [{
    `lhs` [batch..., M, K] (or [batch..., K, M] with `transpose_lhs`), `rhs`
    [batch..., K, N] (or [batch..., N, K] with `transpose_rhs`); the batch dims
    must be equal (no broadcasting). Result [batch..., M, N].
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                   DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Normalisation, position encoding, attention
//===----------------------------------------------------------------------===//

def Ap_RmsNormOp : Ap_Op<"rms_norm", [Pure]> {
  let summary = "root-mean-square normalisation over the last dim";
  let description = [{
    As Hugging Face's LlamaRMSNorm: statistics in f32,
    `y = weight * cast(x / sqrt(mean(x^2, -1) + epsilon))`. `weight` is [hidden].
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight, F64Attr:$epsilon);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_RopeOp : Ap_Op<"rope", [Pure]> {
  let summary = "rotary position embedding (Hugging Face rotate_half convention)";
  let description = [{
    `input` is [batch, seq, heads, head_dim] with an even head_dim; position p of
    the sequence is `position_offset + p`. With `d = head_dim / 2` and
    `inv_freq[j] = theta^(-2j / head_dim)` (rescaled by the `llama3` rule when
    `rope_type = "llama3"`: long wavelengths divided by `factor`, short ones kept,
    smoothly interpolated between `low_freq_factor` and `high_freq_factor`
    relative to `original_max_position_embeddings`):
    `y[j] = x[j] cos(p f_j) - x[j + d] sin(p f_j)`,
    `y[j + d] = x[j + d] cos(p f_j) + x[j] sin(p f_j)`.
    Rotation factors are computed in f32 or wider.

    With `seq_shard_axis` and `seq_shard_parts` = n (partitioned IR, context
    parallelism) `input` holds the device's part of the sequence: of the sequence cut
    into 2n chunks, chunk r and chunk 2n-1-r, r being the device's coordinate on mesh
    axis `seq_shard_axis` (the causal load balance); each row rotates at its position
    in the whole sequence.
  }];
  let arguments = (ins AnyRankedTensor:$input, F64Attr:$theta,
                   DefaultValuedStrAttr<StrAttr, "default">:$rope_type,
                   OptionalAttr<F64Attr>:$factor,
                   OptionalAttr<F64Attr>:$low_freq_factor,
                   OptionalAttr<F64Attr>:$high_freq_factor,
                   OptionalAttr<I64Attr>:$original_max_position_embeddings,
                   DefaultValuedAttr<I64Attr, "0">:$position_offset,
                   OptionalAttr<I64Attr>:$seq_shard_axis,
                   OptionalAttr<I64Attr>:$seq_shard_parts);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_AttentionOp : Ap_Op<"attention", [Pure]> {
  let summary = "scaled dot-product attention, causal, grouped-query";
  let description = [{
    `query` [batch, seq, heads, head_dim], `key` and `value` [batch, seq, kv_heads,
    head_dim] with heads a multiple of kv_heads; query head h reads kv head
    `h / (heads / kv_heads)`. Scores are `scale * q.k` (scale defaults to
    1/sqrt(head_dim)), masked to keys at or before the query when `causal`, and
    soft-maxed in f32. Result [batch, seq, heads, head_dim].

    With `seq_shard_axis` and `seq_shard_parts` = n (partitioned IR, context
    parallelism) `query` holds the device's two chunks of the sequence (chunks r and
    2n-1-r of 2n, r its coordinate on that mesh axis, as `ap.rope` says) and `key`
    and `value` the whole sequence (n times the query's rows, in order): each query row
    sees the keys at or before its position in the whole sequence.
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key,
                   AnyRankedTensor:$value,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<BoolAttr, "true">:$causal,
                   OptionalAttr<I64Attr>:$seq_shard_axis,
                   OptionalAttr<I64Attr>:$seq_shard_parts);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$query `,` $key `,` $value attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The scale applied to q.k: the attribute, or 1/sqrt(head_dim).
    double getScaleOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

def Ap_SiluOp : Ap_Op<"silu", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "x * sigmoid(x), elementwise";
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Ap_SqrtOp : Ap_Op<"sqrt", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "square root, elementwise";
  let description = [{
    `sqrt(x)` computed in f32 or wider (NaN for negative x). The partitioner
    takes the global gradient norm as the square root of the sum over devices of
    `ap.grad_norm {squared = true}`.
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

class Ap_BinaryOp<string mnemonic, string summaryText>
    : Ap_Op<mnemonic, [Pure, Commutative, AllTypesMatch<["lhs", "rhs", "result"]>]> {
  let summary = summaryText;
  let description = [{
    Elementwise on operands of one type (no broadcasting: every value the
    partitioner sees has its full shape written down).
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Ap_AddOp : Ap_BinaryOp<"add", "elementwise sum">;
def Ap_MulOp : Ap_BinaryOp<"mul", "elementwise product">;

def Ap_CastOp : Ap_Op<"cast", [Pure]> {
  let summary = "element type conversion (round to nearest even)";
  let description = [{
    Same shape, an element type among f32, bf16, f16, i32, i64 (the same
    one is allowed: a no-op that later passes may fold away).
    Float to integer truncates toward zero, as torch's `.to()` does.
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Layout
//===----------------------------------------------------------------------===//

def Ap_ReshapeOp : Ap_Op<"reshape", [Pure]> {
  let summary = "same elements in row-major order, another shape";
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def Ap_TransposeOp : Ap_Op<"transpose", [Pure]> {
  let summary = "permutation of dims: result dim i is input dim permutation[i]";
  let arguments = (ins AnyRankedTensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

def Ap_ReduceSumOp : Ap_Op<"reduce_sum", [Pure]> {
  let summary = "sum over the given dims (accumulated in f32 or wider)";
  let arguments = (ins AnyRankedTensor:$input, DenseI64ArrayAttr:$dims,
                   DefaultValuedAttr<BoolAttr, "false">:$keep_dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

def Ap_ShiftLabelsOp : Ap_Op<"shift_labels", [Pure, AllTypesMatch<["labels", "result"]>]> {
  let summary = "next-token targets: labels moved one step left along the last dim";
  let description = [{
    `result[..., t] = labels[..., t + 1]` and the last position gets
    `ignore_index`: the causal-LM shift of Hugging Face's loss, kept as its own op
    so that the loss itself stays position-wise (and splits along the sequence).
  }];
  let arguments = (ins AnyRankedTensor:$labels,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$labels attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Ap_CrossEntropyOp : Ap_Op<"cross_entropy", [Pure]> {
  let summary = "softmax cross-entropy over the last dim, ignoring ignore_index";
  let description = [{
    `logits` [..., vocab] (any float type), `labels` [...] (i32/i64). Per position
    `logsumexp(logits) - logits[label]`, computed in f32 or wider; positions whose
    label is `ignore_index` are left out. `reduction = "mean"` divides the sum by
    the number of kept positions (NaN when none is kept, as torch), `"sum"` does
    not. With `kept_count` (a scalar f32, the kept positions of the whole global
    batch, as data parallelism computes it), "mean" divides by it instead of the
    local count. The result is a scalar `tensor<f32>`.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$labels,
                   Optional<AnyRankedTensor>:$kept_count,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                   DefaultValuedStrAttr<StrAttr, "mean">:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$logits `,` $labels (`count` $kept_count^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_CountKeptOp : Ap_Op<"count_kept", [Pure]> {
  let summary = "number of labels that are not ignore_index, as a scalar f32";
  let description = [{
    The denominator of a mean cross-entropy; data parallelism sums it over the
    replicas to normalise the loss by the kept tokens of the global batch.
  }];
  let arguments = (ins AnyRankedTensor:$labels,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$labels attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Vocabulary-parallel loss (emitted by ap-partition)
//
// The logits hold a contiguous block of the vocabulary (the last dim) starting at
// global id `vocab_start` (the block of this device's coordinate along mesh axis
// `vocab_shard_axis`; lowering replaces the attribute by the kernel attribute
// `vocab_start`, and the reference interpreter uses vocab_start = 0). The
// partitioner chains them with collectives along that axis:
//   m      = all_reduce_max(vocab_parallel_max(logits))
//   s, t   = vocab_parallel_stats(logits, labels, m)
//   s, t   = all_reduce_sum(s), all_reduce_sum(t)
//   loss   = vocab_parallel_loss(m, s, t, labels)
//   dlogit = vocab_parallel_loss_grad(logits, labels, m, s, grad_loss)
// which computes exactly ap.cross_entropy and ap.cross_entropy_grad on the full
// logits. Per-row tensors ("row_max", "sum_exp", "target_logit") have the shape
// of the labels and element type f32. Labels are not range-checked (a shard does
// not know the global vocabulary): a kept label that no block holds has a target
// logit of 0.
//===----------------------------------------------------------------------===//

def Ap_VocabParallelMaxOp : Ap_Op<"vocab_parallel_max", [Pure]> {
  let summary = "max of each row of a vocabulary block of logits";
  let description = [{
    `row_max[i...] = max over v of logits[i..., v]`, an f32 tensor of the shape of
    `logits` without its last dim (-inf for an empty block). `logits` may be any
    float type.
  }];
  let arguments = (ins AnyRankedTensor:$logits);
  let results = (outs AnyRankedTensor:$row_max);
  let assemblyFormat = "$logits attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_VocabParallelStatsOp : Ap_Op<"vocab_parallel_stats", [Pure]> {
  let summary = "partial softmax denominator and target logit of a vocabulary block";
  let description = [{
    With `row_max` the global row max (after the all-reduce of
    `vocab_parallel_max`), per row:
    `sum_exp = sum over the block's v of exp(logits[..., v] - row_max)` and
    `target_logit = logits[..., label - vocab_start]` when the label is kept (not
    `ignore_index`) and in [vocab_start, vocab_start + block), else 0. Both are f32
    and computed in f32 or wider; their sums over the vocabulary axis are the full
    softmax denominator and the logit of the label.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$labels,
                   AnyRankedTensor:$row_max,
                   OptionalAttr<I64Attr>:$vocab_shard_axis,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs AnyRankedTensor:$sum_exp, AnyRankedTensor:$target_logit);
  let assemblyFormat = "$logits `,` $labels `,` $row_max attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_VocabParallelLossOp : Ap_Op<"vocab_parallel_loss", [Pure]> {
  let summary = "cross-entropy from the combined row statistics";
  let description = [{
    `sum over kept positions of log(sum_exp) + row_max - target_logit` (positions
    whose label is `ignore_index` are left out), accumulated in f32 or wider. As
    `ap.cross_entropy`: `reduction = "mean"` divides by `kept_count` when given (a
    scalar f32) else by the number of kept positions here (NaN when none is kept,
    as torch), `"sum"` does not. `row_max`, `sum_exp` and `target_logit` are f32
    of the labels' shape; the result is a scalar `tensor<f32>`.
  }];
  let arguments = (ins AnyRankedTensor:$row_max, AnyRankedTensor:$sum_exp,
                   AnyRankedTensor:$target_logit, AnyRankedTensor:$labels,
                   Optional<AnyRankedTensor>:$kept_count,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                   DefaultValuedStrAttr<StrAttr, "mean">:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $row_max `,` $sum_exp `,` $target_logit `,` $labels (`count` $kept_count^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Ap_VocabParallelLossGradOp : Ap_Op<"vocab_parallel_loss_grad", [Pure]> {
  let summary = "gradient of the cross-entropy w.r.t. a vocabulary block of logits";
  let description = [{
    For kept positions
    `(exp(logits[..., v] - row_max) / sum_exp - [v == label - vocab_start]) * grad_loss / denom`
    with `denom` = `kept_count` when given, else the number of kept positions here,
    for `reduction = "mean"` (1 for "sum", and 1 when the count is 0); zero at
    ignored positions. `row_max` and `sum_exp` are the combined (all-reduced) row
    statistics, f32 of the labels' shape; `grad_loss` is a scalar `tensor<f32>`. The
    result has the type of `logits`: the block of `ap.cross_entropy_grad`'s result.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$labels,
                   AnyRankedTensor:$row_max, AnyRankedTensor:$sum_exp,
                   AnyRankedTensor:$grad_loss, Optional<AnyRankedTensor>:$kept_count,
                   OptionalAttr<I64Attr>:$vocab_shard_axis,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                   DefaultValuedStrAttr<StrAttr, "mean">:$reduction);
  let results = (outs AnyRankedTensor:$grad_logits);
  let assemblyFormat = [{
    $logits `,` $labels `,` $row_max `,` $sum_exp `,` $grad_loss (`count` $kept_count^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

def Ap_FillOp : Ap_Op<"fill", [Pure]> {
  let summary = "a tensor whose every element is `value`";
  let description = [{
    Used for the seed of reverse-mode differentiation (d loss / d loss = 1) and for
    the zero gradient of a parameter the loss does not depend on.
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Ap_BroadcastOp : Ap_Op<"broadcast", [Pure]> {
  let summary = "copies of the input along new dims (the adjoint of reduce_sum)";
  let description = [{
    `dims` are the result dims that the input does not have: the input's shape is
    the result's shape with `dims` removed, and
    `result[i...] = input[i... without dims]`.
  }];
  let arguments = (ins AnyRankedTensor:$input, DenseI64ArrayAttr:$dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Gradients (fused backward ops, emitted by ap-autodiff)
//===----------------------------------------------------------------------===//

def Ap_EmbeddingGradOp : Ap_Op<"embedding_grad", [Pure]> {
  let summary = "gradient of embedding w.r.t. its table: scatter-add of rows";
  let description = [{
    `result[v, :] = sum over positions p with ids[p] == v of grad_output[p, :]`;
    the result has the table's shape [vocab, hidden]. Accumulates in f32 or wider.

    With `vocab_shard_axis` (partitioned IR) the result is the block of the
    table's gradient that this device holds, as for `ap.embedding`: row r is the
    gradient of global id `vocab_start + r`, and ids outside the block contribute
    nothing. Lowering replaces the attribute by the kernel attribute `vocab_start`;
    the reference interpreter uses vocab_start = 0.
  }];
  let arguments = (ins AnyRankedTensor:$ids, AnyRankedTensor:$grad_output,
                   OptionalAttr<I64Attr>:$vocab_shard_axis);
  let results = (outs AnyRankedTensor:$grad_weight);
  let assemblyFormat = "$ids `,` $grad_output attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let builders = [
    // The unpartitioned op (no vocab_shard_axis), as ap-autodiff builds it.
    OpBuilder<(ins "::mlir::Type":$grad_weight, "::mlir::Value":$ids, "::mlir::Value":$grad_output), [{
      build($_builder, $_state, grad_weight, ids, grad_output, ::mlir::IntegerAttr());
    }]>
  ];
}

def Ap_RmsNormGradOp : Ap_Op<"rms_norm_grad", [Pure]> {
  let summary = "gradients of rms_norm w.r.t. its input and weight";
  let description = [{
    With `r = 1/sqrt(mean(x^2) + epsilon)`, `n = x r` and `g = grad_output * weight`:
    `grad_input = r (g - n mean(g n))` per row and
    `grad_weight = sum over rows of grad_output * n`, statistics in f32 or wider.
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                   AnyRankedTensor:$grad_output, F64Attr:$epsilon);
  let results = (outs AnyRankedTensor:$grad_input, AnyRankedTensor:$grad_weight);
  let assemblyFormat = "$input `,` $weight `,` $grad_output attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_RopeGradOp : Ap_Op<"rope_grad", [Pure]> {
  let summary = "gradient of rope: the inverse rotation of the output gradient";
  let description = [{
    Rope is a rotation per position and frequency, so its adjoint is the rotation by
    the opposite angle. Attributes as `ap.rope`.
  }];
  let arguments = (ins AnyRankedTensor:$grad_output, F64Attr:$theta,
                   DefaultValuedStrAttr<StrAttr, "default">:$rope_type,
                   OptionalAttr<F64Attr>:$factor,
                   OptionalAttr<F64Attr>:$low_freq_factor,
                   OptionalAttr<F64Attr>:$high_freq_factor,
                   OptionalAttr<I64Attr>:$original_max_position_embeddings,
                   DefaultValuedAttr<I64Attr, "0">:$position_offset,
                   OptionalAttr<I64Attr>:$seq_shard_axis,
                   OptionalAttr<I64Attr>:$seq_shard_parts);
  let results = (outs AnyRankedTensor:$grad_input);
  let assemblyFormat = "$grad_output attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_AttentionGradOp : Ap_Op<"attention_grad", [Pure]> {
  let summary = "gradients of attention w.r.t. query, key and value";
  let description = [{
    Recomputes the probabilities P from query and key (as a flash-attention backward
    does), then `dV = P^T dO`, `dP = dO V^T`, `dS = P (dP - rowsum(dP P))`,
    `dQ = scale dS K`, `dK = scale dS^T Q`, with key/value gradients summed over
    the query heads that share them. Attributes as `ap.attention`.
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key,
                   AnyRankedTensor:$value, AnyRankedTensor:$grad_output,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<BoolAttr, "true">:$causal,
                   OptionalAttr<I64Attr>:$seq_shard_axis,
                   OptionalAttr<I64Attr>:$seq_shard_parts);
  let results = (outs AnyRankedTensor:$grad_query, AnyRankedTensor:$grad_key,
                      AnyRankedTensor:$grad_value);
  let assemblyFormat = "$query `,` $key `,` $value `,` $grad_output attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The scale applied to q.k: the attribute, or 1/sqrt(head_dim).
    double getScaleOrDefault();
  }];
}

def Ap_SiluGradOp : Ap_Op<"silu_grad", [Pure, AllTypesMatch<["input", "grad_output", "grad_input"]>]> {
  let summary = "gradient of silu: grad_output * s (1 + x (1 - s)), s = sigmoid(x)";
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$grad_output);
  let results = (outs AnyRankedTensor:$grad_input);
  let assemblyFormat = "$input `,` $grad_output attr-dict `:` type($grad_input)";
  let hasVerifier = 1;
}

def Ap_CrossEntropyGradOp : Ap_Op<"cross_entropy_grad", [Pure]> {
  let summary = "gradient of cross_entropy w.r.t. the logits";
  let description = [{
    For kept positions `grad_loss * (softmax(logits) - onehot(label))`, divided by
    the number of kept positions (or by `kept_count` when given) when
    `reduction = "mean"`; zero at ignored positions. `grad_loss` is a scalar
    `tensor<f32>`.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$labels,
                   AnyRankedTensor:$grad_loss, Optional<AnyRankedTensor>:$kept_count,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                   DefaultValuedStrAttr<StrAttr, "mean">:$reduction);
  let results = (outs AnyRankedTensor:$grad_logits);
  let assemblyFormat = "$logits `,` $labels `,` $grad_loss (`count` $kept_count^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Optimizer (emitted by ap-optimizer)
//===----------------------------------------------------------------------===//

def Ap_GradNormOp : Ap_Op<"grad_norm", [Pure]> {
  let summary = "global L2 norm of all gradients, as torch.nn.utils.clip_grad_norm_";
  let description = [{
    `sqrt(sum over every element of every operand of g^2)`, accumulated in f32 or
    wider; a scalar `tensor<f32>`. With `squared = true` the result is the sum of
    squares itself (no square root): the partial that a partitioned program sums
    over the devices holding shards of the gradients before one `ap.sqrt`.
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$grads,
                   DefaultValuedAttr<BoolAttr, "false">:$squared);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$grads attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_AdamWOp : Ap_Op<"adamw", [Pure]> {
  let summary = "one torch.optim.AdamW update of one parameter";
  let description = [{
    With `t = step` (1 for the first update), `lr` a scalar f32 input and `g` the
    gradient (first multiplied by `min(1, max_grad_norm / (grad_norm + 1e-6))` when
    `max_grad_norm` is set, which needs the `grad_norm` operand):
      p  <- p - lr * weight_decay * p
      m  <- beta1 m + (1 - beta1) g
      v  <- beta2 v + (1 - beta2) g^2
      p  <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)
    Parameters and moments are f32 (master copies); `g` may be any float type.
  }];
  let arguments = (ins AnyRankedTensor:$param, AnyRankedTensor:$grad,
                   AnyRankedTensor:$exp_avg, AnyRankedTensor:$exp_avg_sq,
                   AnyRankedTensor:$step, AnyRankedTensor:$lr,
                   Optional<AnyRankedTensor>:$grad_norm,
                   DefaultValuedAttr<F64Attr, "0.9">:$beta1,
                   DefaultValuedAttr<F64Attr, "0.999">:$beta2,
                   DefaultValuedAttr<F64Attr, "1.0e-8">:$epsilon,
                   DefaultValuedAttr<F64Attr, "0.01">:$weight_decay,
                   OptionalAttr<F64Attr>:$max_grad_norm);
  let results = (outs AnyRankedTensor:$new_param, AnyRankedTensor:$new_exp_avg,
                      AnyRankedTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $step `,` $lr (`,` $grad_norm^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Pipelines (emitted by ap-pipeline)
//===----------------------------------------------------------------------===//

def Ap_SliceOp : Ap_Op<"slice", [Pure]> {
  let summary = "a contiguous block of one dim";
  let description = [{
    `result = input[..., offset : offset + result.shape[dim], ...]`, the block
    along `dim` (every other dim whole). A pipeline stage cuts each micro-batch
    out of its step's batch with it.
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$dim, I64Attr:$offset);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Ap_SendOp : Ap_Op<"send", [MemoryEffects<[MemWrite]>]> {
  let summary = "send a tensor to another device of one mesh axis";
  let description = [{
    Point to point between pipeline stages: the device whose coordinate on mesh
    axis `axes[0]` is ours plus `peer_offset` (all other coordinates equal) takes
    it with an `ap.recv` of the same `tag` and type. Buffered: it returns as soon
    as the input may be reused. Messages of one tag arrive in the order sent.
  }];
  let arguments = (ins AnyRankedTensor:$input, DenseI64ArrayAttr:$axes,
                   I64Attr:$peer_offset, I64Attr:$tag);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Ap_RecvOp : Ap_Op<"recv", [MemoryEffects<[MemWrite]>]> {
  let summary = "receive a tensor sent by another device of one mesh axis";
  let description = [{
    Takes the next message of `tag` from the device at `peer_offset` along mesh
    axis `axes[0]` (see `ap.send`); blocks until it has arrived.
  }];
  let arguments = (ins DenseI64ArrayAttr:$axes, I64Attr:$peer_offset, I64Attr:$tag);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // APC_DIALECT_AP_OPS_TD
