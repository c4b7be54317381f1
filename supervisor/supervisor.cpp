#include "supervisor/supervisor.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
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
#include "common/proctitle.hpp"
#include "common/validate.hpp"
#include "route/destination.hpp"
#include "route/hash_ring.hpp"
#include "shm/mapping_guard.hpp"
#include "supervisor/children.hpp"
#include "supervisor/leftovers.hpp"
#include "supervisor/loop_guard.hpp"
#include "supervisor/reload_policy.hpp"
#include "supervisor/worker_counters.hpp"
#include "worker/child_main.hpp"

extern char** environ;

namespace polymur {
namespace {

constexpr int kAdminBacklog = 1024;

const char* state_name(int state) {
    static const char* names[] = {"starting", "running", "stopping listeners", "stopping outputs", "stopped"};
    return names[state];
}

void raise_fd_limit() {
    struct rlimit limit = {};
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
        LOG_WARN(
            "HTTP listener %s: plain HTTP without client certificates; only for a TLS-terminating load balancer "
            "in front of it",
            config_.http_listen_addr.c_str());
    }
    if (!config_.pickle_listen_addr.empty()) {
        pickle_fd_ = net::listen_tcp(config_.pickle_listen_addr, 4096, error);
        if (!pickle_fd_) {
            LOG_ERROR("pickle listener %s: cannot listen: %s", config_.pickle_listen_addr.c_str(), error.c_str());
            return false;
        }
    }
    if (!config_.tls_listen_addr.empty()) {
        tls_fd_ = net::listen_tcp(config_.tls_listen_addr, 4096, error);
        if (!tls_fd_) {
            LOG_ERROR("TLS listener %s: cannot listen: %s", config_.tls_listen_addr.c_str(), error.c_str());
            return false;
        }
    }
    if (!config_.udp_listen_addr.empty()) {
        // One socket, bound here and inherited by every worker: whichever worker is free reads the
        // next datagrams, a restarted worker finds the same socket (and nothing queued in it is lost),
        // and the kernel's drop count is one number for the whole socket.
        int granted = 0;
        udp_fd_ =
            net::bind_udp(config_.udp_listen_addr,
                          static_cast<int>(std::min<uint32_t>(config_.udp_rcvbuf, INT32_MAX / 2)), granted, error);
        if (!udp_fd_) {
            LOG_ERROR("UDP listener %s: cannot bind: %s", config_.udp_listen_addr.c_str(), error.c_str());
            return false;
        }
        if (static_cast<uint64_t>(granted) < config_.udp_rcvbuf)
            LOG_WARN(
                "UDP listener %s: receive buffer is %d bytes, not the %u asked for (net.core.rmem_max; run as root or "
                "raise it)",
                config_.udp_listen_addr.c_str(), granted / 2, config_.udp_rcvbuf);
    }
    // A deep backlog: under a flood of connections the kernel queues a new admin client instead of
    // dropping its SYN (a dropped SYN is retried only 1, 3 and 7 s later); the server then accepts
    // through the queue, dropping the oldest sessions at --admin-max-connections.
    admin_tcp_fd_ = net::listen_tcp(config_.api_addr, kAdminBacklog, error);
    if (!admin_tcp_fd_) {
        LOG_ERROR("admin %s: cannot listen: %s", config_.api_addr.c_str(), error.c_str());
        return false;
    }
    if (!net::is_loopback(admin_tcp_fd_.get()))
        LOG_WARN("admin %s: listening beyond loopback; anyone who can reach it can change where metrics go",
                 config_.api_addr.c_str());
    if (!admin::AdminPolicy::build(config_.admin_users, config_.admin_groups, admin_policy_, error) ||
        (!config_.admin_token_file.empty() &&
         !admin::read_admin_token(config_.admin_token_file, admin_policy_.token, error))) {
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
    admin_unix_fd_ = net::listen_unix(config_.admin_socket, kAdminBacklog, error);
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
    if (!config_.rules.empty() && (!setup_rules() || !setup_aggregator())) return false;
    if (!rules_table_) apply_runtime_changes();
    queues_to_create_ = 0;
    warn_about_orphan_queues();
    listeners_.resize(config_.workers);
    for (uint32_t i = 0; i < config_.workers; ++i) listeners_[i] = Child {Role::listener, i, ChildState::pending};
    return true;
}

void Supervisor::become_child(const Heritage& heritage) {
    const std::string name = child_name(heritage.role, heritage.index, destinations_[heritage.index].text);
    // The supervisor's mappings of the queue files are not kept: a child maps the queues it uses itself,
    // so the disk space of a destination removed later is freed when its last user unmaps it.
    for (Destination& d : destinations_) d.queue.reset();
    aggregator_queue_.reset();
    child_main(heritage, name, kHandledSignals);
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
            if (c.state == ChildState::backing_off && now >= c.restart_at_ms) spawn(c);
        for (Child& c : outputs_)
            if (c.state == ChildState::backing_off && now >= c.restart_at_ms) spawn(c);
        if (aggregator_.state == ChildState::backing_off && now >= aggregator_.restart_at_ms) spawn(aggregator_);
        if (queues_move()) update_ring_membership();
        if (!ready_sent_) notify_ready_once_reporting(now);
        check_stalls(now);
        finish_drains();
        finish_removals();
        retry_space_reservations(now);
        return;
    }
    if (state_ == State::stopping_listeners && running_children(Role::listener) == 0) {
        set_state(State::stopping_outputs);
        for (Child& c : outputs_)
            if (c.pid) kill(c.pid, SIGTERM);
        if (aggregator_.pid) kill(aggregator_.pid, SIGTERM);
    }
    if (state_ == State::stopping_outputs && running_children(Role::output) == 0 &&
        running_children(Role::aggregator) == 0) {
        set_state(State::stopped);
        event_base_loopbreak(base_);
        return;
    }
    if (now >= shutdown_deadline_ms_) {
        LOG_WARN("supervisor: children still running %lld ms into shutdown; killing them",
                 static_cast<long long>(now - shutdown_deadline_ms_ +
                                        static_cast<int64_t>(config_.drain_timeout_s + 5) * 1000));
        for (Child& c : listeners_)
            if (c.pid) kill(c.pid, SIGKILL);
        for (Child& c : outputs_)
            if (c.pid) kill(c.pid, SIGKILL);
        if (aggregator_.pid) kill(aggregator_.pid, SIGKILL);
        shutdown_deadline_ms_ = now + 1000;
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
    struct stat st = {};
    const bool found = stat(existing.c_str(), &st) == 0;
    switch (err) {
        case EROFS:
            text += " (" + existing.string() +
                " is on a read-only file system; give polymur a --state-dir on a writable one)";
            break;
        case EACCES:
        case EPERM:
            if (found)
                text += " (" + existing.string() + " is owned by uid " + std::to_string(st.st_uid) + ", gid " +
                    std::to_string(st.st_gid) + ", mode " +
                    [&] {
                        char m[8];
                        std::snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
                        return std::string(m);
                    }() +
                    "; polymur runs as uid " + std::to_string(geteuid()) + ", gid " + std::to_string(getegid()) +
                    ": make it writable for that user, e.g. chown it)";
            break;
        case ENOENT:
        case ENOTDIR:
            if (found && !S_ISDIR(st.st_mode)) text += " (" + existing.string() + " is not a directory)";
            else if (found && existing.string() != dir)
                text +=
                    " (" + existing.string() + " exists, but not the directories under it on the way to " + dir + ")";
            break;
        case ENOSPC:
        case EDQUOT: text += " (the file system is full)"; break;
        default: break;
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

RelayCounters Supervisor::counters() {
    RelayStatus s = status();
    RelayCounters c;
    c.received = s.received;
    c.invalid = s.invalid + s.too_long;
    c.unroutable = s.unroutable;
    c.connections_total = s.connections_total;
    c.connections_open = s.connections;
    c.aggregating = s.aggregating;
    c.aggregator_points = s.aggregator.points;
    c.aggregator_buckets = s.aggregator.buckets_emitted;
    c.aggregator_late = s.aggregator.late;
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
    s.distribution = rules_table_ ? "rules" : distribution_name(config_.distribution);
    s.start_unix_seconds = control_->header.start_unix_ns / 1000000000;
    add_worker_counters(*control_, config_.workers, s);
    for (const Child& c : listeners_) s.listeners.push_back({c.deaths, c.restarts});
    aggregator_status(s);
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || !d.queue) continue;
        const shm::DestinationSlot& c = control_->destinations[slot];
        DestinationStatus out;
        out.name = d.text;
        out.console = d.console;
        // An output that gave up left its last link state behind; say that it is not running.
        out.state = d.removing ? "removing"
            : outputs_[slot].state == ChildState::given_up
            ? "given_up"
            : shm::link_state_name(static_cast<shm::LinkState>(c.link_state.load(std::memory_order_relaxed)));
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
        out.deaths = outputs_[slot].deaths;
        out.restarts = outputs_[slot].restarts;
        s.destinations.push_back(std::move(out));
    }
    return s;
}

// Ready: running, and every listener, every registered destination's output and the aggregator (when the rules
// have aggregate rules) alive and reporting.
Health Supervisor::health() {
    std::vector<ChildView> children;
    for (const Child& c : listeners_)
        children.push_back(
            {child_name(Role::listener, c.index, ""), c.pid, c.expected(), c.started_ms,
             static_cast<int64_t>(control_->workers[c.index].heartbeat_ms.load(std::memory_order_relaxed)),
             health_stale_after_ms(false, config_.stall_timeout_s, config_.connect_timeout_ms)});
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        const Child& c = outputs_[slot];
        if (!d.in_use || d.removing) continue;
        children.push_back(
            {child_name(Role::output, slot, d.text), c.pid, true, c.started_ms,
             static_cast<int64_t>(control_->destinations[slot].heartbeat_ms.load(std::memory_order_relaxed)),
             health_stale_after_ms(true, config_.stall_timeout_s, config_.connect_timeout_ms)});
    }
    if (aggregator_.expected())
        children.push_back({child_name(Role::aggregator, 0, ""), aggregator_.pid, true, aggregator_.started_ms,
                            static_cast<int64_t>(control_->aggregator.heartbeat_ms.load(std::memory_order_relaxed)),
                            health_stale_after_ms(false, config_.stall_timeout_s, config_.connect_timeout_ms)});
    return evaluate_health(state_name(static_cast<int>(state_)), children, monotonic_ms());
}

// The supervisor reports as a client of its own plaintext listener, so its metrics take the same
// routing as everyone else's and it never writes a queue itself.
void Supervisor::send_self_metrics() {
    if (state_ != State::running) return;
    if (!config_.plaintext_listener) return;
    std::string host, port, error;
    // The address as bound: with port 0 configured, the port the kernel chose.
    const std::string bound = listen_fd_ ? net::local_name(listen_fd_.get()) : config_.listen_addr;
    if (!net::split_host_port(bound, host, port, error)) return;
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
    struct timeval timeout = {5, 0};
    bufferevent_set_timeouts(bev, &timeout, &timeout);
    bufferevent_write(bev, lines.data(), lines.size());
    bufferevent_enable(bev, EV_WRITE);
    if (bufferevent_socket_connect_hostname(bev, nullptr, AF_UNSPEC, host.c_str(), *port_number) != 0)
        bufferevent_free(bev);
}

void Supervisor::on_self_metrics(evutil_socket_t, short, void* self) {
    guarded("supervisor: self-metrics", [&] { static_cast<Supervisor*>(self)->send_self_metrics(); });
}

// READY=1 (systemd, Type=notify) once every child the relay needs has been forked and has written its
// first heartbeat: the listeners accept and route, each output has attached its queue, the aggregator (with
// aggregate rules) has recovered its state and published what the last run recorded. A child that
// has not reported by the deadline (--stall-timeout after the start) is named, and READY=1 is sent
// anyway: the stall check restarts it, and the relay runs without it meanwhile.
void Supervisor::notify_ready_once_reporting(int64_t now) {
    std::string waiting;
    auto check = [&](const Child& c, uint64_t heartbeat_ms, const std::string& text) {
        if (!c.expected() || (c.pid && static_cast<int64_t>(heartbeat_ms) >= c.started_ms)) return;
        waiting += (waiting.empty() ? "" : ", ") + child_name(c.role, c.index, text);
    };
    for (const Child& c : listeners_)
        check(c, control_->workers[c.index].heartbeat_ms.load(std::memory_order_relaxed), "");
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot)
        if (destinations_[slot].in_use && !destinations_[slot].removing)
            check(outputs_[slot], control_->destinations[slot].heartbeat_ms.load(std::memory_order_relaxed),
                  destinations_[slot].text);
    check(aggregator_, control_->aggregator.heartbeat_ms.load(std::memory_order_relaxed), "");
    if (!waiting.empty() && now < ready_deadline_ms_) return;
    if (!waiting.empty())
        LOG_WARN("supervisor: %s not reporting %u s after the start; telling systemd it is ready anyway",
                 waiting.c_str(), config_.stall_timeout_s);
    systemd_.notify("READY=1\nSTATUS=running\nMAINPID=" + std::to_string(getpid()));
    ready_sent_ = true;
}

