// Text datasets as Hugging Face `datasets` stores them, turned into token ids.
//
// A dataset is one or more Arrow IPC files read in order (resolveDataFiles): one file; a
// shard set (`name-00000-of-00003.arrow`: giving any one shard reads all of them); a glob
// (`train-*.arrow`, sorted by name); or a folder: a `save_to_disk` folder (its
// `state.json` lists the shards in `_data_files`, read in that order), else every
// `*.arrow` in it, sorted. Rows are numbered across the files in that order.
//
// Each example is the text of a prompt template whose `{column}` placeholders name string
// or large_string columns (`{{` and `}}` are literal braces); the default reproduces the
// tutorial's prompt. A placeholder naming a column that a file lacks is refused with the
// file's columns. Tokenization runs in parallel in chunks of rows, in row order.
#pragma once

#include "runtime/data/ArrowFile.h"
#include "runtime/support/Status.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace apc::tokenizer {
class Tokenizer;
}

namespace apc::data {

// The tutorial's prompt: "[SUMMARIZE] {article} [/SUMMARIZE]\n{highlights}".
extern const char *const kDefaultTemplate;

// The Arrow files of `path` (see above), in reading order; errors name the path.
Result<std::vector<std::string>> resolveDataFiles(const std::string &path);

// The shard names that a save_to_disk folder's state.json (`text`, read from
// `statePath`) lists in "_data_files", in order; errors name statePath. Each name is a
// plain file name (no '/', not "." or ".."); whether it exists is not checked here.
Result<std::vector<std::string>> parseSaveToDiskState(const std::string &text,
                                                      const std::string &statePath);

// Replaces the escapes \n, \t, \r and \\ of a template given on a command line.
std::string unescapeTemplate(const std::string &text);

class PromptTemplate {
public:
  static Result<PromptTemplate> parse(const std::string &text);
  const std::string &text() const { return text_; }
  // Column names in order of first use.
  const std::vector<std::string> &columns() const { return columns_; }
  struct Piece {
    std::string literal; // used when column < 0
    int column = -1;     // index into columns()
  };
  const std::vector<Piece> &pieces() const { return pieces_; }

private:
  std::string text_;
  std::vector<std::string> columns_;
  std::vector<Piece> pieces_;
};

class TextDataset {
public:
  static Result<TextDataset> open(const std::vector<std::string> &files,
                                  const PromptTemplate &prompt);
  int64_t numRows() const { return numRows_; }
  const std::vector<std::string> &files() const { return files_; }
  // Replaces `out` with the prompt of `row` (0 <= row < numRows()).
  void render(int64_t row, std::string &out) const;

private:
  struct Shard {
    int64_t firstRow = 0, numRows = 0;
    std::vector<StringColumn> columns; // one per template column
  };
  PromptTemplate prompt_;
  std::vector<std::string> files_;
  std::vector<Shard> shards_;
  int64_t numRows_ = 0;
};

// Token ids of many rows, flat: row r is ids[offsets[r], offsets[r+1]).
struct TokenRows {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> ids;
  int64_t numRows() const { return int64_t(offsets.size()) - 1; }
  void row(int64_t r, std::vector<int64_t> &out) const {
    out.assign(ids.begin() + offsets[size_t(r)], ids.begin() + offsets[size_t(r) + 1]);
  }
};

struct TokenizeOptions {
  int64_t maxLength = 0;   // > 0: keep the first maxLength ids of each row (BOS included)
  int threads = 1;         // worker threads
  int64_t chunkRows = 2048; // rows tokenized in parallel before `sink` sees them in order
  bool addSpecialTokens = true;
  const std::atomic<bool> *cancel = nullptr; // set: stop after the current chunk
};

struct TokenizeProgress {
  int64_t rows = 0, totalRows = 0, tokens = 0, bytes = 0;
  double seconds = 0;
};

// Tokenizes every row of `dataset` with `tokenizer`; `sink` receives the rows of each chunk
// in row order (its first row number and the ids of each row) and `progress` (optional)
// is called after each chunk. Fails with "interrupted" when *cancel becomes true, or with
// the first error of `sink`.
Status tokenizeDataset(
    const TextDataset &dataset, const tokenizer::Tokenizer &tokenizer,
    const TokenizeOptions &options,
    const std::function<Status(int64_t firstRow, const std::vector<std::vector<int32_t>> &rows)>
        &sink,
    const std::function<void(const TokenizeProgress &)> &progress = nullptr);

// The schema metadata keys under which `apc data tokenize` records the pad id it found
// and where from ("pad_token" or "eos_token"); aprun pads with it when given no --pad-id.
inline constexpr const char *kPadIdMetadataKey = "apc.pad_id";
inline constexpr const char *kPadFromMetadataKey = "apc.pad_from";
// The pad id recorded in `file` (nullopt: none); an error naming the file when the record
// is not a token id below `vocab`.
Result<std::optional<int64_t>> recordedPadId(const ArrowFile &file, int64_t vocab);

// The id of the token that tokenizer_config.json (next to `tokenizerPath`) names in `key`
// (`pad_token` by default, `eos_token`, ...; a string or an object with "content"): -1
// when the file or the key is absent or null; an error when the token is not in the
// tokenizer or the file is malformed.
Result<int64_t> padIdFromTokenizerConfig(const std::string &tokenizerPath,
                                         const tokenizer::Tokenizer &tokenizer,
                                         const std::string &key = "pad_token");
// The same from the text of a tokenizer_config.json read from `path`.
Result<int64_t> padIdFromTokenizerConfigText(const std::string &text, const std::string &path,
                                             const std::string &tokenizerPath,
                                             const tokenizer::Tokenizer &tokenizer,
                                             const std::string &key = "pad_token");

} // namespace apc::data
