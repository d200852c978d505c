#include "runtime/data/TextDataset.h"

#include "runtime/tokenizer/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <glob.h>

namespace apc::data {

namespace fs = std::filesystem;

const char *const kDefaultTemplate = "[SUMMARIZE] {article} [/SUMMARIZE]\n{highlights}";

namespace {

// Quoted, with newlines and tabs spelled as escapes so messages stay one line.
std::string quote(const std::string &s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\n' ? std::string("\\n") : c == '\t' ? std::string("\\t") : std::string(1, c);
  return out + "'";
}

bool readText(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return bool(in) || in.eof();
}

Result<std::vector<std::string>> saveToDiskFiles(const std::string &dir) {
  std::string statePath = (fs::path(dir) / "state.json").string(), text;
  if (!readText(statePath, text))
    return Result<std::vector<std::string>>::error(statePath + ": cannot read");
  auto names = parseSaveToDiskState(text, statePath);
  if (!names)
    return names;
  std::vector<std::string> files;
  for (const std::string &name : *names) {
    std::string path = (fs::path(dir) / name).string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      return Result<std::vector<std::string>>::error(
          statePath + ": \"_data_files\" lists " + quote(name) + ", which does not exist");
    files.push_back(path);
  }
  return files;
}

} // namespace

Result<std::vector<std::string>> parseSaveToDiskState(const std::string &text,
                                                      const std::string &statePath) {
  using R = Result<std::vector<std::string>>;
  nlohmann::json state = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded() || !state.is_object())
    return R::error(statePath + ": not a JSON object");
  auto it = state.find("_data_files");
  if (it == state.end() || !it->is_array() || it->empty())
    return R::error(statePath +
                    ": no \"_data_files\" list (is this a datasets save_to_disk folder?)");
  std::vector<std::string> names;
  for (const auto &entry : *it) {
    auto filename = entry.is_object() ? entry.find("filename") : entry.end();
    if (filename == entry.end() || !filename->is_string())
      return R::error(statePath + ": an entry of \"_data_files\" has no \"filename\" string");
    std::string name = filename->get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      return R::error(statePath + ": \"_data_files\" names " + quote(name) +
                      ", not a file of the folder");
    names.push_back(name);
  }
  return names;
}

Result<std::vector<std::string>> resolveDataFiles(const std::string &path) {
  using R = Result<std::vector<std::string>>;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "state.json", ec))
      return saveToDiskFiles(path);
    std::vector<std::string> files;
    for (const auto &entry : fs::directory_iterator(path, ec))
      if (entry.is_regular_file() && entry.path().extension() == ".arrow")
        files.push_back(entry.path().string());
    if (ec)
      return R::error(path + ": cannot list the folder: " + ec.message());
    if (files.empty())
      return R::error(path + ": a folder with no state.json and no *.arrow file");
    std::sort(files.begin(), files.end());
    return files;
  }
  if (path.find_first_of("*?[") != std::string::npos && !fs::exists(path, ec)) {
    glob_t g{};
    int rc = ::glob(path.c_str(), 0, nullptr, &g);
    std::vector<std::string> files;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (fs::is_regular_file(g.gl_pathv[i], ec))
          files.push_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (files.empty())
      return R::error(path + ": the pattern matches no file");
    std::sort(files.begin(), files.end());
    return files;
  }
  if (!fs::exists(path, ec))
    return R::error(path + ": no such file or folder");
  // One shard of a set: read the whole set in order.
  static const std::regex shard(R"((.*)-(\d+)-of-(\d+)(\.arrow))");
  std::smatch m;
  std::string name = fs::path(path).filename().string();
  if (std::regex_match(name, m, shard)) {
    int64_t count = std::stoll(m[3].str());
    size_t width = m[2].str().size();
    if (count < 1 || count > 1000000)
      return R::error(path + ": a shard name with " + m[3].str() + " shards");
    std::vector<std::string> files;
    for (int64_t i = 0; i < count; ++i) {
      std::string index = std::to_string(i);
      if (index.size() < width)
        index.insert(0, width - index.size(), '0');
      std::string file =
          (fs::path(path).parent_path() / (m[1].str() + "-" + index + "-of-" + m[3].str() + m[4].str()))
              .string();
      if (!fs::is_regular_file(file, ec))
        return R::error(path + ": shard " + std::to_string(i) + " of " + m[3].str() +
                        " of the set is missing (" + file + ")");
      files.push_back(file);
    }
    return files;
  }
  return std::vector<std::string>{path};
}

