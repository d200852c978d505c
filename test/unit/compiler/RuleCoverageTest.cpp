// Every `ap` op has a sharding rule and a cost rule (compiler/rules/), and every shard
// collective the partitioner inserts has a cost rule: a new op without them fails here
// before any pass meets it.
#include "compiler/rules/Rules.h"
#include "dialects/ap/IR/ApDialect.h"
#include "dialects/ap/IR/ApInterfaces.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

namespace {

mlir::DialectRegistry rulesRegistry() {
  mlir::DialectRegistry registry;
  registry.insert<apc::ap::ApDialect, mlir::shard::ShardDialect>();
  apc::rules::registerApRules(registry);
  return registry;
}

TEST(RuleCoverage, EveryApOpHasAShardingRuleAndACostRule) {
  mlir::MLIRContext context(rulesRegistry());
  context.loadDialect<apc::ap::ApDialect>();
  int ops = 0;
  for (mlir::RegisteredOperationName name : context.getRegisteredOperations()) {
    if (name.getDialectNamespace() != "ap")
      continue;
    ++ops;
    EXPECT_TRUE(name.hasInterface<apc::ap::ShardingRuleOpInterface>())
        << name.getStringRef().str() << " has no sharding rule (compiler/rules/)";
    EXPECT_TRUE(name.hasInterface<apc::ap::CostOpInterface>())
        << name.getStringRef().str() << " has no cost rule (compiler/rules/)";
  }
  EXPECT_GE(ops, 34); // the dialect as of this test; a shrinking count means a lost op
}

TEST(RuleCoverage, EveryCollectiveThePartitionerMakesHasACostRule) {
  mlir::MLIRContext context(rulesRegistry());
  context.loadDialect<mlir::shard::ShardDialect>();
  for (llvm::StringRef op : {"shard.all_reduce", "shard.all_gather", "shard.reduce_scatter",
                             "shard.all_slice"}) {
    auto name = mlir::RegisteredOperationName::lookup(op, &context);
    ASSERT_TRUE(name) << op.str();
    EXPECT_TRUE(name->hasInterface<apc::ap::CostOpInterface>()) << op.str();
  }
}

TEST(RuleCoverage, WithoutTheRulesRegisteredNoOpHasThem) {
  // The rules come from registerApRules, not from the dialect: a tool that forgets the
  // call gets the passes' "has no sharding rule" error, which this makes visible.
  mlir::DialectRegistry registry;
  registry.insert<apc::ap::ApDialect>();
  mlir::MLIRContext context(registry);
  context.loadDialect<apc::ap::ApDialect>();
  auto linear = mlir::RegisteredOperationName::lookup("ap.linear", &context);
  ASSERT_TRUE(linear);
  EXPECT_FALSE(linear->hasInterface<apc::ap::ShardingRuleOpInterface>());
}

} // namespace
