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
  }];
  let arguments = (ins AnyRankedTensor:$weight, AnyRankedTensor:$ids);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$weight `,` $ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
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
  }];
  let arguments = (ins AnyRankedTensor:$input, F64Attr:$theta,
                   DefaultValuedStrAttr<StrAttr, "default">:$rope_type,
                   OptionalAttr<F64Attr>:$factor,
                   OptionalAttr<F64Attr>:$low_freq_factor,
                   OptionalAttr<F64Attr>:$high_freq_factor,
                   OptionalAttr<I64Attr>:$original_max_position_embeddings,
                   DefaultValuedAttr<I64Attr, "0">:$position_offset);
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
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key,
                   AnyRankedTensor:$value,
                   OptionalAttr<F64Attr>:$scale,
                   DefaultValuedAttr<BoolAttr, "true">:$causal);
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
    not. The result is a scalar `tensor<f32>`.
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$labels,
                   DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                   DefaultValuedStrAttr<StrAttr, "mean">:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // APC_DIALECT_AP_OPS_TD
