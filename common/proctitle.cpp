#include "common/proctitle.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

extern char** environ;

namespace polymur {
namespace {
char* g_area = nullptr;
size_t g_area_size = 0;
}  // namespace

void proctitle_init(int argc, char** argv) {
    if (argc == 0 || !argv[0]) return;
    // The title may use argv and environment strings where they are contiguous; the environment
    // moves to the heap first.
    char* end = argv[0] + std::strlen(argv[0]) + 1;
    for (int i = 1; i < argc; ++i)
        if (argv[i] == end) end = argv[i] + std::strlen(argv[i]) + 1;
    size_t env_count = 0;
    while (environ[env_count]) ++env_count;
    for (size_t i = 0; i < env_count; ++i)
        if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
    char** moved = new char*[env_count + 1];
    for (size_t i = 0; i < env_count; ++i) moved[i] = strdup(environ[i]);
    moved[env_count] = nullptr;
    environ = moved;
    // argv strings the program still reads (Boost keeps copies; main copies what it needs first).
    g_area = argv[0];
    g_area_size = static_cast<size_t>(end - argv[0]);
}

void proctitle_set(const char* title) {
    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (!g_area || g_area_size < 2) return;
    std::memset(g_area, 0, g_area_size);
    std::snprintf(g_area, g_area_size, "%s", title);
}

}  // namespace polymur