void Supervisor::begin_shutdown(const char* why) {
    if (state_ != State::running) return;
    LOG_NOTICE("supervisor: %s; stopping listeners, then letting outputs deliver for up to %u s", why,
               config_.drain_timeout_s);
    set_state(State::stopping_listeners);
    systemd_.notify("STOPPING=1\nSTATUS=stopping: delivering queues for up to " +
                    std::to_string(config_.drain_timeout_s) + " s");
    admin_->close_listeners();
    shutdown_deadline_ms_ = monotonic_ms() + static_cast<int64_t>(config_.drain_timeout_s + 5) * 1000;
    for (Child& c : listeners_)
        if (c.pid) kill(c.pid, SIGTERM);
    housekeeping();
}

void Supervisor::log_rates() {
    int64_t now = monotonic_ms();
    RelayStatus totals;
    add_worker_counters(*control_, config_.workers, totals);
    const uint64_t received = totals.received;
    uint64_t delta = received - last_received_;
    double seconds = (now - last_rates_ms_) / 1000.0;
    last_received_ = received;
    last_rates_ms_ = now;
    last_rate_ = seconds > 0 ? delta / seconds : 0.0;
    // Every interval, as Polymur, so a quiet relay is visibly alive and quiet.
    LOG_INFO("Last %.2fs: Received %llu data points | Avg: %.2f/sec.", seconds, static_cast<unsigned long long>(delta),
             last_rate_);
    if (state_ == State::running) {
        char status[160];
        std::snprintf(status, sizeof status, "STATUS=%.0f metrics/s received; %zu destinations", last_rate_,
                      static_cast<size_t>(std::count_if(destinations_.begin(), destinations_.end(),
                                                        [](const Destination& d) { return d.in_use && !d.removing; })));
        systemd_.notify(status);
    }
    for (Destination& d : destinations_) {
        if (!d.in_use || !d.queue) continue;
        uint64_t queued = d.queue->queued_lines();
        // Lines dropped because the queue was full (its bytes or --queue-cap), counted by the listeners: one line
        // a report while it lasts, whether or not the queue is still full at this moment.
        const uint64_t dropped = d.queue->dropped_lines();
        if (dropped > d.reported_dropped)
            LOG_WARN(
                "destination %s: queue full: %llu metrics dropped in the last %.2fs (%llu in all); queued now %llu "
                "lines and %llu bytes, of --queue-cap %llu lines and the %llu bytes of the listeners' rings",
                d.text.c_str(), static_cast<unsigned long long>(dropped - d.reported_dropped), seconds,
                static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(queued),
                static_cast<unsigned long long>(d.queue->queued_bytes()),
                static_cast<unsigned long long>(config_.queue_cap),
                static_cast<unsigned long long>(d.queue->ring_capacity() * (d.queue->ring_count() - 1)));
        d.reported_dropped = dropped;
        if (queued >= config_.queue_cap)
            LOG_WARN("Destination %s queue is at capacity (%llu) - further messages will be dropped", d.text.c_str(),
                     static_cast<unsigned long long>(queued));
        else if (queued > 0)
            LOG_INFO("Destination %s queue length: %llu", d.text.c_str(), static_cast<unsigned long long>(queued));
    }
}

