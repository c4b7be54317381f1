#include "supervisor/supervisor.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/interprocess/anonymous_shared_memory.hpp>

#include "common/clock.hpp"
#include "common/durable_file.hpp"
#include "common/guard.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "route/destination.hpp"
#include "route/hash_ring.hpp"
#include "supervisor/leftovers.hpp"
#include "supervisor/loop_guard.hpp"
#include "supervisor/proctitle.hpp"
#include "supervisor/reload_policy.hpp"
#include "common/validate.hpp"

extern char** environ;

namespace polymur {
namespace {

constexpr int64_t kBackoffStartMs = 100;
constexpr int64_t kBackoffMaxMs = 30000;
constexpr int64_t kStableAfterMs = 30000;  // a child that lived this long restarts without delay history
constexpr int kHandledSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

const char* state_name(int state) {
    static const char* names[] = {"starting", "running", "stopping listeners", "stopping outputs", "stopped"};
    return names[state];
}

std::string child_name(Role role, uint32_t index, const std::string& text) {
    return role == Role::listener ? "listener " + std::to_string(index) : "output " + text;
}

void raise_fd_limit() {
    struct rlimit limit {};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

}  // namespace

Supervisor::~Supervisor() {
    admin_.reset();
    metrics_.reset();
    for (struct event* ev : events_) event_free(ev);
    if (base_) event_base_free(base_);
}

void Supervisor::set_state(State state) {
    LOG_NOTICE("supervisor: %s -> %s", state_name(static_cast<int>(state_)), state_name(static_cast<int>(state)));
    state_ = state;
}

bool Supervisor::setup() {
    raise_fd_limit();
    std::error_code ec;
    std::filesystem::create_directories(config_.state_dir, ec);
    if (ec) {
        LOG_ERROR("%s", state_dir_problem(config_.state_dir, ec.value(), "cannot create it").c_str());
        return false;
    }
    if (!lock_state_dir()) return false;
    // Before binding: a child of a previous generation may still hold the listen socket.
    end_previous_generation(config_.state_dir, static_cast<int>(config_.drain_timeout_s + 2) * 1000);
    std::string error;
    if (config_.plaintext_listener) {
        listen_fd_ = net::listen_tcp(config_.listen_addr, 4096, error);
        if (!listen_fd_) {
            LOG_ERROR("listener %s: cannot listen: %s", config_.listen_addr.c_str(), error.c_str());
            return false;
        }
    }
    if (!config_.https_listen_addr.empty()) {
        https_fd_ = net::listen_tcp(config_.https_listen_addr, 1024, error);
        if (!https_fd_) {
            LOG_ERROR("HTTPS listener %s: cannot listen: %s", config_.https_listen_addr.c_str(), error.c_str());
            return false;
        }
    }
    if (!config_.http_listen_addr.empty()) {
        http_fd_ = net::listen_tcp(config_.http_listen_addr, 1024, error);
        if (!http_fd_) {
            LOG_ERROR("HTTP listener %s: cannot listen: %s", config_.http_listen_addr.c_str(), error.c_str());
            return false;
        }
        LOG_WARN("HTTP listener %s: plain HTTP without client certificates; only for a TLS-terminating load balancer "
                 "in front of it", config_.http_listen_addr.c_str());
    }
    if (!config_.pickle_listen_addr.empty()) {
        pickle_fd_ = net::listen_tcp(config_.pickle_listen_addr, 4096, error);
        if (!pickle_fd_) {
            LOG_ERROR("pickle listener %s: cannot listen: %s", config_.pickle_listen_addr.c_str(), error.c_str());
            return false;
        }
    }
    if (!config_.udp_listen_addr.empty()) {
        // One socket, bound here and inherited by every worker: whichever worker is free reads the
        // next datagrams, a restarted worker finds the same socket (and nothing queued in it is lost),
        // and the kernel's drop count is one number for the whole socket.
        int granted = 0;
        udp_fd_ = net::bind_udp(config_.udp_listen_addr, static_cast<int>(std::min<uint32_t>(config_.udp_rcvbuf, INT32_MAX / 2)),
                                granted, error);
        if (!udp_fd_) {
            LOG_ERROR("UDP listener %s: cannot bind: %s", config_.udp_listen_addr.c_str(), error.c_str());
            return false;
        }
        if (static_cast<uint64_t>(granted) < config_.udp_rcvbuf)
            LOG_WARN("UDP listener %s: receive buffer is %d bytes, not the %u asked for (net.core.rmem_max; run as root or "
                     "raise it)", config_.udp_listen_addr.c_str(), granted / 2, config_.udp_rcvbuf);
    }
    admin_tcp_fd_ = net::listen_tcp(config_.api_addr, 64, error);
    if (!admin_tcp_fd_) {
        LOG_ERROR("admin %s: cannot listen: %s", config_.api_addr.c_str(), error.c_str());
        return false;
    }
    if (!net::is_loopback(admin_tcp_fd_.get()))
        LOG_WARN("admin %s: listening beyond loopback; anyone who can reach it can change where metrics go",
                 config_.api_addr.c_str());
    if (!admin::AdminPolicy::build(config_.admin_users, config_.admin_groups, admin_policy_, error) ||
        (!config_.admin_token_file.empty() && !admin::read_admin_token(config_.admin_token_file, admin_policy_.token, error))) {
        LOG_ERROR("admin: %s", error.c_str());
        return false;
    }
    if (!config_.metrics_addr.empty()) {
        metrics_fd_ = net::listen_tcp(config_.metrics_addr, 64, error);
        if (!metrics_fd_) {
            LOG_ERROR("metrics %s: cannot listen: %s", config_.metrics_addr.c_str(), error.c_str());
            return false;
        }
    }
    admin_unix_fd_ = net::listen_unix(config_.admin_socket, 64, error);
    if (!admin_unix_fd_) {
        LOG_ERROR("admin %s: cannot listen: %s", config_.admin_socket.c_str(), error.c_str());
        return false;
    }

    control_region_ = boost::interprocess::anonymous_shared_memory(sizeof(shm::ControlSegment));
    std::memset(control_region_.get_address(), 0, control_region_.get_size());
    control_ = shm::init_control(control_region_.get_address(), config_.workers);
    publish_live_settings();

    queues_to_create_ = count_new_queue_files();
    if (config_.console_out && !add_destination("console", true, error)) {
        LOG_ERROR("%s", error.c_str());
        return false;
    }
    for (const std::string& text : config_.destinations) {
        if (!add_destination(text, false, error)) {
            LOG_ERROR("%s", error.c_str());
            return false;
        }
    }
    apply_runtime_changes();
    queues_to_create_ = 0;
    warn_about_orphan_queues();
    listeners_.resize(config_.workers);
    for (uint32_t i = 0; i < config_.workers; ++i) listeners_[i] = Child {Role::listener, i, 0, 0, 0, 0, true};
    return true;
}

// Registers a destination: its queue file, its slot in shared memory, its output process.
bool Supervisor::add_destination(const std::string& text, bool console, std::string& error) {
    if (!console) {
        error = check_destination_text(text);
        if (!error.empty()) return false;
    }
    for (const Destination& d : destinations_) {
        if (d.in_use && !d.removing && d.text == text) {
            error = "destination " + text + " is already registered";
            return false;
        }
        if (d.in_use && d.removing && d.text == text) {
            error = "destination " + text + " is still being removed; try again in a moment";
            return false;
        }
    }
    const bool https = !console && is_https_destination(text);
    if (https && (config_.client_cert.empty() || config_.client_key.empty() || config_.ca_cert.empty())) {
        error = "destination " + text + ": HTTPS destinations need --client-cert, --client-key and --ca-cert, "
                "and this polymur runs without them";
        return false;
    }
    if (!https && !console && config_.hash_route()) {
        // Refuse what carbon refuses: two destinations that are the same ring node.
        std::vector<route::Destination> members;
        for (const Destination& d : destinations_) {
            route::Destination other;
            std::string ignored;
            if (d.in_use && !d.removing && !d.console && !d.https && route::parse_destination(d.text, other, ignored))
                members.push_back(other);
        }
        members.emplace_back();
        route::parse_destination(text, members.back(), error);  // check_destination_text accepted it
        route::HashType type;
        route::HashCompat compat;
        route::parse_hash_type(config_.hash_type, type);
        route::parse_hash_compat(config_.hash_compat, compat);
        if (!route::HashRing::build(type, members, error, compat)) return false;
    }
    auto free_slot = std::find_if(destinations_.begin(), destinations_.end(), [](const Destination& d) { return !d.in_use; });
    if (free_slot == destinations_.end()) {
        error = "destination " + text + ": all " + std::to_string(shm::kDestinationSlots) + " destination slots are in use";
        return false;
    }
    uint32_t slot = static_cast<uint32_t>(free_slot - destinations_.begin());
    const std::string path = queue_path(config_.state_dir, text);
    // At start the new queue files share what is free; later a putdest may take all of it.
    uint64_t budget = UINT64_MAX;
    if (queues_to_create_ > 1 && access(path.c_str(), F_OK) != 0)
        budget = shm::filesystem_free_bytes(config_.state_dir) / queues_to_create_;
    if (queues_to_create_ && access(path.c_str(), F_OK) != 0) --queues_to_create_;
    shm::QueueSpaceReport space;
    auto queue = shm::QueueFile::open_or_create(path, text, shm::geometry_for(config_.workers + 1, config_.queue_bytes),
                                                budget, space, error);
    if (!queue) {
        error = "destination " + text + ": " + error;
        return false;
    }
    uint64_t resumed = queue->queued_lines();
    if (space.rolled_back_bytes)
        LOG_WARN("destination %s: queue %s: the machine went down since it was last synced; %llu bytes written after the "
                 "last sync (at most --sync-interval seconds of lines) were given up", text.c_str(), path.c_str(),
                 static_cast<unsigned long long>(space.rolled_back_bytes));
    if (!config_.sync_interval_s) queue->forget_sync();
    if (space.migrated_lines || !space.migrated_from.empty())
        LOG_NOTICE("destination %s: queue %s: moved %llu queued lines from its old geometry (%s) into %u rings of %llu bytes",
                   text.c_str(), path.c_str(), static_cast<unsigned long long>(space.migrated_lines), space.migrated_from.c_str(),
                   queue->ring_count(), static_cast<unsigned long long>(queue->ring_capacity()));
    if (!space.problem.empty() && queue->space_reserved())
        LOG_ERROR("destination %s: queue %s %s", text.c_str(), path.c_str(), space.problem.c_str());
    else if (!space.problem.empty())
        LOG_ERROR("destination %s: queue %s holds %llu lines but %s; its %llu queued lines are delivered, new lines for it "
                  "are dropped and counted until the space is there (retried every 5 s)",
                  text.c_str(), path.c_str(), static_cast<unsigned long long>(resumed), space.problem.c_str(),
                  static_cast<unsigned long long>(resumed));

    Destination& d = *free_slot;
    d = Destination {};
    d.in_use = true;
    d.text = text;
    d.console = console;
    d.https = https;
    d.registered_unix_ns = realtime_ns();
    d.incarnation = next_incarnation_++;
    d.queue = std::move(queue);

    shm::DestinationSlot& s = control_->destinations[slot];
    s.type = static_cast<uint32_t>(console ? shm::DestinationType::console
                                           : https ? shm::DestinationType::https : shm::DestinationType::tcp);
    s.incarnation = d.incarnation;
    s.registered_unix_ns = d.registered_unix_ns;
    std::memset(s.text, 0, sizeof s.text);
    std::memcpy(s.text, text.data(), std::min(text.size(), sizeof s.text - 1));
    s.sent_lines = 0;
    s.sent_bytes = 0;
    s.reconnects = 0;
    s.link_state = static_cast<uint32_t>(shm::LinkState::starting);
    s.consecutive_failures = 0;
    s.rerouted_lines = 0;
    s.unsendable_lines = 0;
    s.in_ring.store(console || https ? 0 : 1, std::memory_order_relaxed);
    s.state.store(static_cast<uint32_t>(shm::SlotState::active), std::memory_order_release);
    publish_generation();

    LOG_NOTICE("destination %s: registered (queue %s%s)", text.c_str(), d.queue->path().c_str(),
               resumed ? (", resuming " + std::to_string(resumed) + " queued lines").c_str() : "");
    outputs_[slot] = Child {Role::output, slot, 0, 0, 0, 0, true};
    if (state_ == State::running) spawn(outputs_[slot]);
    return true;
}

void Supervisor::publish_generation() {
    control_->header.generation.fetch_add(1, std::memory_order_acq_rel);
}

void Supervisor::spawn(Child& child) {
    Heritage heritage;
    heritage.role = child.role;
    heritage.index = child.index;
    heritage.listen_fd = child.role == Role::listener ? listen_fd_.get() : -1;
    heritage.https_fd = child.role == Role::listener ? https_fd_.get() : -1;
    heritage.http_fd = child.role == Role::listener ? http_fd_.get() : -1;
    heritage.pickle_fd = child.role == Role::listener ? pickle_fd_.get() : -1;
    heritage.udp_fd = child.role == Role::listener ? udp_fd_.get() : -1;
    heritage.control = control_;
    heritage.config = &config_;
    heritage.supervisor_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        LOG_ERROR("supervisor: fork failed: %s; retrying", std::strerror(errno));
        child.restart_at_ms = monotonic_ms() + 1000;
        return;
    }
    if (pid == 0) become_child(heritage);
    child.pid = pid;
    child.started_ms = monotonic_ms();
    child.restart_at_ms = 0;
    if (child.role == Role::output) control_->destinations[child.index].output_pid = static_cast<uint32_t>(pid);
}

void Supervisor::become_child(const Heritage& heritage) {
    // Nothing of the supervisor's event loop survives into the child.
    for (int sig : kHandledSignals) signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != heritage.supervisor_pid) _exit(0);
    // Close every descriptor but the standard ones and those in the heritage.
    int keep[] = {heritage.listen_fd, heritage.https_fd, heritage.http_fd, heritage.pickle_fd, heritage.udp_fd};
    std::sort(std::begin(keep), std::end(keep));
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < static_cast<int>(next)) continue;
        if (static_cast<unsigned>(fd) > next) close_range(next, static_cast<unsigned>(fd) - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    close_range(next, ~0U, 0);
    std::string name = child_name(heritage.role, heritage.index, destinations_[heritage.index].text);
    if (!shm::control_is_valid(heritage.control)) {
        LOG_ERROR("%s: the control segment fails its layout check; not starting", name.c_str());
        _exit(kExitDoNotRestart);
    }
    std::string title = "polymur: " + name;
    proctitle_set(title.c_str());
    log::set_role(name.c_str());
    // Nor are the supervisor's mappings of the queue files kept: a child maps the queues it uses itself,
    // so the disk space of a destination removed later is freed when its last user unmaps it.
    for (Destination& d : destinations_) d.queue.reset();
    int code = kExitCrashed;
    try {
        code = heritage.role == Role::listener ? run_listener(heritage) : run_output(heritage);
    } catch (const std::exception& e) {
        LOG_ERROR("%s: stopped by an unexpected error: %s", name.c_str(), e.what());
    } catch (...) {
        LOG_ERROR("%s: stopped by an unexpected error", name.c_str());
    }
    _exit(code);
}

