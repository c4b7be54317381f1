// One compiled routing table: for a metric name (and the data after it), which rewritten name goes to which
// destination slots. Built from a carbon-c-relay rules file, or from --distribution/--destinations (one implicit
// cluster and one `match *`). Lookups do no I/O and no heap allocation: results go into caller-owned buffers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "route/destination.hpp"
#include "route/hash_ring.hpp"
#include "route/rules_parser.hpp"

namespace polymur::route {

class CompiledRule;
class CompiledCluster;

// Receives the steps of one lookup, for `polymur test`; the data path passes none.
class RouteTrace {
public:
    virtual ~RouteTrace() = default;
    virtual void rewrote(size_t rule, std::string_view expression, std::string_view before,
                         std::string_view replacement, std::string_view after) = 0;
    virtual void matched(size_t rule, std::string_view expression, std::string_view name) = 0;
    // passed: validate expression matched `data`; otherwise the rule's log/drop action applies.
    virtual void validated(size_t rule, std::string_view expression, std::string_view data, bool passed) = 0;
    virtual void cluster(size_t rule, std::string_view type, std::string_view name, const uint16_t* slots,
                         size_t count) = 0;
    virtual void blackholed(size_t rule) = 0;
    virtual void stopped(size_t rule) = 0;
    virtual void nothing_matched(std::string_view name) = 0;  // no match rule applied to the name
    // An aggregate rule took `name`; `aggregate` indexes RoutingTable::aggregate(). `literal`: the expression that
    // took it is a plain string (carbon-c-relay -t shows those rules' computes in another layout).
    virtual void aggregated(size_t rule, size_t aggregate, std::string_view expression, std::string_view name,
                            bool literal) = 0;
};

// Caller-owned buffers for one lookup, reused line after line (allocate once per thread).
struct RouteResult {
    static constexpr size_t kMaxNames = 64;          // the input name plus up to 63 rewritten versions
    static constexpr size_t kNameBytes = 64 * 1024;  // room for all the versions of one line
    static constexpr size_t kMaxSends = 1024;

    static constexpr size_t kMaxFeeds = 256;

    struct Send {
        uint16_t slot;  // destination slot
        uint8_t name;   // index into names
    };
    struct Feed {
        uint16_t aggregate;  // index of the aggregate rule (RoutingTable::aggregate)
        uint8_t name;        // index into names: the name as that rule saw it
    };

    std::array<std::string_view, kMaxNames> names;  // names[0] is the input; views into `bytes` after that
    size_t name_count = 0;
    std::array<Send, kMaxSends> sends;
    size_t send_count = 0;
    std::array<Feed, kMaxFeeds> feeds;  // aggregate rules the metric feeds, in rule order
    size_t feed_count = 0;
    bool blackholed = false;  // a blackhole rule ended the lookup
    bool dropped = false;     // a failed validate ended the lookup (a rule without destinations, or with stop)
    bool logged = false;      // a validate ... else log rule failed (the caller logs, rate-limited)
    bool overflow = false;    // a limit above was reached; the sends so far are kept
    bool matched = false;     // some match rule applied (false: the name goes nowhere, unmatched)
    std::array<char, kNameBytes> bytes;
    size_t bytes_used = 0;

    std::string_view name_of(const Send& send) const { return names[send.name]; }
    std::string_view name_of(const Feed& feed) const { return names[feed.name]; }
};

class RoutingTable {
public:
    ~RoutingTable();
    RoutingTable(const RoutingTable&) = delete;
    RoutingTable& operator=(const RoutingTable&) = delete;

    // Compiles parsed rules. Fails (naming file:line) on a regular expression polymur cannot run as written.
    static std::unique_ptr<RoutingTable> build(const rules::RulesConfig& config, std::string& error);

