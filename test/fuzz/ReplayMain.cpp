// main() of the replay build of a fuzz target (<name>_replay, see test/CMakeLists.txt):
// runs LLVMFuzzerTestOneInput once on every file given, and on every file of every
// folder given (sorted by name), without libFuzzer, so that ctest replays the inputs of
// test/fuzz/regressions/<target>/ with any compiler. A crash, a sanitizer report or a
// failed APC_FUZZ_CHECK ends the run; an empty or unreadable input list is an error too,
// so that a mistyped folder does not pass.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace fs = std::filesystem;

int main(int argc, char **argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      std::vector<std::string> inFolder;
      for (const auto &entry : fs::directory_iterator(argv[i], ec))
        if (entry.is_regular_file())
          inFolder.push_back(entry.path().string());
      std::sort(inFolder.begin(), inFolder.end());
      files.insert(files.end(), inFolder.begin(), inFolder.end());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.push_back(argv[i]);
    } else {
      std::fprintf(stderr, "%s: no such file or folder\n", argv[i]);
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s INPUT_OR_FOLDER... (no input files given)\n", argv[0]);
    return 2;
  }
  for (const std::string &path : files) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) {
      std::fprintf(stderr, "%s: cannot read\n", path.c_str());
      return 2;
    }
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", path.c_str(), bytes.size());
    // A copy of exactly the input's size, so that ASan sees a read past its end.
    std::vector<uint8_t> input(bytes.begin(), bytes.end());
    static uint8_t none = 0; // libFuzzer passes a valid pointer for an empty input too
    LLVMFuzzerTestOneInput(input.empty() ? &none : input.data(), input.size());
  }
  std::fprintf(stderr, "replayed %zu inputs\n", files.size());
  return 0;
}