Supervisor::Child* Supervisor::find_child(pid_t pid) {
    for (Child& c : listeners_)
        if (c.pid == pid) return &c;
    for (Child& c : outputs_)
        if (c.pid == pid) return &c;
    return nullptr;
}

void Supervisor::reap_children() {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        if (Child* child = find_child(pid)) child_exited(*child, status);
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
    else
        how << "exited with code " << WEXITSTATUS(status);

    if (child.role == Role::output && destinations_[child.index].removing && (clean || !config_.hash_route())) {
        LOG_INFO("%s (pid %d): %s after its destination was removed", name.c_str(), pid, how.str().c_str());
        child.wanted = false;
        finish_removals();
        return;
    }
    if (state_ != State::running) {
        LOG_INFO("%s (pid %d): %s during shutdown", name.c_str(), pid, how.str().c_str());
        child.wanted = false;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == kExitDoNotRestart) {
        LOG_ERROR("%s (pid %d): %s: a configuration or state problem it reported above; not restarting it",
                  name.c_str(), pid, how.str().c_str());
        child.wanted = false;
        if (child.role == Role::listener) {
            // Without its listeners the relay accepts nothing: stop, and let the exit code say why.
            exit_code_ = kExitDoNotRestart;
            begin_shutdown("a listener cannot start");
        }
        return;
    }
    child.backoff_ms = lived >= kStableAfterMs ? kBackoffStartMs : std::min(std::max(child.backoff_ms * 2, kBackoffStartMs), kBackoffMaxMs);
    child.restart_at_ms = now + child.backoff_ms;
    LOG_WARN("%s (pid %d): %s after %lld ms%s; restarting in %lld ms", name.c_str(), pid, how.str().c_str(),
             static_cast<long long>(lived), clean ? " (unexpected)" : "", static_cast<long long>(child.backoff_ms));
}

