#include "shm/mapping_guard.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>

#include "common/log.hpp"

namespace polymur::shm {
namespace {

// A process maps at most a few hundred queue files (one per destination, the aggregator's, the console's).
constexpr size_t kMaxMappings = 1024;

struct Mapping {
    std::atomic<uintptr_t> base {0};  // 0: a free slot
    std::atomic<size_t> size {0};
    std::atomic<bool> truncated {false};
    char path[256] = {};
};

Mapping g_mappings[kMaxMappings];
std::mutex g_registry;  // register and unregister only; the handler reads the atomics
std::atomic<int> g_action {static_cast<int>(OnTruncatedQueue::exit_process)};
std::atomic<int> g_exit_code {0};
char g_carrying_on[256] = "";
std::atomic<unsigned> g_truncated {0};
struct sigaction g_previous = {};
bool g_installed = false;

void pass_on(int sig, siginfo_t* info, void* context) {
    if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
        g_previous.sa_sigaction(sig, info, context);
        return;
    }
    if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
        g_previous.sa_handler(sig);
        return;
    }
    // The default action: the faulting instruction runs again on return and kills the process as before.
    signal(SIGBUS, SIG_DFL);
}

// SIGBUS is synchronous: it interrupts a load or store of our own ring code (a memcpy, an atomic), which
// holds no lock that log::write takes (it formats into a stack buffer and makes one write(2)), so logging
// from here is safe in practice.
void on_sigbus(int sig, siginfo_t* info, void* context) {
    const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Mapping& m : g_mappings) {
        const uintptr_t base = m.base.load(std::memory_order_acquire);
        const size_t size = m.size.load(std::memory_order_acquire);
        if (!base || address < base || address - base >= size || info->si_code != BUS_ADRERR) continue;
        const bool first = !m.truncated.exchange(true);
        if (first) g_truncated.fetch_add(1);
        if (g_action.load() == static_cast<int>(OnTruncatedQueue::exit_process)) {
            LOG_ERROR(
                "queue file %s shrank under this process (truncated while polymur runs): what it held past the "
                "cut is lost, and the file is refused until moved away; exiting",
                m.path);
            _exit(g_exit_code.load());
        }
        const uintptr_t offset_in_page = address % static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
        char* page = static_cast<char*>(info->si_addr) - offset_in_page;
        void* replaced = mmap(page, base + size - (address - offset_in_page), PROT_READ | PROT_WRITE,
                              MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (replaced == MAP_FAILED) break;
        if (first)
            LOG_ERROR(
                "queue file %s shrank under the running relay (truncated): what it held past the cut is lost; %s; "
                "move the file away and restart polymur",
                m.path, g_carrying_on);
        return;
    }
    pass_on(sig, info, context);
}

}  // namespace

void guard_queue_mappings(OnTruncatedQueue action, int exit_code, const char* carrying_on) {
    g_action.store(static_cast<int>(action));
    g_exit_code.store(exit_code);
    std::snprintf(g_carrying_on, sizeof g_carrying_on, "%s", carrying_on);
    if (g_installed) return;
    struct sigaction handler = {};
    handler.sa_sigaction = &on_sigbus;
    handler.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&handler.sa_mask);
    if (sigaction(SIGBUS, &handler, &g_previous) == 0) g_installed = true;
}

void register_queue_mapping(const void* base, size_t size, const std::string& path) {
    std::lock_guard<std::mutex> lock(g_registry);
    for (Mapping& m : g_mappings) {
        if (m.base.load()) continue;
        std::snprintf(m.path, sizeof m.path, "%s", path.c_str());
        m.truncated.store(false);
        m.size.store(size);
        m.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
        return;
    }
    // More mappings than slots: this one faults as an unguarded mapping would.
}

void unregister_queue_mapping(const void* base) {
    std::lock_guard<std::mutex> lock(g_registry);
    for (Mapping& m : g_mappings)
        if (m.base.load() == reinterpret_cast<uintptr_t>(base)) m.base.store(0, std::memory_order_release);
}

unsigned truncated_queue_mappings() { return g_truncated.load(); }

}  // namespace polymur::shm
