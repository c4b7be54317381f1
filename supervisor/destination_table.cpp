// The destination table: registering a destination (its queue file, its slot in shared memory, its
// output), removing one, the runtime journal of putdest/deldest, and the admin commands that change it.
// Part of the Supervisor class (supervisor.hpp), in its own file by job.
#include "supervisor/supervisor.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/clock.hpp"
#include "common/durable_file.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/validate.hpp"
#include "route/destination.hpp"
#include "route/hash_ring.hpp"
#include "supervisor/leftovers.hpp"
#include "supervisor/loop_guard.hpp"
#include "supervisor/queue_space.hpp"

namespace polymur {

// Registers a destination: its queue file, its slot in shared memory, its output process.
bool Supervisor::add_destination(const std::string& text, bool console, std::string& error) {
    DestinationSpec spec;  // the console has none: it is no transport
    if (!console) {
        error = check_destination_text(text, &spec);
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
    const bool https = !console && spec.transport == DestinationTransport::https;
    if (https && (config_.client_cert.empty() || config_.client_key.empty() || config_.ca_cert.empty())) {
        error = "destination " + text +
            ": HTTPS destinations need --client-cert, --client-key and --ca-cert, "
            "and this polymur runs without them";
        return false;
    }
    if (!console && spec.ring_member() && config_.hash_route()) {
        // Refuse what carbon refuses: two destinations that are the same ring node.
        std::vector<route::Destination> members;
        for (const Destination& d : destinations_)
            if (d.in_use && !d.removing && d.ring_member()) members.push_back(d.spec.endpoint);
        members.push_back(spec.endpoint);
        if (!route::HashRing::build(config_.hash_type, members, error, config_.hash_compat)) return false;
    }
    auto free_slot =
        std::find_if(destinations_.begin(), destinations_.end(), [](const Destination& d) { return !d.in_use; });
    if (free_slot == destinations_.end()) {
        error =
            "destination " + text + ": all " + std::to_string(shm::kDestinationSlots) + " destination slots are in use";
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
    auto queue = shm::QueueFile::open_or_create(
        path, text, shm::geometry_for(destination_rings(config_.workers, aggregating()), config_.queue_bytes), budget,
        space, error);
    if (!queue) {
        error = "destination " + text + ": " + error;
        return false;
    }
    uint64_t resumed = queue->queued_lines();
    if (space.rolled_back_bytes)
        LOG_WARN(
            "destination %s: queue %s: the machine went down since it was last synced; %llu bytes written after the "
            "last sync (at most --sync-interval seconds of lines) were given up",
            text.c_str(), path.c_str(), static_cast<unsigned long long>(space.rolled_back_bytes));
    if (!config_.sync_interval_s) queue->forget_sync();
    if (space.migrated_lines || !space.migrated_from.empty())
        LOG_NOTICE(
            "destination %s: queue %s: moved %llu queued lines from its old geometry (%s) into %u rings of %llu bytes",
            text.c_str(), path.c_str(), static_cast<unsigned long long>(space.migrated_lines),
            space.migrated_from.c_str(), queue->ring_count(), static_cast<unsigned long long>(queue->ring_capacity()));
    if (!space.problem.empty() && queue->space_reserved())
        LOG_ERROR("destination %s: queue %s %s", text.c_str(), path.c_str(), space.problem.c_str());
    else if (!space.problem.empty())
        LOG_ERROR(
            "destination %s: queue %s holds %llu lines but %s; its %llu queued lines are delivered, new lines for it "
            "are dropped and counted until the space is there (retried every 5 s)",
            text.c_str(), path.c_str(), static_cast<unsigned long long>(resumed), space.problem.c_str(),
            static_cast<unsigned long long>(resumed));

    Destination& d = *free_slot;
    d = Destination {};
    d.in_use = true;
    d.text = text;
    d.console = console;
    d.spec = std::move(spec);
    d.registered_unix_ns = realtime_ns();
    d.incarnation = next_incarnation_++;
    d.queue = std::move(queue);
    d.reported_dropped = d.queue->dropped_lines();  // the file's past drops were reported when they happened

    shm::DestinationSlot& s = control_->destinations[slot];
    s.type = static_cast<uint32_t>(shm_destination_type(console ? nullptr : &d.spec));
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
    s.in_ring.store(d.ring_member() ? 1 : 0, std::memory_order_relaxed);
    s.state.store(static_cast<uint32_t>(shm::SlotState::active), std::memory_order_release);
    publish_generation();

    LOG_NOTICE("destination %s: registered (queue %s%s)", text.c_str(), d.queue->path().c_str(),
               resumed ? (", resuming " + std::to_string(resumed) + " queued lines").c_str() : "");
    outputs_[slot] = Child {Role::output, slot, ChildState::pending};
    if (state_ == State::running) spawn(outputs_[slot]);
    return true;
}

void Supervisor::publish_generation() { control_->header.generation.fetch_add(1, std::memory_order_acq_rel); }

// A removed destination's slot is freed once every worker routes by a table without it and its
// output process has exited; only then is its queue file deleted.
void Supervisor::finish_removals() {
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || !d.removing) continue;
        bool workers_moved_on = true;
        for (const Child& w : listeners_)
            if (w.pid &&
                control_->workers[w.index].seen_generation.load(std::memory_order_acquire) < d.removal_generation)
                workers_moved_on = false;
        if (!workers_moved_on) continue;
        Child& out = outputs_[slot];
        if (out.pid && queue_moves(d)) continue;  // it moves its queue to the others, then exits
        if (out.pid) {
            if (out.state == ChildState::running) {
                kill(out.pid, SIGTERM);
                out.state = ChildState::stopping;
            }
            continue;
        }
        uint64_t discarded = d.queue ? d.queue->queued_lines() : 0;
        std::string path = d.queue ? d.queue->path() : "";
        d.queue.reset();
        if (!path.empty()) unlink(path.c_str());
        LOG_NOTICE("destination %s: removed%s", d.text.c_str(),
                   discarded ? (" (" + std::to_string(discarded) + " queued lines discarded with it)").c_str() : "");
        control_->destinations[slot].state.store(static_cast<uint32_t>(shm::SlotState::free),
                                                 std::memory_order_release);
        d = Destination {};
        outputs_[slot] = Child {};
    }
}

// putdest/deldest (and destinations changed by SIGHUP) outlive a restart: <state-dir>/runtime-destinations
// holds the shortest list of changes that turns the configured destinations into the running ones,
// replaced durably at every change. `adding`/`removing` describe a change about to be made, so the
// file is written before the change takes effect and a failed write leaves both untouched.
std::string Supervisor::runtime_destinations_text(const std::string* adding, const std::string* removing) const {
    auto running = [&](const std::string& text) {
        if (removing && text == *removing) return false;
        if (adding && text == *adding) return true;
        return std::any_of(destinations_.begin(), destinations_.end(), [&](const Destination& d) {
            return d.in_use && !d.removing && !d.console && d.text == text;
        });
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
                DestinationSpec parsed;
                std::string ignored;
                const bool may_pass = parse_destination_spec(destination, parsed, ignored);
                LOG_ERROR("%s: putdest %s cannot be replayed%s: %s", path.c_str(), destination.c_str(),
                          may_pass ? " now" : "", error.c_str());
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
    LOG_NOTICE(
        "%s: replayed %zu runtime destination changes (%zu no longer applied); delete the file to start "
        "from the configured destinations alone",
        path.c_str(), applied, skipped);
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
    for (const std::string& text : config_.destinations)
        count += access(queue_path(config_.state_dir, text).c_str(), F_OK) != 0;
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
        bool known = entry.path().string() == aggregator_queue_path(config_.state_dir);
        for (const Destination& d : destinations_)
            known |= d.in_use && d.queue && d.queue->path() == entry.path().string();
        if (known) continue;
        std::string error;
        auto queue = shm::QueueFile::open(entry.path().string(), error);
        if (!queue) {
            LOG_WARN("%s", error.c_str());
        } else if (queue->queued_lines()) {
            std::string name(queue->header().destination,
                             strnlen(queue->header().destination, shm::kDestinationTextMax));
            LOG_WARN("queue file %s holds %llu lines for %s, which is not a destination now; putdest %s delivers them",
                     entry.path().c_str(), static_cast<unsigned long long>(queue->queued_lines()), name.c_str(),
                     name.c_str());
        }
    }
}

std::string Supervisor::getdest() {
    std::vector<RegisteredDestination> listed;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || d.removing || d.console) continue;
        auto link =
            static_cast<shm::LinkState>(control_->destinations[slot].link_state.load(std::memory_order_relaxed));
        bool active =
            link == shm::LinkState::connected && (!queues_move() || control_->destinations[slot].in_ring.load());
        listed.push_back({d.text, d.registered_unix_ns, active});
    }
    std::string out = format_getdest(listed);
    // --rules: the clusters' members, inside the same JSON object (the plain reply is unchanged without).
    if (rules_table_ && out.size() >= 3 && out.compare(out.size() - 3, 3, "\n}\n") == 0)
        out.insert(out.size() - 3, cluster_getdest_fields());
    return out;
}

