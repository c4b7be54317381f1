// The supervisor: owns the configuration, the listen and admin sockets, the shared memory and the
// process table. It forks listener workers and one output process per destination, restarts them
// with capped backoff, and serves the admin protocol. It never touches the data path.
#pragma once

#include <event2/event.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/interprocess/mapped_region.hpp>

#include "admin/command.hpp"
#include "admin/relay_status.hpp"
#include "admin/server.hpp"
#include "common/config.hpp"
#include "common/destination_spec.hpp"
#include "common/heritage.hpp"
#include "common/self_metrics.hpp"
#include "common/unique_fd.hpp"
#include "route/routing_table.hpp"
#include "shm/control.hpp"
#include "shm/queue.hpp"
#include "supervisor/health.hpp"
#include "supervisor/metrics_http.hpp"
#include "supervisor/systemd_notify.hpp"

namespace polymur {

// What the supervisor does with one child (Supervisor::Child). Names by child_state_name().
enum class ChildState {
    absent,       // no process, none wanted: a free slot, a removed destination, or stopped at shutdown
    pending,      // to be forked when the supervisor starts running
    running,      // forked, pid set
    stopping,     // running, sent SIGTERM because its destination was removed
    backing_off,  // exited unasked; forked again at restart_at_ms
    given_up,     // exited with kExitDoNotRestart: a problem a restart cannot fix; not restarted
};
const char* child_state_name(ChildState state);

class Supervisor final : public admin::Backend {
public:
    // `args` is the command line as given, re-read with the environment and the file on SIGHUP.
    Supervisor(Config config, std::vector<std::string> args) : config_(std::move(config)), args_(std::move(args)) {}
    ~Supervisor() override;

    // Runs until SIGTERM/SIGINT; returns the process exit code.
    int run();

    std::string getdest() override;
    std::string putdest(const std::string& destination) override;
    std::string deldest(const std::string& destination) override;
    // --rules: cluster membership at runtime (supervisor/clusters.cpp).
    std::string putdest_to(const std::string& destination, const std::string& cluster) override;
    std::string deldest_from(const std::string& destination, const std::string& cluster) override;
    std::string stats() override;

private:
    enum class State { starting, running, stopping_listeners, stopping_outputs, stopped };

    // One entry of the process table. Its state says what the supervisor does with it; `pid` is set
    // exactly while the process exists (running, stopping), `restart_at_ms` only means something while
    // backing off.
    struct Child {
        Role role = Role::listener;
        uint32_t index = 0;
        ChildState state = ChildState::absent;
        pid_t pid = 0;
        int64_t started_ms = 0;
        int64_t restart_at_ms = 0;
        int64_t backoff_ms = 0;
        uint64_t deaths = 0;    // exits the supervisor did not ask for (crash, kill -9, stall kill, bad exit)
        uint64_t restarts = 0;  // forks after the first

        // It should be running: forked, or to be forked now or after its backoff.
        bool expected() const { return state != ChildState::absent && state != ChildState::given_up; }
    };

    // The supervisor's own copy of a destination; shared memory is never trusted for this.
    struct Destination {
        bool in_use = false;
        std::string text;
        bool console = false;
        DestinationSpec spec;  // parsed once when registered; empty for the console

        // A node of the hash ring: the console and the https mirrors are not.
        bool ring_member() const { return !console && spec.ring_member(); }
        int64_t registered_unix_ns = 0;
        uint64_t incarnation = 0;
        std::unique_ptr<shm::QueueFile> queue;
        uint64_t reported_dropped = 0;  // the queue's dropped count at the last report (log_rates)
        bool removing = false;
        uint64_t removal_generation = 0;
        bool draining = false;  // --rules: in no cluster now; removed once its queue is delivered
        uint64_t draining_generation = 0;
    };

