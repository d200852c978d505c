// Fuzzes data::parseSaveToDiskState: the input is the state.json of a datasets
// save_to_disk folder. Every shard name it returns must be a plain file name of the
// folder (non-empty, no '/', not "." or ".."), so that joining it to the folder stays
// inside it.
#include "runtime/data/TextDataset.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = "data/train/state.json";
  auto names = data::parseSaveToDiskState(fuzz::asText(data, size), path);
  fuzz::report(names ? std::to_string(names->size()) + " shards" : names.status().message());
  if (!names) {
    APC_FUZZ_CHECK(fuzz::namesFile(names.status().message(), path), "message: %s",
                   names.status().message().c_str());
    return 0;
  }
  APC_FUZZ_CHECK(!names->empty(), "no shard accepted");
  for (const std::string &name : *names)
    APC_FUZZ_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." &&
                       name != "..",
                   "shard name '%s' is not a file of the folder", name.c_str());
  return 0;
}
