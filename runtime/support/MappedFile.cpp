#include "runtime/support/MappedFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace apc {

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(data_, size_);
}

Result<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string &path) {
  using R = Result<std::shared_ptr<const MappedFile>>;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return R::error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return R::error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return R::error(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->size_ = size_t(st.st_size);
  if (file->size_ > 0) {
    void *data = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    if (data == MAP_FAILED) {
      ::close(fd);
      return R::error(path + ": cannot mmap: " + std::strerror(err));
    }
    file->data_ = data;
  }
  ::close(fd);
  return std::shared_ptr<const MappedFile>(std::move(file));
}

} // namespace apc