void Supervisor::housekeeping() {
    int64_t now = monotonic_ms();
    // WATCHDOG=1 comes from this loop only: if the loop stops turning, systemd notices.
    if (systemd_.watchdog_usec() && now - last_watchdog_ms_ >= static_cast<int64_t>(systemd_.watchdog_usec() / 2000)) {
        systemd_.notify("WATCHDOG=1");
        last_watchdog_ms_ = now;
    }
    if (state_ == State::running) {
        for (Child& c : listeners_)
            if (c.wanted && !c.pid && c.restart_at_ms && now >= c.restart_at_ms) spawn(c);
        for (Child& c : outputs_)
            if (c.wanted && !c.pid && c.restart_at_ms && now >= c.restart_at_ms) spawn(c);
        if (config_.hash_route()) update_ring_membership();
        check_stalls(now);
        finish_removals();
        retry_space_reservations(now);
        return;
    }
    if (state_ == State::stopping_listeners && running_children(Role::listener) == 0) {
        set_state(State::stopping_outputs);
        for (Child& c : outputs_)
            if (c.pid) kill(c.pid, SIGTERM);
    }
    if (state_ == State::stopping_outputs && running_children(Role::output) == 0) {
        set_state(State::stopped);
        event_base_loopbreak(base_);
        return;
    }
    if (now >= shutdown_deadline_ms_) {
        LOG_WARN("supervisor: children still running %lld ms into shutdown; killing them",
                 static_cast<long long>(now - shutdown_deadline_ms_ + static_cast<int64_t>(config_.drain_timeout_s + 5) * 1000));
        for (Child& c : listeners_)
            if (c.pid) kill(c.pid, SIGKILL);
        for (Child& c : outputs_)
            if (c.pid) kill(c.pid, SIGKILL);
        shutdown_deadline_ms_ = now + 1000;
    }
}

