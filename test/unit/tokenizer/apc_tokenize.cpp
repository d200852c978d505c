// apc-tokenize: a test and benchmark helper over runtime/tokenizer (not an installed tool).
//
//   apc-tokenize TOKENIZER.json RECORDS [--no-special] [--skip-special]
//       prints one JSON line per record: {"ids": [...], "decoded": "..."}
//   apc-tokenize TOKENIZER.json RECORDS --bench [--repeat N] [--threads N]
//       encodes every record (without special tokens) N times and prints
//       {"tokens": T, "bytes": B, "seconds": S, "threads": N}
//
// RECORDS is binary so that any bytes (invalid UTF-8 included) travel unchanged: each
// record is a 4-byte little-endian length and that many bytes.
#include "runtime/tokenizer/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

using apc::tokenizer::Tokenizer;

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: apc-tokenize TOKENIZER.json RECORDS [--no-special] "
                         "[--skip-special] [--bench [--repeat N] [--threads N]]\n");
    return 2;
  }
  bool addSpecial = true, skipSpecial = false, bench = false;
  int repeat = 1, threads = 1;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-special")
      addSpecial = false;
    else if (a == "--skip-special")
      skipSpecial = true;
    else if (a == "--bench")
      bench = true;
    else if (a == "--repeat" && i + 1 < argc)
      repeat = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "apc-tokenize: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  auto tok = Tokenizer::load(argv[1]);
  if (!tok) {
    std::fprintf(stderr, "apc-tokenize: %s\n", tok.message().c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "apc-tokenize: %s: cannot open\n", argv[2]);
    return 1;
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  for (size_t pos = 0; pos < data.size();) {
    if (data.size() - pos < 4) {
      std::fprintf(stderr, "apc-tokenize: %s: truncated record header\n", argv[2]);
      return 1;
    }
    uint32_t len;
    std::memcpy(&len, data.data() + pos, 4);
    pos += 4;
    if (data.size() - pos < len) {
      std::fprintf(stderr, "apc-tokenize: %s: truncated record\n", argv[2]);
      return 1;
    }
    records.emplace_back(data.substr(pos, len));
    pos += len;
  }

  if (bench) {
    size_t bytes = 0;
    for (const std::string &r : records)
      bytes += r.size();
    std::atomic<size_t> tokens{0};
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t local = 0;
        for (int r = 0; r < repeat; ++r)
          for (size_t i = t; i < records.size(); i += threads)
            local += tok->encode(records[i], false).size();
        tokens += local;
      });
    for (std::thread &th : pool)
      th.join();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << nlohmann::json{{"tokens", tokens.load()}, {"bytes", bytes * repeat},
                                {"seconds", seconds}, {"threads", threads}}
                     .dump()
              << "\n";
    return 0;
  }
  for (const std::string &r : records) {
    std::vector<int32_t> ids = tok->encode(r, addSpecial);
    nlohmann::json line{{"ids", ids}, {"decoded", tok->decode(ids, skipSpecial)}};
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return 0;
}
