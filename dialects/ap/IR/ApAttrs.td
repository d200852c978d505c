// Attributes of the `ap` dialect. `#ap.parallel` is the parallel plan of a training
// step: the driver (or the search) sets it once on the module as `ap.parallel`, and
// every pass reads its fields from there; no pass parses plan text.
#ifndef APC_DIALECT_AP_ATTRS_TD
#define APC_DIALECT_AP_ATTRS_TD

include "dialects/ap/IR/ApDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Ap_Recompute : I32EnumAttr<"Recompute", "what the backward recomputes", [
    I32EnumAttrCase<"None", 0, "none">,
    I32EnumAttrCase<"Selective", 1, "selective">,
    I32EnumAttrCase<"Full", 2, "full">]> {
  let cppNamespace = "::apc::ap";
  let genSpecializedAttr = 0;
}

// What the model knows about its arguments, marked by the frontend so that generic
// passes read marks instead of names.

def Ap_BatchInput : I32EnumAttr<"BatchInput", "what an argument of the batch holds", [
    I32EnumAttrCase<"Tokens", 0, "tokens">,
    I32EnumAttrCase<"Labels", 1, "labels">]> {
  let cppNamespace = "::apc::ap";
  let genSpecializedAttr = 0;
}

def Ap_BatchInputAttr : EnumAttr<Ap_Dialect, Ap_BatchInput, "batch"> {
  let summary = "marks an argument as the batch's token ids or labels";
  let description = [{
    `ap.batch = #ap.batch<tokens>` on the [batch, seq] token ids the step reads,
    `#ap.batch<labels>` on the labels of its loss. Data parallelism splits these on
    their leading dim, micro-batches cut them, the runtime binds the data to them.
  }];
  let assemblyFormat = "`<` $value `>`";
}

def Ap_TensorLayout : I32EnumAttr<"TensorLayout",
    "how tensor parallelism splits a parameter", [
    I32EnumAttrCase<"Column", 0, "column">,
    I32EnumAttrCase<"Row", 1, "row">,
    I32EnumAttrCase<"Vocab", 2, "vocab">]> {
  let cppNamespace = "::apc::ap";
  let genSpecializedAttr = 0;
}

def Ap_TensorLayoutAttr : EnumAttr<Ap_Dialect, Ap_TensorLayout, "layout"> {
  let summary = "the tensor-parallel layout the model gives a parameter";
  let description = [{
    `ap.layout` on a parameter argument: `column` (split on its output features,
    dim 0 of the [out, in] weight: q, k, v, gate, up), `row` (split on its input
    features, dim 1: o, down; one reduction after the layer), `vocab` (split on the
    vocabulary rows: the embedding and the LM head). Without it a parameter is
    replicated on the tensor-parallel axis (norms).
  }];
  let assemblyFormat = "`<` $value `>`";
}

// A list of integers written in brackets, `[3, 5]` (a bare list would be ambiguous
// inside the struct).
class Ap_IntListParameter<string unused = ""> : OptionalArrayRefParameter<"int64_t"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::SmallVector<int64_t>> {
    ::llvm::SmallVector<int64_t> values;
    if ($_parser.parseCommaSeparatedList(::mlir::AsmParser::Delimiter::Square, [&] {
          return $_parser.parseInteger(values.emplace_back());
        }))
      return ::mlir::failure();
    return values;
  }() }];
  let printer = [{
    $_printer << '[';
    ::llvm::interleaveComma($_self, $_printer);
    $_printer << ']';
  }];
}

def Ap_ParallelAttr : AttrDef<Ap_Dialect, "Parallel"> {
  let mnemonic = "parallel";
  let summary = "how one training step is split across devices";
  let description = [{
    The degrees of data (`dp`), pipeline (`pp`), context (`cp`, the sequence) and
    tensor (`tp`) parallelism, the
    ZeRO level over dp, sequence parallelism between tensor-parallel regions (`sp`),
    micro-batches per step (`mb`), model chunks per pipeline stage (`vp`, interleaved
    1F1B), activation recomputation (on the first
    `recomputeStages` pipeline stages only, when above 0), and the layers of each
    pipeline stage (`stages`, one entry per chunk with vp > 1; empty: balanced by cost). Fields at their defaults are
    not printed: `#ap.parallel<dp = 2, tp = 2, sp = true>`.

    The device mesh follows from it (`meshAxes`): `dp` always, then `pp`, `cp` and
    `tp` when their degree is above one, in that order (row-major ranks: tp neighbours
    are adjacent ranks, then cp neighbours, as Megatron orders its groups). `ap-mesh` declares it as `shard.grid @mesh` with the axis names.
  }];
  let parameters = (ins
    DefaultValuedParameter<"int64_t", "1">:$dp,
    DefaultValuedParameter<"int64_t", "1">:$tp,
    DefaultValuedParameter<"int64_t", "1">:$pp,
    DefaultValuedParameter<"int64_t", "1">:$cp,
    DefaultValuedParameter<"int64_t", "0">:$zero,
    DefaultValuedParameter<"bool", "false">:$sp,
    DefaultValuedParameter<"int64_t", "1">:$mb,
    DefaultValuedParameter<"int64_t", "1">:$vp,
    DefaultValuedParameter<"::apc::ap::Recompute", "::apc::ap::Recompute::None">:$recompute,
    DefaultValuedParameter<"int64_t", "0">:$recomputeStages,
    Ap_IntListParameter<>:$stages
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    // dp * tp * pp * cp.
    int64_t getDevices() const;
    // The mesh axes this plan needs, by name and size: dp, then pp, cp and tp if > 1.
    ::llvm::SmallVector<std::pair<::llvm::StringRef, int64_t>> meshAxes() const;
  }];
}

#endif // APC_DIALECT_AP_ATTRS_TD