// hash-route failover: a destination that failed --failover-after connects in a row leaves the
// ring (with --failover=reroute) and its queue moves to the others; it rejoins once connected.
// One output at a time holds the right to write the other queues' redistribution rings.
void Supervisor::update_ring_membership() {
    bool changed = false;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || d.console || d.https || d.removing) continue;  // mirrors are not ring nodes
        shm::DestinationSlot& s = control_->destinations[slot];
        bool in_ring = s.in_ring.load(std::memory_order_relaxed) != 0;
        uint64_t failures = s.consecutive_failures.load(std::memory_order_relaxed);
        auto link = static_cast<shm::LinkState>(s.link_state.load(std::memory_order_relaxed));
        if (in_ring && config_.failover == "reroute" && failures >= config_.failover_after) {
            s.in_ring.store(0, std::memory_order_release);
            changed = true;
            LOG_WARN("destination %s: left the ring after %llu failed connects; its %llu queued lines move to the other destinations",
                     d.text.c_str(), static_cast<unsigned long long>(failures), static_cast<unsigned long long>(d.queue->queued_lines()));
        } else if (!in_ring && link == shm::LinkState::connected) {
            s.in_ring.store(1, std::memory_order_release);
            changed = true;
            LOG_NOTICE("destination %s: connected again; rejoined the ring", d.text.c_str());
        }
    }
    if (changed) publish_generation();

    auto needs_reroute = [&](uint32_t slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || d.console || d.https || !d.queue || d.queue->queued_bytes() == 0) return false;
        return d.removing || control_->destinations[slot].in_ring.load(std::memory_order_relaxed) == 0;
    };
    uint32_t holder = control_->header.reroute_slot.load(std::memory_order_acquire);
    if (holder != shm::kNoSlot && !needs_reroute(holder)) {
        const Destination& d = destinations_[holder];
        LOG_INFO("destination %s: %llu lines moved to other destinations so far", d.text.c_str(),
                 static_cast<unsigned long long>(control_->destinations[holder].rerouted_lines.load()));
        control_->header.reroute_slot.store(shm::kNoSlot, std::memory_order_release);
        holder = shm::kNoSlot;
    }
    if (holder == shm::kNoSlot) {
        for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
            if (needs_reroute(slot)) {
                control_->header.reroute_slot.store(slot, std::memory_order_release);
                break;
            }
        }
    }
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
            LOG_WARN("listener %u (pid %d): no heartbeat for %u s (stalled); killing it", c.index, c.pid, config_.stall_timeout_s);
            kill(c.pid, SIGKILL);
            c.started_ms = now;  // one kill per stall; the reaper restarts it
        }
    }
    for (Child& c : outputs_) {
        const shm::DestinationSlot& s = control_->destinations[c.index];
        uint64_t heartbeat = s.heartbeat_ms.load(std::memory_order_relaxed);
        uint64_t progress = s.progress_ms.load(std::memory_order_relaxed);
        if (stale(c, heartbeat)) {
            LOG_WARN("output %s (pid %d): no heartbeat for %u s (stalled); killing it", destinations_[c.index].text.c_str(),
                     c.pid, config_.stall_timeout_s);
        } else if (stale(c, progress)) {
            LOG_WARN("output %s (pid %d): the destination accepted nothing for %u s (stalled); killing it",
                     destinations_[c.index].text.c_str(), c.pid, config_.stall_timeout_s);
        } else {
            continue;
        }
        kill(c.pid, SIGKILL);
        c.started_ms = now;
    }
}

// What is wrong with a state directory polymur cannot use, in words an operator can act on.
std::string Supervisor::state_dir_problem(const std::string& dir, int err, const char* what) {
    std::string text = "state directory " + dir + ": " + what + ": " + std::strerror(err);
    // The deepest part of the path that exists says which part is missing or whose it is.
    std::filesystem::path existing(dir);
    std::error_code ec;
    while (!existing.empty() && !std::filesystem::exists(existing, ec) && existing.has_parent_path() &&
           existing.parent_path() != existing)
        existing = existing.parent_path();
    struct stat st {};
    const bool found = stat(existing.c_str(), &st) == 0;
    switch (err) {
        case EROFS:
            text += " (" + existing.string() + " is on a read-only file system; give polymur a --state-dir on a writable one)";
            break;
        case EACCES:
        case EPERM:
            if (found)
                text += " (" + existing.string() + " is owned by uid " + std::to_string(st.st_uid) + ", gid " +
                        std::to_string(st.st_gid) + ", mode " + [&] { char m[8]; std::snprintf(m, sizeof m, "%04o", st.st_mode & 07777); return std::string(m); }() +
                        "; polymur runs as uid " + std::to_string(geteuid()) + ", gid " + std::to_string(getegid()) +
                        ": make it writable for that user, e.g. chown it)";
            break;
        case ENOENT:
        case ENOTDIR:
            if (found && !S_ISDIR(st.st_mode))
                text += " (" + existing.string() + " is not a directory)";
            else if (found && existing.string() != dir)
                text += " (" + existing.string() + " exists, but not the directories under it on the way to " + dir + ")";
            break;
        case ENOSPC:
        case EDQUOT:
            text += " (the file system is full)";
            break;
        default:
            break;
    }
    return text;
}

// One supervisor per state directory: its queues have exactly one set of producers and consumers.
bool Supervisor::lock_state_dir() {
    std::string path = config_.state_dir + "/polymur.lock";
    state_lock_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!state_lock_) {
        LOG_ERROR("%s", state_dir_problem(config_.state_dir, errno, "cannot create polymur.lock in it").c_str());
        return false;
    }
    if (flock(state_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        std::string holder;
        std::ifstream(path) >> holder;
        LOG_ERROR("state directory %s is in use by another polymur (pid %s); give each its own --state-dir",
                  config_.state_dir.c_str(), holder.empty() ? "unknown" : holder.c_str());
        return false;
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(state_lock_.get(), 0) != 0 || pwrite(state_lock_.get(), pid.data(), pid.size(), 0) < 0)
        LOG_WARN("state directory %s: cannot write the lock file", config_.state_dir.c_str());
    return true;
}

// putdest/deldest (and destinations changed by SIGHUP) outlive a restart: <state-dir>/runtime-destinations
// holds the shortest list of changes that turns the configured destinations into the running ones,
// replaced durably at every change. `adding`/`removing` describe a change about to be made, so the
// file is written before the change takes effect and a failed write leaves both untouched.
std::string Supervisor::runtime_destinations_text(const std::string* adding, const std::string* removing) const {
    auto running = [&](const std::string& text) {
        if (removing && text == *removing) return false;
        if (adding && text == *adding) return true;
        return std::any_of(destinations_.begin(), destinations_.end(),
                           [&](const Destination& d) { return d.in_use && !d.removing && !d.console && d.text == text; });
    };
    auto configured = [&](const std::string& text) {
        return std::find(config_.destinations.begin(), config_.destinations.end(), text) != config_.destinations.end();
    };
    std::string out;
    for (const std::string& text : config_.destinations)
        if (!running(text)) out += "deldest " + text + "\n";
    std::vector<std::pair<uint64_t, std::string>> added;
    for (const Destination& d : destinations_)
        if (d.in_use && !d.removing && !d.console && !configured(d.text) && !(removing && d.text == *removing))
            added.emplace_back(d.incarnation, d.text);
    std::sort(added.begin(), added.end());
    for (const auto& [incarnation, text] : added) out += "putdest " + text + "\n";
    if (adding && !configured(*adding) &&
        std::none_of(added.begin(), added.end(), [&](const auto& a) { return a.second == *adding; }))
        out += "putdest " + *adding + "\n";
    return out;
}

