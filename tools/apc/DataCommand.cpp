// `apc data`: training data tools. `apc data sample` writes a synthetic tokenized
// dataset (an Arrow IPC stream with an input_ids list<int32> column).
#include "tools/apc/Commands.h"

#include "runtime/data/SampleData.h"
#include "runtime/support/Flags.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace apc::tools {

static const char *kDataUsage =
    "apc data: make and inspect training data\n"
    "\n"
    "usage: apc data <subcommand> [args] (apc data <subcommand> --help for each)\n"
    "\n"
    "subcommands:\n"
    "  sample          write a synthetic tokenized dataset (Arrow IPC stream)\n";

static int runDataSample(int argc, char **argv, int first) {
  std::string output;
  int64_t rows = 512, minLen = 16, maxLen = 64, vocab = 256, seed = 0;
  FlagParser flags("apc data sample",
                   "write a synthetic tokenized dataset with learnable structure (rows are "
                   "arithmetic progressions of token ids 1..vocab-1; 0 is left for padding)",
                   "apc data sample -o sample.arrow [--rows N] [--min-len N] [--max-len N] "
                   "[--vocab N] [--seed N]");
  flags.addString("o", &output, "output Arrow IPC stream file", "FILE");
  flags.addInt("rows", &rows, "number of rows (default 512)");
  flags.addInt("min-len", &minLen, "shortest row in tokens, at least 1 (default 16)");
  flags.addInt("max-len", &maxLen, "longest row in tokens (default 64)");
  flags.addInt("vocab", &vocab, "vocabulary size; ids are in [1, vocab) (default 256)");
  flags.addInt("seed", &seed, "random seed; the same seed gives the same file (default 0)");
  flags.require("o");
  std::string message;
  switch (flags.parse(argc, argv, first, message)) {
  case FlagParser::Outcome::Help:
    std::fputs(flags.help().c_str(), stdout);
    return 0;
  case FlagParser::Outcome::Error:
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;
  case FlagParser::Outcome::Ok:
    break;
  }
  if (output.empty() || output == "-") {
    std::fprintf(stderr, "apc data sample: -o needs a file name (Arrow is not written to "
                         "stdout)\n");
    return 2;
  }
  if (Status s = data::checkSampleOptions(rows, minLen, maxLen, vocab); !s) {
    std::fprintf(stderr, "apc data sample: --%s\n", s.message().c_str());
    return 2;
  }
  data::SampleStats stats;
  if (Status s = data::writeSampleDataset(output, rows, minLen, maxLen, vocab,
                                          uint64_t(seed), &stats);
      !s) {
    std::fprintf(stderr, "apc data sample: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("wrote %s: %lld rows, %lld tokens (lengths %lld to %lld, ids 1 to %lld, "
              "seed %lld), column input_ids list<int32>, %lld record %s\n",
              output.c_str(), (long long)stats.rows, (long long)stats.tokens,
              (long long)stats.shortest, (long long)stats.longest, (long long)(vocab - 1),
              (long long)seed, (long long)stats.recordBatches,
              stats.recordBatches == 1 ? "batch" : "batches");
  return 0;
}

int runDataCommand(int argc, char **argv, int first) {
  if (first >= argc) {
    std::fputs(kDataUsage, stderr);
    return 2;
  }
  std::string sub = argv[first];
  if (sub == "--help" || sub == "-h") {
    std::fputs(kDataUsage, stdout);
    return 0;
  }
  if (sub == "sample")
    return runDataSample(argc, argv, first + 1);
  std::fprintf(stderr, "apc data: unknown subcommand '%s'\n\n%s", sub.c_str(), kDataUsage);
  return 2;
}

} // namespace apc::tools
