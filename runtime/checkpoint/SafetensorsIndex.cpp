// Reading model.safetensors.index.json (SafetensorsIndex.h), apart from the weight
// loading so that the fuzz target of test/fuzz can run it on bytes.
#include "runtime/checkpoint/SafetensorsIndex.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace apc::checkpoint {
namespace fs = std::filesystem;

Result<std::map<std::string, std::string>> parseSafetensorsIndex(const std::string &text,
                                                                 const std::string &indexPath) {
  using R = Result<std::map<std::string, std::string>>;
  nlohmann::json index = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object())
    return R::error(indexPath + ": not a safetensors index (expected a JSON object with a "
                                "'weight_map' object)");
  std::map<std::string, std::string> map;
  fs::path folder = fs::path(indexPath).parent_path();
  for (auto &[name, file] : index["weight_map"].items()) {
    if (!file.is_string())
      return R::error(indexPath + ": weight_map['" + name + "'] is not a file name");
    // Weights come from the index's folder only: no absolute paths, no way out of it.
    fs::path shard(file.get<std::string>());
    bool escapes = shard.empty() || shard.is_absolute() || shard.has_root_name();
    for (const fs::path &part : shard)
      escapes = escapes || part == "..";
    if (escapes)
      return R::error(indexPath + ": weight_map['" + name + "'] is '" + shard.string() +
                      "'; shards must be files in the index's own folder");
    map[name] = (folder / shard).string();
  }
  return map;
}

} // namespace apc::checkpoint