bool Supervisor::save_runtime_destinations(std::string& error, const std::string* adding, const std::string* removing) {
    std::string path = config_.state_dir + "/runtime-destinations";
    std::string text = runtime_destinations_text(adding, removing);
    if (text.empty() && access(path.c_str(), F_OK) != 0) return true;
    return replace_file_durably(path, text, error);
}

void Supervisor::apply_runtime_changes() {
    std::string path = config_.state_dir + "/runtime-destinations";
    std::ifstream in(path);
    if (!in) return;
    std::string command, destination, error;
    size_t applied = 0, skipped = 0, failed = 0;
    while (in >> command >> destination) {
        bool ok = false;
        if (command == "putdest") {
            bool present = std::any_of(destinations_.begin(), destinations_.end(),
                                       [&](const Destination& d) { return d.in_use && d.text == destination; });
            ok = !present && add_destination(destination, false, error);
            if (!present && !ok) {
                // A destination that parses failed for a reason that may pass (no disk for its
                // queue, say): keep it for the next start. One that does not parse never will.
                route::Destination parsed;
                std::string ignored;
                const bool may_pass = is_https_destination(destination) || route::parse_destination(destination, parsed, ignored);
                LOG_ERROR("%s: putdest %s cannot be replayed%s: %s", path.c_str(), destination.c_str(), may_pass ? " now" : "",
                          error.c_str());
                failed += may_pass;
            }
        } else if (command == "deldest") {
            for (uint32_t slot = 0; slot < shm::kDestinationSlots && !ok; ++slot) {
                Destination& d = destinations_[slot];
                if (!d.in_use || d.console || d.text != destination) continue;
                // Not started yet: whatever its queue holds is kept in its file, like any queue.
                control_->destinations[slot].state.store(static_cast<uint32_t>(shm::SlotState::free));
                outputs_[slot] = Child {};
                d = Destination {};
                ok = true;
            }
        }
        ok ? ++applied : ++skipped;
    }
    LOG_NOTICE("%s: replayed %zu runtime destination changes (%zu no longer applied); delete the file to start "
               "from the configured destinations alone", path.c_str(), applied, skipped);
    if (applied) publish_generation();

    // Rewritten as the shortest list that gives the same result, so it does not grow forever; a
    // failed write keeps the old file, which replays to the same destinations. A putdest that
    // could not be replayed (no disk for its queue, say) stays in the file for the next start.
    if (failed) {
        LOG_ERROR("%s: kept as it is, so the %zu destinations that could not be added now are added at the next start",
                  path.c_str(), failed);
    } else if (!save_runtime_destinations(error))
        LOG_ERROR("%s; kept the previous file, which gives the same destinations", error.c_str());
}

// A queue file that could not be allocated (an old sparse file on a full disk) takes no new lines;
// once the space is there again it does, without a restart.
void Supervisor::retry_space_reservations(int64_t now) {
    if (now < next_space_retry_ms_) return;
    next_space_retry_ms_ = now + 5000;
    for (Destination& d : destinations_) {
        if (!d.in_use || !d.queue || d.queue->space_reserved()) continue;
        std::string error;
        if (d.queue->reserve_space(error))
            LOG_NOTICE("destination %s: queue %s is allocated now; taking new lines again", d.text.c_str(),
                       d.queue->path().c_str());
    }
}

uint32_t Supervisor::count_new_queue_files() const {
    uint32_t count = config_.console_out && access(queue_path(config_.state_dir, "console").c_str(), F_OK) != 0;
    for (const std::string& text : config_.destinations) count += access(queue_path(config_.state_dir, text).c_str(), F_OK) != 0;
    std::ifstream in(config_.state_dir + "/runtime-destinations");
    std::string command, destination;
    while (in >> command >> destination)
        count += command == "putdest" && access(queue_path(config_.state_dir, destination).c_str(), F_OK) != 0;
    return count;
}

void Supervisor::warn_about_orphan_queues() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(config_.state_dir, ec)) {
        if (entry.path().extension() != ".queue") continue;
        bool known = false;
        for (const Destination& d : destinations_)
            known |= d.in_use && d.queue && d.queue->path() == entry.path().string();
        if (known) continue;
        std::string error;
        auto queue = shm::QueueFile::open(entry.path().string(), error);
        if (!queue) {
            LOG_WARN("%s", error.c_str());
        } else if (queue->queued_lines()) {
            std::string name(queue->header().destination, strnlen(queue->header().destination, shm::kDestinationTextMax));
            LOG_WARN("queue file %s holds %llu lines for %s, which is not a destination now; putdest %s delivers them",
                     entry.path().c_str(), static_cast<unsigned long long>(queue->queued_lines()), name.c_str(), name.c_str());
        }
    }
}

// SIGHUP: the configuration is read again exactly as at start (command line, environment, file).
// Destinations are applied as putdest/deldest would; a configuration with an error is refused and
// the running one kept. Other options take effect at the next restart, and the log says which.
void Supervisor::reload() {
    if (state_ != State::running) return;
    systemd_.notify("RELOADING=1\nSTATUS=reloading configuration");
    LOG_NOTICE("supervisor: SIGHUP received; reading the configuration again");
    std::vector<const char*> argv;
    for (const std::string& a : args_) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    Config next;
    if (parse_config(static_cast<int>(args_.size()), argv.data(), environ, next) != ParseOutcome::run) {
        LOG_ERROR("supervisor: reload refused: the configuration has an error (above); keeping the running configuration");
        systemd_.notify("READY=1\nSTATUS=reload refused; running the previous configuration");
        return;
    }
    auto listed = [](const std::vector<std::string>& list, const std::string& text) {
        return std::find(list.begin(), list.end(), text) != list.end();
    };
    size_t added = 0, removed = 0;
    for (const std::string& text : config_.destinations) {
        if (listed(next.destinations, text)) continue;
        std::string reply = deldest(text);
        LOG_NOTICE("supervisor: reload: %s", reply.substr(0, reply.size() - 1).c_str());
        ++removed;
    }
    for (const std::string& text : next.destinations) {
        if (listed(config_.destinations, text)) continue;
        std::string error;
        if (add_destination(text, false, error)) {
            ++added;
        } else {
            LOG_ERROR("supervisor: reload: %s", error.c_str());
        }
    }
    config_.destinations = next.destinations;  // applied above, as putdest/deldest
    // The journal is relative to the configured destinations, which just changed.
    std::string error;
    if (!save_runtime_destinations(error))
        LOG_ERROR("supervisor: reload: %s; the destinations changed now may differ after a restart", error.c_str());
    // Every other option: applied now, or named as needing a restart (reload_policy.cpp).
    ReloadChanges changes = apply_reloadable(config_, next);
    for (const std::string& name : changes.applied)
        LOG_NOTICE("supervisor: reload: --%s changed; applied", name.c_str());
    for (const std::string& name : changes.need_restart)
        LOG_WARN("supervisor: reload: --%s changed; needs a restart to take effect (still running with the old value)", name.c_str());
    arm_periodic_events();
    publish_live_settings();
    LOG_NOTICE("supervisor: reload done: %zu destinations added, %zu removed; %zu other options applied, %zu need a restart",
               added, removed, changes.applied.size(), changes.need_restart.size());
    systemd_.notify("READY=1\nSTATUS=running (configuration reloaded)");
}

