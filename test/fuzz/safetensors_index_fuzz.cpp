// Fuzzes checkpoint::parseSafetensorsIndex: the input is a model.safetensors.index.json.
// Every shard path it returns must lie inside the index's folder: the folder joined with
// a relative path that has no ".." part.
#include "runtime/checkpoint/SafetensorsIndex.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <filesystem>
#include <string>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string folder = "models/llama";
  const std::string path = folder + "/model.safetensors.index.json";
  auto index = checkpoint::parseSafetensorsIndex(fuzz::asText(data, size), path);
  fuzz::report(index ? std::to_string(index->size()) + " tensors" : index.status().message());
  if (!index) {
    APC_FUZZ_CHECK(fuzz::namesFile(index.status().message(), path), "message: %s",
                   index.status().message().c_str());
    return 0;
  }
  for (const auto &[name, shard] : *index) {
    APC_FUZZ_CHECK(shard.rfind(folder + "/", 0) == 0 && shard.size() > folder.size() + 1,
                   "tensor '%s': shard '%s' is not in %s", name.c_str(), shard.c_str(),
                   folder.c_str());
    std::filesystem::path inside(shard.substr(folder.size() + 1));
    APC_FUZZ_CHECK(!inside.is_absolute(), "tensor '%s': absolute shard '%s'", name.c_str(),
                   shard.c_str());
    for (const auto &part : inside)
      APC_FUZZ_CHECK(part != "..", "tensor '%s': shard '%s' leaves the folder", name.c_str(),
                     shard.c_str());
  }
  return 0;
}