std::string Supervisor::own_listener_refusal(const std::string& destination) {
    DestinationSpec parsed;
    std::string error, listener;
    if (parse_destination_spec(destination, parsed, error) && parsed.transport == DestinationTransport::tcp &&
        reaches_own_listener(
            parsed.endpoint.host, parsed.endpoint.port,
            {listen_fd_.get(), https_fd_.get(), http_fd_.get(), admin_tcp_fd_.get(), metrics_fd_.get()}, listener)) {
        LOG_WARN("destination %s: putdest refused: it reaches this relay's own listener %s", destination.c_str(),
                 listener.c_str());
        return "error: destination " + destination + " is this relay's own listener " + listener +
            "; sending there would loop every metric back in\n";
    }
    return "";
}

std::string Supervisor::putdest(const std::string& destination) {
    std::string error;
    if (rules_table_) return change_clusters(true, destination, "");
    if (destination == "console") return "error: the console output is set with --console-out\n";
    size_t registered = static_cast<size_t>(std::count_if(destinations_.begin(), destinations_.end(),
                                                          [](const Destination& d) { return d.in_use && !d.console; }));
    if (registered >= config_.max_destinations)
        return "error: " + std::to_string(registered) +
            " destinations are registered, the most --max-destinations allows; " + "deldest one first\n";
    if (std::string refusal = own_listener_refusal(destination); !refusal.empty()) return refusal;
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

void Supervisor::begin_removal(uint32_t slot) {
    Destination& d = destinations_[slot];
    d.removing = true;
    control_->destinations[slot].state.store(static_cast<uint32_t>(shm::SlotState::removing),
                                             std::memory_order_release);
    publish_generation();
    d.removal_generation = control_->header.generation.load(std::memory_order_acquire);
    // hash-route keeps the output until it has moved the queue to the remaining destinations.
    // One waiting to restart is not restarted: its queue is discarded with the destination.
    if (outputs_[slot].state == ChildState::backing_off || outputs_[slot].state == ChildState::pending)
        outputs_[slot].state = ChildState::absent;
    LOG_NOTICE("destination %s: unregistering%s", d.text.c_str(),
               queue_moves(d) ? "; its queue moves to the remaining destinations" : "");
}

std::string Supervisor::deldest(const std::string& destination) {
    if (rules_table_) return change_clusters(false, destination, "");
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || d.removing || d.console || d.text != destination) continue;
        std::string error;
        if (!save_runtime_destinations(error, nullptr, &destination)) {
            LOG_ERROR("deldest %s refused: %s", destination.c_str(), error.c_str());
            return "error: " + error + "; not unregistered\n";
        }
        begin_removal(slot);
        bool others = std::any_of(destinations_.begin(), destinations_.end(),
                                  [](const Destination& o) { return o.in_use && !o.removing && !o.console; });
        if (!others && !config_.hash_route())
            LOG_WARN(
                "broadcast: no destinations left; metrics received are discarded and counted as unroutable until putdest");
        finish_removals();
        return "Unregistered destination: " + destination + "\n";
    }
    return "error: destination " + net::printable(destination) + " is not registered\n";
}

}  // namespace polymur