// The options children read from the control segment, so a reload reaches them without a restart.
void Supervisor::publish_live_settings() {
    control_->header.idle_timeout_s.store(config_.idle_timeout_s, std::memory_order_relaxed);
    control_->header.reconnect_interval_s.store(config_.reconnect_interval_s, std::memory_order_relaxed);
    control_->header.connect_timeout_ms.store(config_.connect_timeout_ms, std::memory_order_relaxed);
    control_->header.drain_timeout_s.store(config_.drain_timeout_s, std::memory_order_relaxed);
}

// (Re)arms the timers whose intervals are options, at start and after a reload.
void Supervisor::arm_periodic_events() {
    struct timeval rates_interval {static_cast<time_t>(config_.stats_interval_s), 0};
    event_add(rates_event_, &rates_interval);
    event_del(self_metrics_event_);
    if (config_.self_metrics_interval_s) {
        struct timeval interval {static_cast<time_t>(config_.self_metrics_interval_s), 0};
        event_add(self_metrics_event_, &interval);
    }
}

RelayCounters Supervisor::counters() {
    RelayStatus s = status();
    RelayCounters c;
    c.received = s.received;
    c.invalid = s.invalid + s.too_long;
    c.unroutable = s.unroutable;
    c.connections_total = s.connections_total;
    c.connections_open = s.connections;
    for (const DestinationStatus& d : s.destinations) {
        if (d.console) continue;
        c.sent += d.sent;
        c.queued += d.queued;
        c.dropped += d.dropped;
        c.destinations.push_back({d.name, d.sent, d.queued, d.dropped});
    }
    return c;
}

// One reading of every counter in shared memory, for `stats`, /metrics and self-metrics.
RelayStatus Supervisor::status() {
    RelayStatus s;
    s.workers = config_.workers;
    s.distribution = config_.distribution;
    s.start_unix_seconds = control_->header.start_unix_ns / 1000000000;
    for (uint32_t i = 0; i < config_.workers; ++i) {
        const shm::WorkerSlot& w = control_->workers[i];
        s.received += w.received.load(std::memory_order_relaxed);
        s.invalid += w.invalid.load(std::memory_order_relaxed);
        s.too_long += w.too_long.load(std::memory_order_relaxed);
        s.unroutable += w.unroutable.load(std::memory_order_relaxed);
        s.connections += w.connections.load(std::memory_order_relaxed);
        s.connections_total += w.connections_total.load(std::memory_order_relaxed);
        s.pickle_invalid += w.pickle_invalid.load(std::memory_order_relaxed);
        s.udp_datagrams += w.udp_datagrams.load(std::memory_order_relaxed);
        // The workers share one socket and each saw its cumulative count at some moment: the largest is the latest.
        s.udp_dropped = std::max<uint64_t>(s.udp_dropped, w.udp_dropped_seen.load(std::memory_order_relaxed));
    }
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || !d.queue) continue;
        const shm::DestinationSlot& c = control_->destinations[slot];
        DestinationStatus out;
        out.name = d.text;
        out.console = d.console;
        out.state = d.removing ? "removing" : shm::link_state_name(static_cast<shm::LinkState>(c.link_state.load(std::memory_order_relaxed)));
        out.queued = d.queue->queued_lines();
        out.queued_bytes = d.queue->queued_bytes();
        out.capacity_bytes = d.queue->capacity_bytes();
        out.space_reserved = d.queue->space_reserved();
        out.sent = c.sent_lines.load(std::memory_order_relaxed);
        out.sent_bytes = c.sent_bytes.load(std::memory_order_relaxed);
        out.dropped = d.queue->dropped_lines();
        out.reconnects = c.reconnects.load(std::memory_order_relaxed);
        out.rerouted = c.rerouted_lines.load(std::memory_order_relaxed);
        out.unsendable = c.unsendable_lines.load(std::memory_order_relaxed);
        out.in_ring = c.in_ring.load(std::memory_order_relaxed) != 0;
        s.destinations.push_back(std::move(out));
    }
    return s;
}

// Ready: running, and every listener and every registered destination's output alive and reporting.
Health Supervisor::health() {
    std::vector<ChildView> children;
    for (const Child& c : listeners_)
        children.push_back({child_name(Role::listener, c.index, ""), c.pid, c.wanted, c.started_ms,
                            static_cast<int64_t>(control_->workers[c.index].heartbeat_ms.load(std::memory_order_relaxed)),
                            health_stale_after_ms(false, config_.stall_timeout_s, config_.connect_timeout_ms)});
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        const Child& c = outputs_[slot];
        if (!d.in_use || d.removing) continue;
        children.push_back({child_name(Role::output, slot, d.text), c.pid, true, c.started_ms,
                            static_cast<int64_t>(control_->destinations[slot].heartbeat_ms.load(std::memory_order_relaxed)),
                            health_stale_after_ms(true, config_.stall_timeout_s, config_.connect_timeout_ms)});
    }
    return evaluate_health(state_name(static_cast<int>(state_)), children, monotonic_ms());
}

// The supervisor reports as a client of its own plaintext listener, so its metrics take the same
// routing as everyone else's and it never writes a queue itself.
void Supervisor::send_self_metrics() {
    if (state_ != State::running) return;
    if (!config_.plaintext_listener) return;
    std::string host, port, error;
    if (!net::split_host_port(config_.listen_addr, host, port, error)) return;
    const std::optional<uint16_t> port_number = net::parse_port(port, net::PortUse::listen);
    if (!port_number || *port_number == 0) return;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    std::string lines = format_self_metrics(config_.self_metrics_prefix, counters(), realtime_ns() / 1000000000);
    struct bufferevent* bev = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(
        bev, nullptr,
        [](struct bufferevent* b, void*) {
            if (evbuffer_get_length(bufferevent_get_output(b)) == 0) bufferevent_free(b);
        },
        [](struct bufferevent* b, short events, void*) {
            if (events & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) {
                LOG_WARN("supervisor: self-metrics: cannot reach the plaintext listener; skipped this interval");
                bufferevent_free(b);
            }
        },
        nullptr);
    struct timeval timeout {5, 0};
    bufferevent_set_timeouts(bev, &timeout, &timeout);
    bufferevent_write(bev, lines.data(), lines.size());
    bufferevent_enable(bev, EV_WRITE);
    if (bufferevent_socket_connect_hostname(bev, nullptr, AF_UNSPEC, host.c_str(), *port_number) != 0) bufferevent_free(bev);
}

