// The passes of APC's compiler. One name in four places: the def here, the flag
// (ap-<name>), the file compiler/<folder>/<Name>.cpp and a lit test in
// test/compiler/<folder>/ (<name>.mlir or <name>.test; the rules' printer ap-print-cost
// is tested by rules/cost.mlir).
#ifndef APC_COMPILER_PASSES_TD
#define APC_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def ApMeshPass : Pass<"ap-mesh", "mlir::ModuleOp"> {
  let summary = "the parallel plan on the module, and its device mesh with named axes";
  let description = [{
    The first phase. The module carries its parallel plan as `ap.parallel =
    #ap.parallel<...>` (set by the driver; one device when absent); this pass declares
    the device mesh the plan implies, `shard.grid @mesh(shape = ...)` with
    `ap.axes = ["dp", "pp", "tp"]` (dp always, pp and tp when above one), which every
    later pass reads by axis name. Nothing is declared for one device.

    With the `plan` option (apc-opt and lit tests) the pass first parses the plan text,
    checks it against the model (`ap.model` of the entry function: heads, vocabulary,
    layers, batch) and sets `ap.parallel`; no other pass parses plan text.
  }];
  let options = [
    Option<"plan", "plan", "std::string", /*default=*/"\"\"",
           "set this parallel plan (\"dp=2,tp=2,sp=on\") instead of reading ap.parallel">
  ];
  let dependentDialects = ["mlir::shard::ShardDialect"];
}

def ApMixedPrecisionPass : Pass<"ap-mixed-precision", "mlir::ModuleOp"> {
  let summary = "f32 master weights, compute in a lower precision, loss in f32";
  let description = [{
    On the entry function (forward + loss): every floating parameter argument
    becomes f32 (the master copy that the optimizer updates) and is cast once to
    `compute-type` where the function starts; every floating op then computes in
    `compute-type`, except the loss: `ap.cross_entropy` always reads f32 logits (a
    cast is inserted), as transformers upcasts logits before the loss. Accumulation
    in f32 inside matmuls and reductions, f32 softmax and f32 norm statistics are
    part of the ops' own semantics. With `compute-type=f32` the function computes in
    f32 throughout. Runs before ap-autodiff, so the backward pass inherits the
    precision of the forward one and parameter gradients come out in f32 through
    the casts' gradients.
  }];
  let options = [
    Option<"computeType", "compute-type", "std::string", /*default=*/"\"bf16\"",
           "element type of activations and compute: bf16, f16 or f32">
  ];
}

def ApAutodiffPass : Pass<"ap-autodiff", "mlir::ModuleOp"> {
  let summary = "reverse-mode differentiation of the loss w.r.t. every parameter";
  let description = [{
    The entry function must return the loss (scalar f32) as its first result.
    The pass appends the backward computation and makes the function return
    `(loss, grad.<name>...)`: one gradient per parameter argument (`ap.role =
    "parameter"`), named after it, in argument order. Gradients of values used
    more than once are summed (tied embeddings get both uses). Each op is visited
    once, so the time is linear in the size of the IR. Fused gradient ops are used
    where a fast kernel needs them (embedding, rms_norm, rope, attention, silu,
    cross_entropy).
  }];
  let statistics = [
    Statistic<"numGradientOps", "gradient-ops", "Ops created for the backward pass">
  ];
}

def ApOptimizerPass : Pass<"ap-optimizer", "mlir::ModuleOp"> {
  let summary = "AdamW (torch.optim.AdamW) on every parameter, optional clipping";
  let description = [{
    Turns `(params, inputs) -> (loss, grads)` into the full training step
    `(params, exp_avg.*, exp_avg_sq.*, step, lr, inputs) ->
    (loss, grad_norm, new params, new exp_avg.*, new exp_avg_sq.*)`, with one fused
    `ap.adamw` per parameter and `ap.grad_norm` over all gradients (returned, and
    passed to every ap.adamw, which clips as clip_grad_norm_ when `max-grad-norm` > 0;
    always wiring it lets the runtime switch clipping on without recompiling). `step` (i64) and
    `lr` (f32) are runtime inputs so that schedules and resuming work. Results carry
    the names of the arguments they replace, so one step's outputs feed the next.
  }];
  let options = [
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "AdamW beta2">,
    Option<"epsilon", "eps", "double", /*default=*/"1e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.01",
           "decoupled weight decay">,
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"0.0",
           "clip gradients to this global L2 norm (0: no clipping)">
  ];
}

