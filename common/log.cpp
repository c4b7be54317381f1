#include "common/log.hpp"

#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace polymur::log {
namespace {

char g_role[96] = "polymur";

bool stderr_is_journal() {
    static int cached = -1;
    if (cached < 0) {
        cached = 0;
        const char* stream = std::getenv("JOURNAL_STREAM");
        struct stat st = {};
        unsigned long long dev = 0, ino = 0;
        if (stream && fstat(STDERR_FILENO, &st) == 0 && std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2)
            cached = (dev == st.st_dev && ino == st.st_ino) ? 1 : 0;
    }
    return cached == 1;
}

}  // namespace

void set_role(const char* role) { std::snprintf(g_role, sizeof g_role, "%s", role); }

void vwrite(Level level, const char* format, va_list args) {
    char line[2048];
    size_t used = 0;
    if (stderr_is_journal()) {
        used = std::snprintf(line, sizeof line, "<%d>%s: ", static_cast<int>(level), g_role);
    } else {
        struct timespec now = {};
        clock_gettime(CLOCK_REALTIME, &now);
        struct tm tm = {};
        gmtime_r(&now.tv_sec, &tm);
        used = std::snprintf(line, sizeof line, "%04d/%02d/%02d %02d:%02d:%02d.%03ld [%s %d] ", tm.tm_year + 1900,
                             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000, g_role,
                             static_cast<int>(getpid()));
    }
    if (used >= sizeof line) used = sizeof line - 1;
    int body = std::vsnprintf(line + used, sizeof line - used, format, args);
    if (body > 0) used += static_cast<size_t>(body);
    if (used > sizeof line - 2) used = sizeof line - 2;
    line[used++] = '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line, used);
    (void)ignored;
}

void write(Level level, const char* format, ...) {
    va_list args;
    va_start(args, format);
    vwrite(level, format, args);
    va_end(args);
}

void capture_libevent() {
    event_set_log_callback([](int severity, const char* message) {
        Level level = severity >= EVENT_LOG_ERR ? Level::error
            : severity == EVENT_LOG_WARN        ? Level::warning
                                                : Level::debug;
        if (level != Level::debug) write(level, "libevent: %s", message);
    });
}

}  // namespace polymur::log