void Supervisor::on_self_metrics(evutil_socket_t, short, void* self) {
    guarded("supervisor: self-metrics", [&] { static_cast<Supervisor*>(self)->send_self_metrics(); });
}

// A removed destination's slot is freed once every worker routes by a table without it and its
// output process has exited; only then is its queue file deleted.
void Supervisor::finish_removals() {
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || !d.removing) continue;
        bool workers_moved_on = true;
        for (const Child& w : listeners_)
            if (w.pid && control_->workers[w.index].seen_generation.load(std::memory_order_acquire) < d.removal_generation)
                workers_moved_on = false;
        if (!workers_moved_on) continue;
        Child& out = outputs_[slot];
        if (out.pid && config_.hash_route()) continue;  // it moves its queue to the others, then exits
        if (out.pid) {
            if (!out.stop_requested) {
                kill(out.pid, SIGTERM);
                out.stop_requested = true;
            }
            continue;
        }
        uint64_t discarded = d.queue ? d.queue->queued_lines() : 0;
        std::string path = d.queue ? d.queue->path() : "";
        d.queue.reset();
        if (!path.empty()) unlink(path.c_str());
        LOG_NOTICE("destination %s: removed%s", d.text.c_str(),
                   discarded ? (" (" + std::to_string(discarded) + " queued lines discarded with it)").c_str() : "");
        control_->destinations[slot].state.store(static_cast<uint32_t>(shm::SlotState::free), std::memory_order_release);
        d = Destination {};
        outputs_[slot] = Child {};
    }
}

size_t Supervisor::running_children(Role role) const {
    size_t n = 0;
    if (role == Role::listener) {
        for (const Child& c : listeners_) n += c.pid != 0;
    } else {
        for (const Child& c : outputs_) n += c.pid != 0;
    }
    return n;
}

void Supervisor::begin_shutdown(const char* why) {
    if (state_ != State::running) return;
    LOG_NOTICE("supervisor: %s; stopping listeners, then letting outputs deliver for up to %u s", why, config_.drain_timeout_s);
    set_state(State::stopping_listeners);
    systemd_.notify("STOPPING=1\nSTATUS=stopping: delivering queues for up to " + std::to_string(config_.drain_timeout_s) + " s");
    admin_->close_listeners();
    shutdown_deadline_ms_ = monotonic_ms() + static_cast<int64_t>(config_.drain_timeout_s + 5) * 1000;
    for (Child& c : listeners_)
        if (c.pid) kill(c.pid, SIGTERM);
    housekeeping();
}

void Supervisor::log_rates() {
    int64_t now = monotonic_ms();
    uint64_t received = 0;
    for (uint32_t i = 0; i < config_.workers; ++i) received += control_->workers[i].received.load(std::memory_order_relaxed);
    uint64_t delta = received - last_received_;
    double seconds = (now - last_rates_ms_) / 1000.0;
    last_received_ = received;
    last_rates_ms_ = now;
    last_rate_ = seconds > 0 ? delta / seconds : 0.0;
    // Every interval, as Polymur, so a quiet relay is visibly alive and quiet.
    LOG_INFO("Last %.2fs: Received %llu data points | Avg: %.2f/sec.", seconds, static_cast<unsigned long long>(delta), last_rate_);
    if (state_ == State::running) {
        char status[160];
        std::snprintf(status, sizeof status, "STATUS=%.0f metrics/s received; %zu destinations", last_rate_,
                      static_cast<size_t>(std::count_if(destinations_.begin(), destinations_.end(),
                                                        [](const Destination& d) { return d.in_use && !d.removing; })));
        systemd_.notify(status);
    }
    for (const Destination& d : destinations_) {
        if (!d.in_use || !d.queue) continue;
        uint64_t queued = d.queue->queued_lines();
        if (queued >= config_.queue_cap)
            LOG_WARN("Destination %s queue is at capacity (%llu) - further messages will be dropped", d.text.c_str(),
                     static_cast<unsigned long long>(queued));
        else if (queued > 0)
            LOG_INFO("Destination %s queue length: %llu", d.text.c_str(), static_cast<unsigned long long>(queued));
    }
}

std::string Supervisor::getdest() {
    std::ostringstream active, registered;
    bool first_active = true, first_registered = true;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || d.removing || d.console) continue;
        std::string name = admin::json_escape(d.text);
        registered << (first_registered ? "\n" : ",\n") << "  \"" << name << "\": \"" << admin::rfc3339_nano(d.registered_unix_ns) << "\"";
        first_registered = false;
        auto link = static_cast<shm::LinkState>(control_->destinations[slot].link_state.load(std::memory_order_relaxed));
        if (link == shm::LinkState::connected && (!config_.hash_route() || control_->destinations[slot].in_ring.load())) {
            active << (first_active ? "\n" : ",\n") << "  \"" << name << "\"";
            first_active = false;
        }
    }
    std::string out = "{\n \"active\": [";
    out += first_active ? "]" : active.str() + "\n ]";
    out += ",\n \"registered\": {";
    out += first_registered ? "}" : registered.str() + "\n }";
    out += "\n}\n";
    return out;
}

std::string Supervisor::putdest(const std::string& destination) {
    std::string error;
    if (destination == "console") return "error: the console output is set with --console-out\n";
    size_t registered = static_cast<size_t>(std::count_if(destinations_.begin(), destinations_.end(),
                                                          [](const Destination& d) { return d.in_use && !d.console; }));
    if (registered >= config_.max_destinations)
        return "error: " + std::to_string(registered) + " destinations are registered, the most --max-destinations allows; " +
               "deldest one first\n";
    route::Destination parsed;
    std::string listener;
    if (!is_https_destination(destination) && route::parse_destination(destination, parsed, error) &&
        reaches_own_listener(parsed.host, parsed.port,
                             {listen_fd_.get(), https_fd_.get(), http_fd_.get(), admin_tcp_fd_.get(), metrics_fd_.get()}, listener)) {
        LOG_WARN("destination %s: putdest refused: it reaches this relay's own listener %s", destination.c_str(), listener.c_str());
        return "error: destination " + destination + " is this relay's own listener " + listener +
               "; sending there would loop every metric back in\n";
    }
    if (!save_runtime_destinations(error, &destination, nullptr)) {
        LOG_ERROR("putdest %s refused: %s", destination.c_str(), error.c_str());
        return "error: " + error + "; not registered\n";
    }
    if (!add_destination(destination, false, error)) {
        std::string ignored;
        save_runtime_destinations(ignored);
        return "error: " + error + "\n";
    }
    std::string reply = "Registered destination: " + destination + "\n";
    std::string warning = unresolvable_destination_warning(destination);
    if (!warning.empty()) {
        LOG_WARN("%s", warning.c_str());
        reply += "warning: " + warning + "\n";
    }
    return reply;
}

