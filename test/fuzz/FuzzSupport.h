// Helpers shared by the libFuzzer targets of test/fuzz (see README.md).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace apc::fuzz {

// Stops the run with a message when the parser broke one of its own promises; libFuzzer
// then saves the input like any other crash.
#define APC_FUZZ_CHECK(cond, ...)                                                           \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                                                   \
      std::fprintf(stderr, "\n");                                                          \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

// True when `message` is an error in the project's style: it starts with "<path>: ".
inline bool namesFile(const std::string &message, const std::string &path) {
  return message.size() > path.size() + 2 && message.compare(0, path.size(), path) == 0 &&
         message.compare(path.size(), 2, ": ") == 0;
}

// The input as text, for the parsers that take a string.
inline std::string asText(const uint8_t *data, size_t size) {
  return std::string(reinterpret_cast<const char *>(data), size);
}

// With APC_FUZZ_VERBOSE set, prints what the parser said about each input: handy to
// see whether seeds are accepted (`APC_FUZZ_VERBOSE=1 ./plan_fuzz seeds/plan/*`).
inline void report(const std::string &outcome) {
  static const bool verbose = std::getenv("APC_FUZZ_VERBOSE") != nullptr;
  if (verbose)
    std::fprintf(stderr, "apc-fuzz: %s\n", outcome.c_str());
}

// A file holding the current input, for parsers that take a path. It lives in memory
// (memfd) and is reached as /proc/self/fd/N, so no temporary files are left behind and
// parallel jobs (-jobs=N) do not share it.
class InputFile {
public:
  InputFile() {
    fd_ = ::memfd_create("apc-fuzz-input", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  InputFile(const InputFile &) = delete;
  InputFile &operator=(const InputFile &) = delete;
  ~InputFile() { ::close(fd_); }

  // Replaces the contents with `data` and returns the path.
  const std::string &write(const uint8_t *data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) {
      std::perror("ftruncate");
      std::abort();
    }
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::pwrite(fd_, data + done, size - done, off_t(done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        std::perror("pwrite");
        std::abort();
      }
      done += size_t(n);
    }
    return path_;
  }

private:
  int fd_ = -1;
  std::string path_;
};

} // namespace apc::fuzz
