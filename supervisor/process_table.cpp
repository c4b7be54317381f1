// The process table: forking a child, reaping it, restarting it with capped backoff, and killing one
// that stalled. Part of the Supervisor class (supervisor.hpp), in its own file by job.
#include "supervisor/supervisor.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "supervisor/children.hpp"

namespace polymur {
namespace {

constexpr int64_t kBackoffStartMs = 100;
constexpr int64_t kBackoffMaxMs = 30000;

}  // namespace

const char* child_state_name(ChildState state) {
    switch (state) {
        case ChildState::absent: return "absent";
        case ChildState::pending: return "pending";
        case ChildState::running: return "running";
        case ChildState::stopping: return "stopping";
        case ChildState::backing_off: return "backing off";
        case ChildState::given_up: return "given up";
    }
    return "?";
}

std::string child_name(Role role, uint32_t index, const std::string& text) {
    if (role == Role::aggregator) return "aggregator";
    return role == Role::listener ? "listener " + std::to_string(index) : "output " + text;
}

void Supervisor::spawn(Child& child) {
    Heritage heritage;
    heritage.role = child.role;
    heritage.index = child.index;
    heritage.listen_fd = child.role == Role::listener ? listen_fd_.get() : -1;
    heritage.https_fd = child.role == Role::listener ? https_fd_.get() : -1;
    heritage.http_fd = child.role == Role::listener ? http_fd_.get() : -1;
    heritage.pickle_fd = child.role == Role::listener ? pickle_fd_.get() : -1;
    heritage.tls_fd = child.role == Role::listener ? tls_fd_.get() : -1;
    heritage.udp_fd = child.role == Role::listener ? udp_fd_.get() : -1;
    heritage.control = control_;
    heritage.config = &config_;
    heritage.rules = rules_table_.get();
    if (child.role == Role::output && !destinations_[child.index].console)
        heritage.destination = &destinations_[child.index].spec;
    heritage.supervisor_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        LOG_ERROR("supervisor: fork failed: %s; retrying", std::strerror(errno));
        child.state = ChildState::backing_off;
        child.restart_at_ms = monotonic_ms() + 1000;
        return;
    }
    if (pid == 0) become_child(heritage);
    if (child.started_ms != 0) ++child.restarts;  // it ran before
    child.state = ChildState::running;
    child.pid = pid;
    child.started_ms = monotonic_ms();
    child.restart_at_ms = 0;
    if (child.role == Role::output) control_->destinations[child.index].output_pid = static_cast<uint32_t>(pid);
}

Supervisor::Child* Supervisor::find_child(pid_t pid) {
    for (Child& c : listeners_)
        if (c.pid == pid) return &c;
    for (Child& c : outputs_)
        if (c.pid == pid) return &c;
    if (aggregator_.pid == pid) return &aggregator_;
    return nullptr;
}