std::string Supervisor::deldest(const std::string& destination) {
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || d.removing || d.console || d.text != destination) continue;
        std::string error;
        if (!save_runtime_destinations(error, nullptr, &destination)) {
            LOG_ERROR("deldest %s refused: %s", destination.c_str(), error.c_str());
            return "error: " + error + "; not unregistered\n";
        }
        d.removing = true;
        control_->destinations[slot].state.store(static_cast<uint32_t>(shm::SlotState::removing), std::memory_order_release);
        publish_generation();
        d.removal_generation = control_->header.generation.load(std::memory_order_acquire);
        // hash-route keeps the output until it has moved the queue to the remaining destinations.
        outputs_[slot].wanted = config_.hash_route();
        outputs_[slot].restart_at_ms = 0;
        LOG_NOTICE("destination %s: unregistering%s", destination.c_str(),
                   config_.hash_route() ? "; its queue moves to the remaining destinations" : "");
        bool others = std::any_of(destinations_.begin(), destinations_.end(),
                                  [](const Destination& o) { return o.in_use && !o.removing && !o.console; });
        if (!others && !config_.hash_route())
            LOG_WARN("broadcast: no destinations left; metrics received are discarded and counted as unroutable until putdest");
        finish_removals();
        return "Unregistered destination: " + destination + "\n";
    }
    return "error: destination " + net::printable(destination) + " is not registered\n";
}

std::string Supervisor::stats() { return format_stats_json(status()); }

void Supervisor::on_signal(evutil_socket_t signal, short, void* self_ptr) {
    auto* self = static_cast<Supervisor*>(self_ptr);
    switch (signal) {
        case SIGCHLD: guarded("supervisor: SIGCHLD", [&] { self->reap_children(); self->housekeeping(); }); break;
        case SIGTERM: guarded("supervisor: SIGTERM", [&] { self->begin_shutdown("SIGTERM received"); }); break;
        case SIGINT: guarded("supervisor: SIGINT", [&] { self->begin_shutdown("SIGINT received"); }); break;
        case SIGHUP:
            if (!guarded("supervisor: reload", [&] { self->reload(); }))
                self->systemd_.notify("READY=1\nSTATUS=reload failed; see the log");
            break;
        default: break;
    }
}

void Supervisor::on_housekeeping(evutil_socket_t, short, void* self) {
    guarded("supervisor: housekeeping", [&] { static_cast<Supervisor*>(self)->housekeeping(); });
}
void Supervisor::on_rates(evutil_socket_t, short, void* self) {
    guarded("supervisor: rates", [&] { static_cast<Supervisor*>(self)->log_rates(); });
}

int Supervisor::run() {
    log::set_role("supervisor");
    log::capture_libevent();
    send_config_messages_to_log();
    proctitle_set("polymur: supervisor");
    signal(SIGPIPE, SIG_IGN);
    // State files hold where metrics go and the metrics themselves: never world-readable.
    umask(umask(0) | 027);
    if (!setup()) return kExitDoNotRestart;

    base_ = event_base_new();
    for (int sig : kHandledSignals) {
        struct event* ev = evsignal_new(base_, sig, &Supervisor::on_signal, this);
        event_add(ev, nullptr);
        events_.push_back(ev);
    }
    admin_ = std::make_unique<admin::Server>(base_, *this, admin_policy_, config_.admin_max_connections);
    admin_->add_listener(admin_tcp_fd_.get());
    admin_->add_listener(admin_unix_fd_.get());
    if (metrics_fd_) {
        metrics_ = std::make_unique<MetricsHttpServer>(
            base_, metrics_fd_.get(), MetricsHttpServer::Source {[this] { return status(); }, [this] { return health(); }});
        if (!metrics_->ok()) return kExitDoNotRestart;
        LOG_NOTICE("metrics: serving /metrics (Prometheus) and /health on %s", config_.metrics_addr.c_str());
        if (!net::is_loopback(metrics_fd_.get()))
            LOG_WARN("metrics %s: listening beyond loopback; anyone who can reach it can read the relay's counters",
                     config_.metrics_addr.c_str());
    }

    struct event* tick = event_new(base_, -1, EV_PERSIST, &Supervisor::on_housekeeping, this);
    struct timeval tick_interval {0, 100000};
    event_add(tick, &tick_interval);
    events_.push_back(tick);
    rates_event_ = event_new(base_, -1, EV_PERSIST, &Supervisor::on_rates, this);
    events_.push_back(rates_event_);
    self_metrics_event_ = event_new(base_, -1, EV_PERSIST, &Supervisor::on_self_metrics, this);
    events_.push_back(self_metrics_event_);
    arm_periodic_events();
    last_rates_ms_ = monotonic_ms();

    set_state(State::running);
    for (Child& c : outputs_)
        if (c.wanted) spawn(c);
    for (Child& c : listeners_) spawn(c);
    // Every socket was bound in setup() and every child has been forked.
    systemd_.notify("READY=1\nSTATUS=running\nMAINPID=" + std::to_string(getpid()));
    std::string listening = config_.plaintext_listener ? "plaintext " + config_.listen_addr : "";
    if (!config_.https_listen_addr.empty()) listening += (listening.empty() ? "" : ", ") + ("HTTPS " + config_.https_listen_addr);
    if (!config_.http_listen_addr.empty()) listening += (listening.empty() ? "" : ", ") + ("HTTP " + config_.http_listen_addr);
    if (!config_.pickle_listen_addr.empty()) listening += (listening.empty() ? "" : ", ") + ("pickle " + config_.pickle_listen_addr);
    if (!config_.udp_listen_addr.empty()) listening += (listening.empty() ? "" : ", ") + ("UDP " + config_.udp_listen_addr);
    // What runs now: the configured destinations and the replayed runtime changes, the console aside.
    Config running = config_;
    running.destinations.clear();
    for (const Destination& d : destinations_)
        if (d.in_use && !d.console) running.destinations.push_back(d.text);
    LOG_NOTICE("supervisor: %s: listening on %s with %u workers; admin on %s and %s; %s to %zu destinations%s",
               config_.mode.c_str(), listening.c_str(), config_.workers, config_.api_addr.c_str(), config_.admin_socket.c_str(),
               config_.distribution.c_str(), running.destinations.size(), config_.console_out ? " and the console" : "");
    for (const std::string& warning : config_warnings(running)) LOG_WARN("%s", warning.c_str());

    event_base_dispatch(base_);
    reap_children();
    unlink(config_.admin_socket.c_str());
    LOG_NOTICE("supervisor: stopped");
    return exit_code_;
}

}  // namespace polymur
