// A file that exists only in memory (memfd), for parsers that read a path: the config file reader and
// the queue file validation. One per fuzzer process, rewritten for every input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace polymur::fuzz {

class MemoryFile {
public:
    explicit MemoryFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
        if (fd_ < 0) std::abort();
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    // The file becomes `data`, then grows (sparse, zeros) to `size` if that is larger.
    void write(const uint8_t* data, size_t len, size_t size = 0) {
        if (ftruncate(fd_, 0) != 0) std::abort();
        for (size_t done = 0; done < len;) {
            ssize_t n = pwrite(fd_, data + done, len - done, static_cast<off_t>(done));
            if (n <= 0) std::abort();
            done += static_cast<size_t>(n);
        }
        if (size > len && ftruncate(fd_, static_cast<off_t>(size)) != 0) std::abort();
    }
    const std::string& path() const { return path_; }

private:
    int fd_;
    std::string path_;
};

}  // namespace polymur::fuzz
