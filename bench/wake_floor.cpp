// polymur-wake-floor: what waking up alone costs on this machine (docs/PERFORMANCE.md, "Idling").
//
//   polymur-wake-floor [--processes N] [--period-ms P] [--seconds S]
//
// While lines flow at a moderate rate, each of polymur's data processes (every listener worker and every
// output) wakes once per --linger-ms period and goes back to sleep. This forks N processes that do exactly
// that and nothing else: each sleeps until the next point of a grid of P ms periods on the monotonic clock
// (clock_nanosleep with an absolute time, as worker/linger.hpp does; the second half of the processes a
// quarter period later, as polymur's outputs), for S seconds. Each reads its own CPU time and wake-ups from
// /proc/self/schedstat before and after; the tool prints them per process and in all. What N processes
// cost here, doing no work at all, is the floor under any relay of that many processes waking that often:
// polymur at 1,000 lines/s cannot cost less than it.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

struct Sched {
    double cpu_ns = 0;
    double wakeups = 0;
};

Sched read_schedstat() {
    Sched s;
    int fd = open("/proc/self/schedstat", O_RDONLY);
    if (fd < 0) return s;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return s;
    buf[n] = '\0';
    unsigned long long run = 0, wait = 0, slices = 0;
    if (std::sscanf(buf, "%llu %llu %llu", &run, &wait, &slices) == 3) {
        s.cpu_ns = static_cast<double>(run);
        s.wakeups = static_cast<double>(slices);
    }
    return s;
}

void add_ns(timespec& t, long ns) {
    t.tv_nsec += ns;
    while (t.tv_nsec >= 1000000000L) {
        t.tv_nsec -= 1000000000L;
        ++t.tv_sec;
    }
}

// One process: sleeps on the grid for `seconds`, then writes "cpu_ns wakeups" to `fd`.
[[noreturn]] void sleeper(int fd, long period_ns, long offset_ns, double seconds) {
    timespec now {};
    clock_gettime(CLOCK_MONOTONIC, &now);
    // The grid is the same for every process: whole periods of the monotonic clock, plus the offset.
    const long long now_ns = now.tv_sec * 1000000000LL + now.tv_nsec;
    long long next_ns = (now_ns / period_ns + 1) * period_ns + offset_ns;
    timespec next {static_cast<time_t>(next_ns / 1000000000LL), static_cast<long>(next_ns % 1000000000LL)};
    const long periods = static_cast<long>(seconds * 1e9 / static_cast<double>(period_ns));
    const Sched before = read_schedstat();
    for (long i = 0; i < periods; ++i) {
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {}
        add_ns(next, period_ns);
    }
    const Sched after = read_schedstat();
    char line[128];
    int n =
        std::snprintf(line, sizeof line, "%.0f %.0f\n", after.cpu_ns - before.cpu_ns, after.wakeups - before.wakeups);
    if (write(fd, line, static_cast<size_t>(n)) != n) _exit(1);
    _exit(0);
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: polymur-wake-floor [--processes N] [--period-ms P] [--seconds S]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    int processes = 4;
    double period_ms = 5;
    double seconds = 10;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (i + 1 >= argc) usage();
        if (arg == "--processes") {
            processes = std::atoi(argv[++i]);
        } else if (arg == "--period-ms") {
            period_ms = std::atof(argv[++i]);
        } else if (arg == "--seconds") {
            seconds = std::atof(argv[++i]);
        } else {
            usage();
        }
    }
    if (processes < 1 || processes > 256 || period_ms <= 0 || seconds <= 0) usage();
    const long period_ns = static_cast<long>(period_ms * 1e6);
    std::vector<int> reads;
    std::vector<pid_t> pids;
    for (int i = 0; i < processes; ++i) {
        int fds[2];
        if (pipe(fds) != 0) {
            std::perror("pipe");
            return 1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            std::perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            sleeper(fds[1], period_ns, i < (processes + 1) / 2 ? 0 : period_ns / 4, seconds);
        }
        close(fds[1]);
        reads.push_back(fds[0]);
        pids.push_back(pid);
    }
    double total_ns = 0, total_wakeups = 0;
    int failed = 0;
    for (int i = 0; i < processes; ++i) {
        char buf[128] = {};
        ssize_t n = read(reads[i], buf, sizeof buf - 1);
        close(reads[i]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        double ns = 0, wakeups = 0;
        if (n <= 0 || std::sscanf(buf, "%lf %lf", &ns, &wakeups) != 2 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            ++failed;
            continue;
        }
        total_ns += ns;
        total_wakeups += wakeups;
        std::printf("process %d: %.1f us of CPU per wake-up, %.0f wake-ups/s, %.3f %% of a core\n", i,
                    wakeups ? ns / wakeups / 1e3 : 0.0, wakeups / seconds, ns / (seconds * 1e9) * 100);
    }
    if (failed) {
        std::fprintf(stderr, "polymur-wake-floor: %d of %d processes failed\n", failed, processes);
        return 1;
    }
    std::printf("processes=%d period_ms=%g seconds=%g us_per_wakeup=%.1f wakeups_per_s=%.0f core_percent=%.3f\n",
                processes, period_ms, seconds, total_wakeups ? total_ns / total_wakeups / 1e3 : 0.0,
                total_wakeups / seconds, total_ns / (seconds * 1e9) * 100);
    return 0;
}
