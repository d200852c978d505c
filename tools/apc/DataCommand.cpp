// `apc data`: training data tools. `apc data sample` writes a synthetic tokenized
// dataset (an Arrow IPC stream with an input_ids list<int32> column); `apc data tokenize`
// pre-tokenizes a text dataset into the same layout.
#include "tools/apc/Commands.h"

#include "runtime/data/ArrowWriter.h"
#include "runtime/data/SampleData.h"
#include "runtime/data/TextDataset.h"
#include "runtime/support/Flags.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <unistd.h>

namespace apc::tools {

static const char *kDataUsage =
    "apc data: make and inspect training data\n"
    "\n"
    "usage: apc data <subcommand> [args] (apc data <subcommand> --help for each)\n"
    "\n"
    "subcommands:\n"
    "  sample          write a synthetic tokenized dataset (Arrow IPC stream)\n"
    "  tokenize        pre-tokenize a text dataset into an input_ids Arrow stream\n";

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
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
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

static std::atomic<bool> gInterrupted{false};
static void onSignal(int) { gInterrupted.store(true); }

static std::string formatSeconds(double seconds) {
  long long s = (long long)(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

static int runDataTokenize(int argc, char **argv, int first) {
  std::string input, output, tokenizerPath, templ;
  int64_t seqLen = 0, threads = 0, rowsPerBatch = 1000;
  FlagParser flags("apc data tokenize",
                   "pre-tokenize a text dataset (an Arrow file, a shard of a set, a glob or a "
                   "save_to_disk folder) into an Arrow IPC stream with one list<int32> column "
                   "input_ids, as datasets.map writes it; aprun --data reads the result",
                   "apc data tokenize IN -o OUT.arrow --tokenizer tokenizer.json "
                   "[--template T] [--seq-len N] [--threads N] [--rows-per-batch N]");
  flags.addPositional("IN", &input, "the text dataset", true);
  flags.addString("o", &output, "output Arrow IPC stream file (written atomically)", "OUT.arrow");
  flags.addString("tokenizer", &tokenizerPath, "Hugging Face tokenizer.json", "tokenizer.json");
  flags.addString("template", &templ, "prompt of each example, {column} naming text columns, "
                                      "\\n a newline (default: \"[SUMMARIZE] {article} "
                                      "[/SUMMARIZE]\\n{highlights}\")", "T");
  flags.addInt("seq-len", &seqLen, "keep the first N ids of each row (default 0: all)");
  flags.addInt("threads", &threads, "tokenizer threads (default: all cores)");
  flags.addInt("rows-per-batch", &rowsPerBatch, "rows per record batch (default 1000)");
  flags.require("o");
  flags.require("tokenizer");
  if (int code = flags.parseCommandLine(argc, argv, first); code >= 0)
    return code;
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "apc data tokenize: %s\n", what.c_str());
    return 2;
  };
  if (input.empty())
    return usage("missing IN, the text dataset (see --help)");
  if (output.empty() || output == "-")
    return usage("-o needs a file name (Arrow is not written to stdout)");
  if (seqLen < 0)
    return usage("--seq-len must be >= 0");
  if (threads < 0)
    return usage("--threads must be positive");
  if (rowsPerBatch < 1)
    return usage("--rows-per-batch must be positive");
  if (flags.given("template") && templ.empty())
    return usage("--template is empty");
  auto prompt = data::PromptTemplate::parse(
      flags.given("template") ? data::unescapeTemplate(templ) : std::string(data::kDefaultTemplate));
  if (!prompt)
    return usage(prompt.message());
  auto fail = [](const std::string &what) {
    std::fprintf(stderr, "apc data tokenize: %s\n", what.c_str());
    return 1;
  };
  auto tok = tokenizer::Tokenizer::load(tokenizerPath);
  if (!tok)
    return fail(tok.message());
  auto files = data::resolveDataFiles(input);
  if (!files)
    return fail(files.message());
  auto dataset = data::TextDataset::open(*files, *prompt);
  if (!dataset)
    return fail(dataset.message());
  // The pad id aprun would use with this tokenizer (its pad_token, else its eos_token),
  // recorded in the file so that training on it needs no --pad-id (docs/data.md).
  std::string padFrom = "pad_token";
  auto padId = data::padIdFromTokenizerConfig(tokenizerPath, *tok, padFrom);
  if (padId && *padId < 0) {
    padFrom = "eos_token";
    padId = data::padIdFromTokenizerConfig(tokenizerPath, *tok, padFrom);
  }
  if (!padId) { // the output is unpadded: a bad config only costs the recorded id
    std::fprintf(stderr, "apc data tokenize: warning: no pad id recorded in %s: %s\n",
                 output.c_str(), padId.message().c_str());
    padId = int64_t(-1);
  }
  data::TokenStreamWriter::Options wopts;
  wopts.rowsPerBatch = rowsPerBatch;
  wopts.schemaMetadata = {{"huggingface",
                           R"({"info": {"features": {"input_ids": {"feature": {"dtype": "int32", )"
                           R"("_type": "Value"}, "_type": "Sequence"}}}})"}};
  if (*padId >= 0) {
    wopts.schemaMetadata.emplace_back(data::kPadIdMetadataKey, std::to_string(*padId));
    wopts.schemaMetadata.emplace_back(data::kPadFromMetadataKey, padFrom);
  }
  auto writer = data::TokenStreamWriter::create(output, wopts);
  if (!writer)
    return fail(writer.message());

  // SIGINT/SIGTERM stop after the current chunk; the writer then removes its temporary
  // file, so OUT is never a truncated file.
  struct sigaction action {};
  action.sa_handler = onSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction oldInt {}, oldTerm {};
  sigaction(SIGINT, &action, &oldInt);
  sigaction(SIGTERM, &action, &oldTerm);

  data::TokenizeOptions topts;
  topts.maxLength = seqLen;
  topts.threads = threads > 0 ? int(threads) : std::max(1u, std::thread::hardware_concurrency());
  topts.cancel = &gInterrupted;
  bool tty = ::isatty(STDERR_FILENO);
  auto lastPrint = std::chrono::steady_clock::now();
  std::fprintf(stderr, "tokenizing %s (%zu file%s, %lld rows) with %d threads\n", input.c_str(),
               files->size(), files->size() == 1 ? "" : "s", (long long)dataset->numRows(),
               topts.threads);
  data::TokenizeProgress last;
  Status s = data::tokenizeDataset(
      *dataset, *tok, topts,
      [&](int64_t, const std::vector<std::vector<int32_t>> &rows) -> Status {
        for (const auto &r : rows)
          APC_RETURN_IF_ERROR(writer->append(r));
        return Status::ok();
      },
      [&](const data::TokenizeProgress &p) {
        last = p;
        auto now = std::chrono::steady_clock::now();
        bool done = p.rows == p.totalRows;
        if (!done && now - lastPrint < std::chrono::milliseconds(tty ? 200 : 2000))
          return;
        lastPrint = now;
        double secs = std::max(p.seconds, 1e-9);
        double rate = double(p.rows) / secs;
        double eta = rate > 0 ? double(p.totalRows - p.rows) / rate : 0;
        std::fprintf(stderr, "%s%lld/%lld rows (%.1f%%) | %.0f rows/s | %.0f tok/s | %.1f MB/s | "
                             "ETA %s%s",
                     tty ? "\r" : "", (long long)p.rows, (long long)p.totalRows,
                     p.totalRows ? 100.0 * double(p.rows) / double(p.totalRows) : 100.0, rate,
                     double(p.tokens) / secs, double(p.bytes) / secs / 1e6,
                     formatSeconds(eta).c_str(), tty ? "" : "\n");
        std::fflush(stderr);
      });
  if (tty)
    std::fputc('\n', stderr);
  if (s)
    s = writer->finish();
  sigaction(SIGINT, &oldInt, nullptr);
  sigaction(SIGTERM, &oldTerm, nullptr);
  if (!s) {
    bool interrupted = gInterrupted.load();
    std::string what = s.message();
    writer = Result<data::TokenStreamWriter>::error(what); // removes the temporary file
    if (interrupted) {
      std::fprintf(stderr, "apc data tokenize: interrupted; %s was not written\n", output.c_str());
      return 130;
    }
    return fail(output + ": " + what);
  }
  double secs = std::max(last.seconds, 1e-9);
  std::printf("wrote %s: %lld rows, %lld tokens, %lld record batches, column input_ids "
              "list<int32>; %.1f s, %.0f rows/s, %.0f tok/s, %.1f MB/s (%d threads)\n",
              output.c_str(), (long long)writer->numRows(), (long long)writer->numValues(),
              (long long)writer->numRecordBatches(), last.seconds, double(last.rows) / secs,
              double(last.tokens) / secs, double(last.bytes) / secs / 1e6, topts.threads);
  if (*padId >= 0)
    std::printf("recorded pad id %lld (the tokenizer's %s) in %s: aprun pads short rows with it "
                "unless given --pad-id (or, for an eos_token, a plan's pad_id)\n",
                (long long)*padId, padFrom.c_str(), output.c_str());
  else
    std::printf("no pad id recorded: train on %s with aprun --pad-id N (its rows are of "
                "different lengths)\n", output.c_str());
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
  if (sub == "tokenize")
    return runDataTokenize(argc, argv, first + 1);
  std::fprintf(stderr, "apc data: unknown subcommand '%s'\n\n%s", sub.c_str(), kDataUsage);
  return 2;
}

} // namespace apc::tools
