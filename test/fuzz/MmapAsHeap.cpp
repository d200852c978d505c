// Read-only file mappings as heap copies, so that AddressSanitizer sees reads past the
// end of a memory-mapped input.
//
// Safetensors and ArrowFile mmap the file they open. A real mapping is a whole number
// of pages: a read past the end of the file but inside its last page returns zeros and
// no sanitizer notices. The fuzz targets that open files link with
// -Wl,--wrap=mmap,--wrap=munmap (and the 64-bit names): read-only private mappings of a
// file become an exact-size heap block filled with pread, whose redzone ASan checks,
// and munmap frees them (so a leaked mapping shows up as a leak). Every other mapping
// goes to the real functions.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

extern "C" {
void *__real_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
void *__real_mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int __real_munmap(void *addr, size_t length);
}

namespace {

std::mutex &lock() {
  static std::mutex m;
  return m;
}
std::unordered_map<void *, size_t> &blocks() {
  static auto *b = new std::unordered_map<void *, size_t>; // never destroyed: used at exit
  return *b;
}

bool isFileReadMapping(void *addr, size_t length, int prot, int flags, int fd) {
  return !addr && length > 0 && prot == PROT_READ && (flags & MAP_PRIVATE) &&
         !(flags & (MAP_FIXED | MAP_ANONYMOUS)) && fd >= 0;
}

void *heapCopy(size_t length, int fd, off_t offset) {
  void *block = nullptr;
  if (::posix_memalign(&block, 4096, length) != 0) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  uint8_t *p = static_cast<uint8_t *>(block);
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, p + done, length - done, offset + off_t(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      std::free(block);
      errno = err;
      return MAP_FAILED;
    }
    if (n == 0) // past the end of the file: a real mapping reads zeros (or faults)
      break;
    done += size_t(n);
  }
  std::memset(p + done, 0, length - done);
  std::lock_guard<std::mutex> guard(lock());
  blocks()[block] = length;
  return block;
}

} // namespace

extern "C" void *__wrap_mmap(void *addr, size_t length, int prot, int flags, int fd,
                             off_t offset) {
  if (isFileReadMapping(addr, length, prot, flags, fd))
    return heapCopy(length, fd, offset);
  return __real_mmap(addr, length, prot, flags, fd, offset);
}

extern "C" void *__wrap_mmap64(void *addr, size_t length, int prot, int flags, int fd,
                               off_t offset) {
  if (isFileReadMapping(addr, length, prot, flags, fd))
    return heapCopy(length, fd, offset);
  return __real_mmap64(addr, length, prot, flags, fd, offset);
}

extern "C" int __wrap_munmap(void *addr, size_t length) {
  {
    std::lock_guard<std::mutex> guard(lock());
    auto it = blocks().find(addr);
    if (it != blocks().end()) {
      if (it->second != length)
        std::abort(); // unmapping with another size than mapped: a bug in the caller
      blocks().erase(it);
      std::free(addr);
      return 0;
    }
  }
  return __real_munmap(addr, length);
}
