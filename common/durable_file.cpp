#include "common/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/unique_fd.hpp"

namespace polymur {

bool sync_directory_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fd && fsync(fd.get()) == 0;
}

bool replace_file_durably(const std::string& path, std::string_view content, std::string& error) {
    const std::string tmp = path + ".tmp";
    auto fail = [&](const char* step) {
        error = path + ": cannot " + step + ": " + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    };
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));  // state: the service's own
    if (!fd) return fail("create the temporary file");
    for (size_t done = 0; done < content.size();) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ENOSPC;
            return fail("write");
        }
        done += static_cast<size_t>(n);
    }
    if (fsync(fd.get()) != 0) return fail("fsync");
    if (::close(fd.release()) != 0) return fail("close");
    if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
    if (!sync_directory_of(path)) {
        // The new content is in place; only its survival of a power loss is in doubt.
        error = path + ": written, but cannot fsync its directory: " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace polymur