std::string unescapeTemplate(const std::string &text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      char c = text[i + 1];
      if (c == 'n' || c == 't' || c == 'r' || c == '\\') {
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : '\\';
        ++i;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

Result<PromptTemplate> PromptTemplate::parse(const std::string &text) {
  using R = Result<PromptTemplate>;
  PromptTemplate t;
  t.text_ = text;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty())
      t.pieces_.push_back({literal, -1});
    literal.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      literal += '{';
      ++i;
    } else if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      literal += '}';
      ++i;
    } else if (c == '{') {
      size_t end = text.find('}', i + 1);
      if (end == std::string::npos)
        return R::error("template " + quote(text) + ": '{' at offset " + std::to_string(i) +
                        " is not closed (write {{ for a literal brace)");
      std::string name = text.substr(i + 1, end - i - 1);
      if (name.empty() || name.find('{') != std::string::npos)
        return R::error("template " + quote(text) + ": empty or malformed placeholder at offset " +
                        std::to_string(i));
      flush();
      auto it = std::find(t.columns_.begin(), t.columns_.end(), name);
      int index = int(it - t.columns_.begin());
      if (it == t.columns_.end())
        t.columns_.push_back(name);
      t.pieces_.push_back({"", index});
      i = end;
    } else if (c == '}') {
      return R::error("template " + quote(text) + ": '}' at offset " + std::to_string(i) +
                      " closes nothing (write }} for a literal brace)");
    } else {
      literal += c;
    }
  }
  flush();
  if (t.columns_.empty())
    return R::error("template " + quote(text) + " names no column (placeholders are {column})");
  return t;
}

Result<TextDataset> TextDataset::open(const std::vector<std::string> &files,
                                      const PromptTemplate &prompt) {
  TextDataset d;
  d.prompt_ = prompt;
  d.files_ = files;
  for (const std::string &path : files) {
    auto file = ArrowFile::open(path);
    if (!file)
      return file.status();
    Shard shard;
    shard.firstRow = d.numRows_;
    shard.numRows = file->numRows();
    for (const std::string &name : prompt.columns()) {
      auto column = file->stringColumn(name);
      if (!column)
        return Result<TextDataset>::error(column.message() + " (the template " +
                                          quote(prompt.text()) + " needs it; pass --template)");
      int64_t firstNull = -1;
      if (int64_t nulls = column->nullCount(&firstNull); nulls > 0)
        return Result<TextDataset>::error(nullRowsMessage(path, name, nulls, firstNull));
      shard.columns.push_back(std::move(*column));
    }
    d.numRows_ += shard.numRows;
    if (shard.numRows > 0)
      d.shards_.push_back(std::move(shard));
  }
  return d;
}

void TextDataset::render(int64_t row, std::string &out) const {
  out.clear();
  auto it = std::upper_bound(shards_.begin(), shards_.end(), row,
                             [](int64_t r, const Shard &s) { return r < s.firstRow; });
  if (it == shards_.begin())
    return;
  const Shard &shard = *(it - 1);
  int64_t local = row - shard.firstRow;
  if (local < 0 || local >= shard.numRows)
    return;
  for (const PromptTemplate::Piece &p : prompt_.pieces()) {
    if (p.column < 0)
      out += p.literal;
    else
      out += shard.columns[size_t(p.column)].row(local);
  }
}