    // The implicit table of --distribution/--destinations: one cluster (broadcast = forward over all
    // destinations; hash-route = `type` with `replication`, Graphite carbon's placement) and `match *`.
    static std::unique_ptr<RoutingTable> build_implicit(bool broadcast, HashType type,
                                                        const std::vector<Destination>& destinations,
                                                        size_t replication, bool diverse, std::string& error,
                                                        HashCompat compat = HashCompat::graphite);

    // Routes `name`; `data` is what follows the name on the line (for validate). `up[slot]` says which
    // destinations are up (nullptr: all are); failover, any_of and dynamic clusters route around the others.
    void route(std::string_view name, std::string_view data, const bool* up, RouteResult& result,
               RouteTrace* trace = nullptr) const;

    // Where a line queued for destination `own` goes when `own` is down (up[own] false): within each
    // any_of, failover or dynamic hash cluster `own` belongs to that would place `name` on it, the members
    // that cluster names now and did not already name (they have their copy). Writes up to `cap` slots;
    // returns how many. 0: no such cluster (forward and plain hash clusters keep the line queued for `own`).
    size_t failover(std::string_view name, size_t own, const bool* up, uint16_t* out, size_t cap) const;
    // A ring that names one node twice (a one-node ring without diverse replicas) sends one copy; after this,
    // route() reports it twice, as carbon's getDestinations does (for `polymur lookup`).
    void keep_ring_repeats();
    // Whether `slot` is in some cluster whose lines move to other members when it is down.
    bool slot_fails_over(size_t slot) const;

    size_t slot_count() const { return slots_.size(); }
    const std::string& slot_address(size_t slot) const { return slots_[slot].address; }
    const std::optional<std::string>& slot_instance(size_t slot) const { return slots_[slot].instance; }
    // The destination as polymur writes it ([scheme://]host:port[:instance]): its queue's and output's name.
    const std::string& slot_text(size_t slot) const { return slots_[slot].text; }
    // The slot a destination text names (host:port identity, instance ignored), or -1.
    long find_slot(std::string_view text) const;
    // The clusters and their members, for getdest: (name, type, member slots).
    size_t cluster_count() const { return clusters_.size(); }
    const std::string& cluster_name(size_t cluster) const;
    const char* cluster_type(size_t cluster) const;
    const std::vector<uint16_t>& cluster_members(size_t cluster) const;
    size_t rule_count() const { return rules_.size(); }
    // Whether route() sends every name, unchanged, to the same slots whatever the name, data and `up` (one
    // `match *` to forward clusters only, as --distribution broadcast builds): then `slots` lists them, in the
    // order route() would, and a caller may skip the per-line lookup.
    bool sends_every_name_to(std::vector<uint16_t>& slots) const;
    // Whether route() sends every name, unchanged, to the slots one cluster selects for it, whatever the data
    // (one `match *` to one cluster, as --distribution hash-route builds; no rewrite, validate, blackhole or
    // aggregate): then one_cluster_slots() answers as route() would, without its rule loop.
    bool routes_by_one_cluster() const;
    // Only when routes_by_one_cluster(): the slots route() sends `name` to, in its order, into
    // out[0..RouteResult::kMaxSends); returns how many.
    size_t one_cluster_slots(std::string_view name, const bool* up, uint16_t* out) const;
    // Only when routes_by_one_cluster(): if one_cluster_slots() answers by nothing but the name's carbon_ch
    // position (the cluster is carbon_ch and not dynamic: `up` is not asked), the most slots it answers; else 0.
    size_t one_cluster_slots_by_position() const;
    // Whether some cluster places names by carbon_ch (an MD5 per line, worth computing ahead: carbon_ch_ahead.hpp).
    bool hashes_carbon_ch() const;

