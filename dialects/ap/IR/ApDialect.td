// The `ap` dialect: the graph-level IR of APC.
#ifndef APC_DIALECT_AP_DIALECT_TD
#define APC_DIALECT_AP_DIALECT_TD

include "mlir/IR/OpBase.td"

def Ap_Dialect : Dialect {
  let name = "ap";
  let cppNamespace = "::apc::ap";
  let summary = "Graph-level ops of transformer training steps";
  let description = [{
    Value-semantics ops on static ranked builtin tensors (element types f32, bf16,
    f16 for data; i32, i64 for token ids and labels). Each op is at the level a
    transformer layer is written and a kernel is called, so that sharding rules,
    costs and gradients are stated once per op rather than rediscovered from
    scalar code. Weights use the Hugging Face layouts ([out, in] for linear).
    Activations of attention are laid out [batch, seq, heads, head_dim].
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    // In ApAttrs.cpp, beside the attributes' storage.
    void registerAttributes();
  }];
}

// Every tensor of an ap op fits APC's size limits (ApTraits.h).
def Ap_AddressableTensors : NativeOpTrait<"AddressableTensors"> {
  let cppNamespace = "::apc::ap";
}

class Ap_Op<string mnemonic, list<Trait> traits = []>
    : Op<Ap_Dialect, mnemonic, !listconcat([Ap_AddressableTensors], traits)>;

#endif // APC_DIALECT_AP_DIALECT_TD