    bool setup();
    // --rules (supervisor/clusters.cpp): builds the table and registers every destination it names.
    bool setup_rules();
    bool rules_file_changed();
    // Aggregate rules (supervisor/aggregator_child.cpp): the aggregator's queue and process.
    bool aggregating() const { return rules_table_ && rules_table_->aggregate_count() > 0; }
    bool setup_aggregator();
    void aggregator_status(RelayStatus& s) const;
    // Whether a destination's queue moves to others when it is down or removed (failover).
    bool queue_moves(const Destination& d) const;
    bool queues_move() const { return config_.hash_route() || rules_table_ != nullptr; }
    bool add_destination(const std::string& text, bool console, std::string& error);
    // deldest: the destination takes no new lines; its queue moves or goes (finish_removals).
    void begin_removal(uint32_t slot);
    // "" or the error reply for a putdest of an address that reaches one of this relay's own listeners.
    std::string own_listener_refusal(const std::string& destination);
    // --rules (supervisor/clusters.cpp): membership changes, their file, and members leaving every cluster.
    void load_runtime_clusters();
    bool save_runtime_clusters(std::string& error);
    std::string change_clusters(bool add, const std::string& destination, const std::string& cluster);
    long registered_slot(const std::string& address) const;
    void finish_drains();
    std::string cluster_getdest_fields();
    void publish_generation();
    void spawn(Child& child);
    [[noreturn]] void become_child(const Heritage& heritage);
    void reap_children();
    void child_exited(Child& child, int status);
    void housekeeping();
    void finish_removals();
    void update_ring_membership();
    void check_stalls(int64_t now);
    bool lock_state_dir();
    static std::string state_dir_problem(const std::string& dir, int err, const char* what);
    void apply_runtime_changes();
    std::string runtime_destinations_text(const std::string* adding, const std::string* removing) const;
    bool save_runtime_destinations(std::string& error, const std::string* adding = nullptr,
                                   const std::string* removing = nullptr);
    void warn_about_orphan_queues();
    void retry_space_reservations(int64_t now);
    uint32_t count_new_queue_files() const;
    void reload();
    void arm_periodic_events();
    void publish_live_settings();
    void send_self_metrics();
    RelayCounters counters();
    RelayStatus status();
    Health health();
    static void on_self_metrics(evutil_socket_t, short, void* self);
    void log_rates();
    void set_state(State state);
    void begin_shutdown(const char* why);
    void notify_ready_once_reporting(int64_t now);
    size_t running_children(Role role) const;
    Child* find_child(pid_t pid);

    static void on_signal(evutil_socket_t signal, short, void* self);
    static void on_housekeeping(evutil_socket_t, short, void* self);
    static void on_rates(evutil_socket_t, short, void* self);

    Config config_;
    std::vector<std::string> args_;
    SystemdNotifier systemd_;
    int64_t last_watchdog_ms_ = 0;
    bool ready_sent_ = false;        // READY=1 sent after the start (reloads send their own)
    int64_t ready_deadline_ms_ = 0;  // READY=1 at the latest then, reporting or not
    double last_rate_ = 0;
    State state_ = State::starting;
    struct event_base* base_ = nullptr;
    std::vector<struct event*> events_;
    struct event* rates_event_ = nullptr;         // every --stats-interval
    struct event* self_metrics_event_ = nullptr;  // every --self-metrics-interval (not armed when 0)
    std::unique_ptr<admin::Server> admin_;
    std::unique_ptr<MetricsHttpServer> metrics_;
    UniqueFd state_lock_;
    UniqueFd listen_fd_;
    UniqueFd https_fd_;
    UniqueFd http_fd_;
    UniqueFd pickle_fd_;
    UniqueFd tls_fd_;
    UniqueFd udp_fd_;
    UniqueFd admin_tcp_fd_;
    UniqueFd admin_unix_fd_;
    admin::AdminPolicy admin_policy_;
    UniqueFd metrics_fd_;
    boost::interprocess::mapped_region control_region_;
    shm::ControlSegment* control_ = nullptr;
    std::vector<Child> listeners_;
    std::array<Child, shm::kDestinationSlots> outputs_ {};
    std::array<Destination, shm::kDestinationSlots> destinations_ {};
    uint64_t next_incarnation_ = 1;
    uint32_t reroute_holder_ = shm::kNoSlot;            // the output granted control_->header.reroute_slot
    std::unique_ptr<route::RoutingTable> rules_table_;  // --rules; children inherit it (Heritage::rules)
    std::string rules_sources_;  // the files the table was built from, as read (route::compile_rules_file)
    Child aggregator_;           // absent unless the rules have aggregate rules
    std::unique_ptr<shm::QueueFile> aggregator_queue_;
    uint32_t queues_to_create_ = 0;  // at start: new queue files still to create, which share the free space
    int64_t next_space_retry_ms_ = 0;
    int64_t shutdown_deadline_ms_ = 0;
    uint64_t last_received_ = 0;
    int64_t last_rates_ms_ = 0;
    int exit_code_ = 0;
};

}  // namespace polymur