    // Runtime membership (putdest ... to CLUSTER, deldest ... from CLUSTER; route/cluster_membership.hpp).
    // The cluster named `name`, or -1.
    long find_cluster(std::string_view name) const;
    // A cluster's members as host:port[:instance] texts, in placement order: as the rules file lists them,
    // and as they are now.
    const std::vector<std::string>& cluster_file_members(size_t cluster) const;
    const std::vector<std::string>& cluster_member_texts(size_t cluster) const;
    // Gives a cluster these members, in this order: a hash cluster's ring is built as carbon-c-relay builds it
    // from a file that lists them so. False with `error` (and nothing changed) for an empty list, a member that
    // is not host:port[:instance], or a ring that cannot be built. A new address becomes a new slot.
    bool set_cluster_members(size_t cluster, const std::vector<std::string>& members, std::string& error);
    // Whether some cluster lists `slot` now (a member removed from every cluster keeps its slot, unused).
    bool slot_in_cluster(size_t slot) const;

    // The aggregate rules, in file order, as parsed (index = RouteResult::Feed::aggregate).
    size_t aggregate_count() const { return aggregates_.size(); }
    const rules::Aggregate& aggregate(size_t index) const { return aggregates_[index]; }
    // rules::aggregate_fingerprint of aggregate `index`: what the aggregator's queue records name it by.
    uint64_t aggregate_fingerprint(size_t index) const { return aggregate_fingerprints_[index]; }
    // Writes compute `compute`'s output name for an input `name` that aggregate `index` took (its expression's
    // groups fill the back-references) into out[0..cap); false when `name` does not match or it does not fit.
    bool aggregate_output_name(size_t index, size_t compute, std::string_view name, char* out, size_t cap,
                               size_t& used) const;
    // The same for every compute of the rule at once (one match of the expression): names[c] views into
    // out[0..cap). False when `name` does not match or the names do not fit.
    bool aggregate_output_names(size_t index, std::string_view name, char* out, size_t cap,
                                std::string_view* names) const;
    // Where an aggregate's result goes: with `send to`, that rule's clusters' slots for `name` (sends only,
    // names[0] = name); without, the whole table as for a metric from outside (route()).
    void route_aggregate_result(size_t index, std::string_view name, const bool* up, RouteResult& result) const;
    bool rule_validate_drops(size_t rule) const;  // validate ... else drop (else log)

private:
    RoutingTable();
    struct Slot {
        std::string address;  // host:port, the identity of a destination
        std::optional<std::string> instance;
        std::string text;  // [scheme://]host:port[:instance]
    };
    std::vector<Slot> slots_;
    std::vector<std::unique_ptr<CompiledCluster>> clusters_;
    std::vector<std::unique_ptr<CompiledRule>> rules_;
    std::vector<rules::Aggregate> aggregates_;
    std::vector<uint64_t> aggregate_fingerprints_;
    std::vector<const CompiledRule*> aggregate_rules_;  // aggregates_[i]'s compiled rule

    size_t slot_for(const rules::Member& member);
};

// Reads, parses and compiles a rules file (and its includes): what --check-config and a start do with --rules.
// Returns nullptr with `error` = "file:line: reason"; appends the parser's warnings to `warnings` if given, and
// the files read to `sources` if given (rules::parse_rules_file).
std::unique_ptr<RoutingTable> compile_rules_file(const std::string& path, std::string& error,
                                                 std::vector<std::string>* warnings = nullptr,
                                                 std::string* sources = nullptr);

// Translates a POSIX extended regular expression (as regcomp(REG_EXTENDED) reads it) into RE2 syntax.
// Fails with a reason on what RE2 cannot run (back-references inside a pattern).
bool posix_ere_to_re2(std::string_view ere, std::string& re2, std::string& error);

// Expands a carbon-c-relay replacement (\N, \_N lower, \^N upper, \.N dots to underscores) with `groups`
// (groups[0] is the whole match); appends to out[used..cap). Returns false when it does not fit.
bool expand_replacement(std::string_view replacement, const std::string_view* groups, size_t group_count, char* out,
                        size_t cap, size_t& used);

}  // namespace polymur::route
