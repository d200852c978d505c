// Fuzzes safetensors::File::open: the input is the whole file. On success every tensor
// is read (toDoubles touches each byte) and the promises of Safetensors.h are checked:
// sizes match shapes and dtypes, views are in data-offset order and do not overlap.
#include "runtime/safetensors/Safetensors.h"
#include "test/fuzz/FuzzSupport.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz::InputFile input;
  const std::string &path = input.write(data, size);
  Result<safetensors::File> file = safetensors::File::open(path);
  fuzz::report(file ? "accepted" : file.status().message());
  if (!file) {
    APC_FUZZ_CHECK(fuzz::namesFile(file.status().message(), path), "message: %s",
                   file.status().message().c_str());
    return 0;
  }
  const uint8_t *previousEnd = nullptr;
  for (const safetensors::TensorView &t : file->tensors()) {
    size_t width = safetensors::dtypeSize(t.dtype);
    APC_FUZZ_CHECK(width > 0, "tensor '%s' has an invalid dtype", t.name.c_str());
    int64_t elements = t.numElements();
    APC_FUZZ_CHECK(elements >= 0 && uint64_t(elements) * width == t.nbytes,
                   "tensor '%s': %lld elements of %zu bytes but %zu bytes", t.name.c_str(),
                   (long long)elements, width, t.nbytes);
    if (t.nbytes > 0) {
      APC_FUZZ_CHECK(!previousEnd || t.data >= previousEnd,
                     "tensor '%s' overlaps the one before", t.name.c_str());
      previousEnd = t.data + t.nbytes;
    }
    APC_FUZZ_CHECK(file->find(t.name) == &t, "find('%s') does not return the tensor",
                   t.name.c_str());
    std::vector<double> values = safetensors::toDoubles(t);
    APC_FUZZ_CHECK(values.size() == size_t(elements), "toDoubles gave %zu values for %lld",
                   values.size(), (long long)elements);
    (void)safetensors::fromDoubles(values, t.dtype);
  }
  size_t metadataBytes = 0;
  for (const auto &[key, value] : file->metadata())
    metadataBytes += key.size() + value.size();
  APC_FUZZ_CHECK(metadataBytes <= size, "metadata of %zu bytes from a %zu-byte file",
                 metadataBytes, size);
  return 0;
}