def ApRecomputePass : Pass<"ap-recompute", "mlir::ModuleOp"> {
  let summary = "activation recomputation: the backward reads re-run forward ops";
  let description = [{
    Runs on the training step after ap-autodiff (and ap-optimizer), before
    ap-partition. Arena planning keeps a buffer from its writer to its last reader, so
    a forward activation read by the backward lives until then; this pass clones forward
    ops right before the first backward op that needs them (in forward order) and makes
    the backward read the clones, so the originals die when the forward is done with
    them. The clones recompute the same ops on the same inputs: bit-identical results.

    Layers come from the dataflow: parameters the model marked `ap.layer = N` are in
    layer N, those marked `ap.head` (the final norm, the LM head) in the head, the
    embedding and the batch in none; an op is in the largest layer of its operands (the head above all layers), so
    the casts of mixed precision are in their weight's layer.

    - `mode=full`: per decoder layer, every op of the layer whose result the backward
      reads is recomputed, with what it needs inside the layer (the minimal set), right
      before the layer's first backward use. Values from outside the layer (its input
      residual stream, the parameters) and values leaving it (read by a forward op of
      another layer: the next layer's input) are kept: each layer saves only its input.
    - `mode=selective`: the attention core: each `ap.attention` and the reshapes of its
      result, recomputed right before the first backward read (o_proj's weight
      gradient). q, k and v stay (attention_grad reads them); the S x S probabilities are
      never stored by our attention in the first place.
    - `mode=none`: nothing.
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"\"",
           "what to recompute: none, selective (attention core) or full (whole layers); "
           "default: the module's plan (#ap.parallel recompute)">
  ];
  let statistics = [
    Statistic<"numRecomputedOps", "recomputed-ops", "Forward ops cloned into the backward">
  ];
}

def ApMicroBatchPass : Pass<"ap-micro-batch", "mlir::ModuleOp"> {
  let summary = "the forward pass of one micro-batch, normalised by the step's kept tokens";
  let description = [{
    Runs on the imported forward function when the plan has `mb > 1` or `pp > 1`.
    Every value computed from the batch (the arguments marked `ap.batch`: token ids and
    labels) has the batch as its leading
    dim (the tracer's layouts); the pass divides that dim by `mb`, so the function
    computes one micro-batch. A mean cross-entropy gets an explicit divisor: a new
    scalar argument `kept_tokens` (the kept tokens of the whole step), so that the
    losses and gradients of the micro-batches add up to those of the step.
    `ap-pipeline` later feeds it the step's count. An op whose result does not lead
    with the batch is refused by name.
  }];
}

def ApAssignStagesPass : Pass<"ap-assign-stages", "mlir::ModuleOp"> {
  let summary = "place each op of a micro-batch's step on a pipeline stage";
  let description = [{
    Runs after ap-partition when the plan has `pp > 1` or `mb > 1`, on the step of one
    micro-batch. Every op computed per micro-batch gets `ap.stage = s` (i64) and, when
    it belongs to the backward phase, `ap.backward`: an op goes to the stage of the
    layer it belongs to (from the dataflow: the largest layer among a forward op's
    operands, for a backward op that of the forward values it reads, else of the
    gradients it reads; layers from the model's `ap.layer` / `ap.head` marks, split over
    the stages as the plan's `stages` says or balanced by cost); the embedding goes to
    the first stage, the final norm, LM head and loss to the last; a view or collective
    whose users sit on one other stage goes there. Ops of the batch alone stay
    unmarked. ap-pipeline builds the stages from these marks, so a placement can be
    read, tested or written (by the search) on its own.
  }];
}

def ApPipelinePass : Pass<"ap-pipeline", "mlir::ModuleOp"> {
  let summary = "pipeline stages, micro-batches in 1F1B order, gradient accumulation";
  let description = [{
    Runs last (after ap-partition, ap-bucket-gradients and ap-assign-stages) on the step
    of one micro-batch made by
    ap-micro-batch. Each op runs on the stage its `ap.stage` mark says
    (ap-assign-stages; without marks the pass places the ops the same way itself), and
    a placement 1F1B cannot run is refused. Per stage
    one function `@train_step.stageN` (`@train_step` with one stage) holds:
      - the kept-token count of the step's labels (all-reduced over dp),
      - the forward (F) and backward (B) of every micro-batch, cut from the step's batch
        with `ap.slice`, in 1F1B order (pp-1-N warm-up forwards, then one F one B),
        values crossing stages sent and received with `ap.send` / `ap.recv` over the
        `pp` mesh axis (a stage keeps what its backward needs until then),
      - gradients (and the loss) summed over micro-batches in f32 where they stop
        depending on the batch, before the data-parallel reductions,
      - the update of the stage's parameters once per step: the gradient norm's sum of
        squares all-reduced over pp, a tied embedding's two gradients exchanged between
        the first and last stage and added in the same order on both, and the loss
        all-reduced over pp so that every rank reports it.
    The stages exchange values over the mesh axis named `pp` (ap-mesh declared the mesh
    [dp, pp, tp] from the start; without pp, mb > 1 only accumulates). Each op it places
    is marked with its pass, micro-batch and layer (`ap.pass`, `ap.micro_batch`,
    `ap.layer`), which lowering copies into the plan's instructions.
  }];
  let dependentDialects = ["mlir::shard::ShardDialect"];
}

def ApPartitionPass : Pass<"ap-partition", "mlir::ModuleOp"> {
  let summary = "split the training step across devices as the parallel plan says";
  let description = [{
    Runs on the whole training step (after ap-optimizer) and rewrites it into the
    program of one device on the mesh ap-mesh declared, over its dp and tp axes (pp
    is ap-pipeline's), with explicit upstream shard collectives.

    The batch (arguments marked `ap.batch`) is split over dp, parameters start in the
    tensor-parallel layout the model marked (`ap.layout`) and, under ZeRO, split over
    dp. A propagation over the ops assigns every value a state per mesh axis
    (replicated, split on a dim, or partial: a per-device summand) with each op's
    sharding rule (ShardingRuleOpInterface, compiler/rules/); where an operand is not
    in a state its op computes from, the conversion is a collective (all_reduce,
    reduce_scatter, all_gather, all_slice); an op without a rule is an error naming
    it. Splitting a value divides that dim of its type. The loss is divided by the kept
    tokens of the global batch (`ap.count_kept`, all-reduced), so ranks with more
    padding weigh exactly as they would on one device. Gradient reductions are placed
    right after each gradient is complete; ap-bucket-gradients groups them.
  }];
  let dependentDialects = ["mlir::shard::ShardDialect"];
}

def ApBucketGradientsPass : Pass<"ap-bucket-gradients", "mlir::ModuleOp"> {
  let summary = "group the gradient all-reduces into buckets the runtime fuses";
  let description = [{
    Runs after ap-partition. The gradient reductions are the all-reduces on the chain
    (through reduce-scatters, slices and casts) into an `ap.adamw` gradient or an
    `ap.grad_norm` operand. Walking them in order, each bucket of about `bucket-mb`
    MiB over the same mesh axes is moved next to its last member, so lowering fuses it
    into one collective issued as soon as the bucket's gradients are complete. A
    reduction joins a bucket only while none of the bucket's users comes before it.
  }];
  let options = [
    Option<"bucketMb", "bucket-mb", "double", /*default=*/"25.0",
           "gradient all-reduce bucket size in MiB">
  ];
}

def ApPrintCostPass : Pass<"ap-print-cost", "mlir::ModuleOp"> {
  let summary = "a remark on every op with what its cost rule says (inspection and tests)";
  let description = [{
    For reading costs at any phase: every op of every function gets a remark
    `cost: flops F, read R B, written W B, sent S B, group G` from its
    CostOpInterface (compiler/rules/), computed on the op's own types (per device after
    partitioning). An op without a cost rule is an error naming it. Changes nothing.
  }];
}

#endif // APC_COMPILER_PASSES_TD
