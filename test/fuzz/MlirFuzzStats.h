// How far mlir_fuzz's inputs get: counts per stage (verified, plan set, each pass reached,
// passes done, plan emitted, ...), printed with APC_FUZZ_STATS=1 at every power of two
// executions and at exit, as a fraction of all inputs.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "llvm/ADT/StringRef.h"

namespace apc::fuzz {

class Stats;
Stats &stats();

class Stats {
public:
  Stats() : enabled_(std::getenv("APC_FUZZ_STATS") != nullptr) {
    if (enabled_)
      std::atexit([] { stats().print(); });
  }
  void count(const std::string &what) { ++counts_[what]; }
  // The first time each pass runs within an input counts once (a pass may run per stage).
  void reached(llvm::StringRef pass) {
    if (pass.empty())
      return;
    std::string key = "pass " + pass.str();
    if (seen_.insert(key).second)
      ++counts_[key];
  }
  void executionDone() {
    seen_.clear();
    long n = ++executions_;
    if (enabled_ && n >= 1024 && (n & (n - 1)) == 0)
      print();
  }
  void print() const {
    auto inputs = counts_.find("inputs");
    double all = inputs == counts_.end() ? 1.0 : double(inputs->second);
    std::fprintf(stderr, "mlir_fuzz stats after %ld executions:\n", executions_);
    for (const auto &[what, n] : counts_)
      std::fprintf(stderr, "  %-28s %10ld  %5.1f%%\n", what.c_str(), n, 100.0 * n / all);
  }

private:
  bool enabled_;
  long executions_ = 0;
  std::map<std::string, long> counts_;
  std::set<std::string> seen_;
};

inline Stats &stats() {
  static Stats *s = new Stats; // never destroyed: the atexit printer may run late
  return *s;
}

} // namespace apc::fuzz