Status tokenizeDataset(
    const TextDataset &dataset, const tokenizer::Tokenizer &tokenizer,
    const TokenizeOptions &options,
    const std::function<Status(int64_t, const std::vector<std::vector<int32_t>> &)> &sink,
    const std::function<void(const TokenizeProgress &)> &progress) {
  const int threads = std::max(1, options.threads);
  const int64_t chunk = std::max<int64_t>(1, options.chunkRows);
  const int64_t total = dataset.numRows();
  auto start = std::chrono::steady_clock::now();
  TokenizeProgress p;
  p.totalRows = total;
  std::vector<std::vector<int32_t>> rows;
  std::vector<int64_t> bytes(static_cast<size_t>(threads), 0);
  for (int64_t first = 0; first < total; first += chunk) {
    if (options.cancel && options.cancel->load())
      return Status::error("interrupted");
    int64_t n = std::min(chunk, total - first);
    rows.assign(size_t(n), {});
    std::atomic<int64_t> next{0};
    std::fill(bytes.begin(), bytes.end(), 0);
    auto work = [&](int w) {
      std::string text;
      for (int64_t i; (i = next.fetch_add(16)) < n;)
        for (int64_t r = i; r < std::min(n, i + 16); ++r) {
          dataset.render(first + r, text);
          bytes[size_t(w)] += int64_t(text.size());
          std::vector<int32_t> ids = tokenizer.encode(text, options.addSpecialTokens);
          if (options.maxLength > 0 && int64_t(ids.size()) > options.maxLength)
            ids.resize(size_t(options.maxLength));
          rows[size_t(r)] = std::move(ids);
        }
    };
    int useThreads = int(std::min<int64_t>(threads, (n + 15) / 16));
    std::vector<std::thread> pool;
    for (int w = 1; w < useThreads; ++w)
      pool.emplace_back(work, w);
    work(0);
    for (std::thread &t : pool)
      t.join();
    APC_RETURN_IF_ERROR(sink(first, rows));
    p.rows += n;
    for (const auto &r : rows)
      p.tokens += int64_t(r.size());
    for (int64_t b : bytes)
      p.bytes += b;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress)
      progress(p);
  }
  if (options.cancel && options.cancel->load())
    return Status::error("interrupted");
  return Status::ok();
}

Result<int64_t> padIdFromTokenizerConfig(const std::string &tokenizerPath,
                                         const tokenizer::Tokenizer &tokenizer,
                                         const std::string &key) {
  std::string path = (fs::path(tokenizerPath).parent_path() / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::exists(path, ec))
    return int64_t(-1);
  std::string text;
  if (!readText(path, text))
    return Result<int64_t>::error(path + ": cannot read");
  return padIdFromTokenizerConfigText(text, path, tokenizerPath, tokenizer, key);
}

Result<int64_t> padIdFromTokenizerConfigText(const std::string &text, const std::string &path,
                                             const std::string &tokenizerPath,
                                             const tokenizer::Tokenizer &tokenizer,
                                             const std::string &key) {
  nlohmann::json config = nlohmann::json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return Result<int64_t>::error(path + ": not a JSON object");
  auto it = config.find(key);
  if (it == config.end() || it->is_null())
    return int64_t(-1);
  std::string token;
  auto content = it->is_object() ? it->find("content") : it->end();
  if (it->is_string())
    token = it->get<std::string>();
  else if (content != it->end() && content->is_string())
    token = content->get<std::string>();
  else
    return Result<int64_t>::error(path + ": \"" + key + "\" is neither a string nor an object "
                                         "with \"content\"");
  auto id = tokenizer.tokenToId(token);
  if (!id)
    return Result<int64_t>::error(path + ": \"" + key + "\" " + quote(token) +
                                  " is not a token of " + tokenizerPath);
  return int64_t(*id);
}

Result<std::optional<int64_t>> recordedPadId(const ArrowFile &file, int64_t vocab) {
  std::optional<std::string> recorded = file.schemaMetadata(kPadIdMetadataKey);
  if (!recorded)
    return std::optional<int64_t>();
  char *end = nullptr;
  errno = 0;
  long long id = std::strtoll(recorded->c_str(), &end, 10);
  if (recorded->empty() || *end != '\0' || errno || id < 0 || id >= vocab)
    return Result<std::optional<int64_t>>::error(
        file.path() + ": its schema metadata '" + kPadIdMetadataKey + "' is \"" + *recorded +
        "\", not a token id below the vocabulary size " + std::to_string(vocab) +
        "; pass --pad-id N");
  return std::optional<int64_t>(id);
}

} // namespace apc::data
