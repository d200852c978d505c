// Per-op rules as interfaces. The dialect declares what every op must answer; the
// answers live outside it, in compiler/rules/ (attached as external models, the way
// upstream attaches the shard interface to linalg), so that adding an op means adding
// its rules there, not editing switches spread over passes. A unit test fails if an
// `ap` op lacks either interface; a pass that meets an op without one refuses it.
#ifndef APC_DIALECT_AP_INTERFACES_TD
#define APC_DIALECT_AP_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Ap_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::apc::ap";
  let description = [{
    How an op is split across a device mesh, one mesh axis at a time: from the
    states of its operands on that axis (replicated, split on a dim, partial sums),
    the states its results take, converting operands that are not in a state the op
    can compute from (the context inserts the collectives). Ops whose split form is a
    different op (the vocabulary-parallel loss, the global gradient norm) rewrite
    themselves first. Used by ap-partition.
  }];
  let methods = [
    InterfaceMethod<
      "The results' states on `context.axis()` (set with context.result/results); "
      "operands are converted with context.want/whole. Fails with a located error "
      "when the operands' states have no rule.",
      "::llvm::LogicalResult", "shardAxis", (ins "::apc::partition::RuleContext &":$context)>,
    InterfaceMethod<
      "Before the per-axis rules: replace the op by its partitioned form when the "
      "operands' states call for one. Returns true when the op was replaced (and erased).",
      "::mlir::FailureOr<bool>", "rewriteSharded",
      (ins "::apc::partition::RuleContext &":$context), "",
      /*defaultImplementation=*/"return false;">
  ];
}

def Ap_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::apc::ap";
  let description = [{
    What one execution of the op costs on one device, from its own (per-device)
    types: floating-point operations, bytes read and written in device memory, and
    for collectives and point-to-point transfers the bytes each device sends over
    links (with the algorithm the runtime uses). The cost model and the plan's
    prediction read these; nothing else estimates an op's work.
  }];
  let methods = [
    InterfaceMethod<"The op's work on one device.", "::apc::ap::OpCost", "cost">
  ];
}

#endif // APC_DIALECT_AP_INTERFACES_TD