void Supervisor::reap_children() {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        if (Child* child = find_child(pid)) {
            child_exited(*child, status);
        } else {
            // Not in the process table: a process this one inherited (its pid came from a parent that
            // forked before exec'ing polymur). Reaped, so it leaves no zombie; nothing else to do.
            LOG_INFO("supervisor: reaped pid %d, which is none of its children (%s %d)", pid,
                     WIFSIGNALED(status) ? "killed by signal" : "exited with code",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
    }
}

void Supervisor::child_exited(Child& child, int status) {
    const std::string name = child_name(child.role, child.index, destinations_[child.index].text);
    pid_t pid = child.pid;
    child.pid = 0;
    int64_t now = monotonic_ms();
    int64_t lived = now - child.started_ms;
    std::ostringstream how;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFSIGNALED(status))
        how << "killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")"
            << (WCOREDUMP(status) ? ", core dumped" : "");
    else how << "exited with code " << WEXITSTATUS(status);

    if (child.role == Role::output && destinations_[child.index].removing &&
        (clean || !queue_moves(destinations_[child.index]))) {
        LOG_INFO("%s (pid %d): %s after its destination was removed", name.c_str(), pid, how.str().c_str());
        child.state = ChildState::absent;
        finish_removals();
        return;
    }
    if (state_ != State::running) {
        LOG_INFO("%s (pid %d): %s during shutdown", name.c_str(), pid, how.str().c_str());
        child.state = ChildState::absent;
        return;
    }
    ++child.deaths;
    if (WIFEXITED(status) && WEXITSTATUS(status) == kExitDoNotRestart) {
        LOG_ERROR("%s (pid %d): %s: a configuration or state problem it reported above; not restarting it",
                  name.c_str(), pid, how.str().c_str());
        child.state = ChildState::given_up;
        if (child.role == Role::listener) {
            // Without its listeners the relay accepts nothing: stop, and let the exit code say why.
            exit_code_ = kExitDoNotRestart;
            begin_shutdown("a listener cannot start");
        }
        return;
    }
    // A child that lived --backoff-reset seconds restarts without delay history.
    child.backoff_ms = lived >= static_cast<int64_t>(config_.backoff_reset_s) * 1000
        ? kBackoffStartMs
        : std::min(std::max(child.backoff_ms * 2, kBackoffStartMs), kBackoffMaxMs);
    child.restart_at_ms = now + child.backoff_ms;
    child.state = ChildState::backing_off;
    LOG_WARN("%s (pid %d): %s after %lld ms%s; restarting in %lld ms", name.c_str(), pid, how.str().c_str(),
             static_cast<long long>(lived), clean ? " (unexpected)" : "", static_cast<long long>(child.backoff_ms));
}

// A child whose loop stopped (SIGSTOP, a hang) stops refreshing its heartbeat; an output whose
// destination accepts the connection but takes no data stops advancing its progress stamp.
// Either way it is killed and restarted. A slow reader still makes progress, so it is left alone.
void Supervisor::check_stalls(int64_t now) {
    const int64_t limit = static_cast<int64_t>(config_.stall_timeout_s) * 1000;
    auto stale = [&](const Child& c, uint64_t stamp) {
        return c.pid && now - c.started_ms > limit && now - static_cast<int64_t>(stamp) > limit;
    };
    for (Child& c : listeners_) {
        if (stale(c, control_->workers[c.index].heartbeat_ms.load(std::memory_order_relaxed))) {
            LOG_WARN("listener %u (pid %d): no heartbeat for %u s (stalled); killing it", c.index, c.pid,
                     config_.stall_timeout_s);
            kill(c.pid, SIGKILL);
            c.started_ms = now;  // one kill per stall; the reaper restarts it
        }
    }
    for (Child& c : outputs_) {
        const shm::DestinationSlot& s = control_->destinations[c.index];
        uint64_t heartbeat = s.heartbeat_ms.load(std::memory_order_relaxed);
        uint64_t progress = s.progress_ms.load(std::memory_order_relaxed);
        if (stale(c, heartbeat)) {
            LOG_WARN("output %s (pid %d): no heartbeat for %u s (stalled); killing it",
                     destinations_[c.index].text.c_str(), c.pid, config_.stall_timeout_s);
        } else if (stale(c, progress)) {
            LOG_WARN("output %s (pid %d): the destination accepted nothing for %u s (stalled); killing it",
                     destinations_[c.index].text.c_str(), c.pid, config_.stall_timeout_s);
        } else {
            continue;
        }
        kill(c.pid, SIGKILL);
        c.started_ms = now;
    }
    if (stale(aggregator_, control_->aggregator.heartbeat_ms.load(std::memory_order_relaxed))) {
        LOG_WARN("aggregator (pid %d): no heartbeat for %u s (stalled); killing it", aggregator_.pid,
                 config_.stall_timeout_s);
        kill(aggregator_.pid, SIGKILL);
        aggregator_.started_ms = now;
    }
}

size_t Supervisor::running_children(Role role) const {
    size_t n = 0;
    if (role == Role::aggregator) return aggregator_.pid != 0;
    if (role == Role::listener) {
        for (const Child& c : listeners_) n += c.pid != 0;
    } else {
        for (const Child& c : outputs_) n += c.pid != 0;
    }
    return n;
}

}  // namespace polymur