std::string Supervisor::stats() { return format_stats_json(status()); }

void Supervisor::on_signal(evutil_socket_t signal, short, void* self_ptr) {
    auto* self = static_cast<Supervisor*>(self_ptr);
    switch (signal) {
        case SIGCHLD:
            guarded("supervisor: SIGCHLD", [&] {
                self->reap_children();
                self->housekeeping();
            });
            break;
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
    // A queue file truncated under the running relay costs the processes that touch it, not the supervisor.
    shm::guard_queue_mappings(shm::OnTruncatedQueue::keep_running, 0,
                              "the supervisor carries on; the destination's output stops and is not restarted");
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
            base_, metrics_fd_.get(),
            MetricsHttpServer::Source {[this] { return status(); }, [this] { return health(); }});
        if (!metrics_->ok()) return kExitDoNotRestart;
        // As bound: with port 0, the port the kernel chose (README, Addresses).
        LOG_NOTICE("metrics: serving /metrics (Prometheus) and /health on %s",
                   net::local_name(metrics_fd_.get()).c_str());
        if (!net::is_loopback(metrics_fd_.get()))
            LOG_WARN("metrics %s: listening beyond loopback; anyone who can reach it can read the relay's counters",
                     config_.metrics_addr.c_str());
    }

    struct event* tick = event_new(base_, -1, EV_PERSIST, &Supervisor::on_housekeeping, this);
    struct timeval tick_interval = {0, 100000};
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
        if (c.state == ChildState::pending) spawn(c);
    for (Child& c : listeners_) spawn(c);
    if (aggregator_.state == ChildState::pending) spawn(aggregator_);
    // Every socket was bound in setup() and every child has been forked; READY=1 follows once each has
    // reported its first heartbeat (housekeeping), at most --stall-timeout from now.
    ready_deadline_ms_ = monotonic_ms() + static_cast<int64_t>(config_.stall_timeout_s) * 1000;
    // The addresses as bound: with port 0 in an address, the port the kernel chose (README, Addresses).
    std::string listening;
    auto add_listening = [&](const UniqueFd& fd, const char* what) {
        if (fd) listening += (listening.empty() ? "" : ", ") + (what + (" " + net::local_name(fd.get())));
    };
    if (config_.plaintext_listener) add_listening(listen_fd_, "plaintext");
    add_listening(https_fd_, "HTTPS");
    add_listening(http_fd_, "HTTP");
    add_listening(pickle_fd_, "pickle");
    add_listening(tls_fd_, "TLS");
    add_listening(udp_fd_, "UDP");
    // What runs now: the configured destinations and the replayed runtime changes, the console aside.
    Config running = config_;
    running.destinations.clear();
    for (const Destination& d : destinations_)
        if (d.in_use && !d.console) running.destinations.push_back(d.text);
    LOG_NOTICE("supervisor: %s: listening on %s with %u workers; admin on %s and %s; %s to %zu destinations%s",
               mode_name(config_.mode), listening.c_str(), config_.workers,
               admin_tcp_fd_ ? net::local_name(admin_tcp_fd_.get()).c_str() : config_.api_addr.c_str(),
               config_.admin_socket.c_str(), distribution_name(config_.distribution), running.destinations.size(),
               config_.console_out ? " and the console" : "");
    for (const std::string& warning : config_warnings(running)) LOG_WARN("%s", warning.c_str());

    event_base_dispatch(base_);
    reap_children();
    unlink(config_.admin_socket.c_str());
    LOG_NOTICE("supervisor: stopped");
    return exit_code_;
}

}  // namespace polymur
