// Reads carbon-c-relay 3.7.3's configuration language (clusters, match, rewrite, aggregate, listen,
// statistics, include) into plain structures. Parsing only: routing_table.hpp compiles the result.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "route/destination.hpp"

namespace polymur::route::rules {

struct Where {
    std::string file;
    int line = 0;
};

enum class ClusterType { forward, any_of, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch };
const char* cluster_type_name(ClusterType type);

struct Member {
    std::string host;  // without brackets for IPv6
    uint16_t port = 2003;
    std::optional<std::string> instance;
    Wire wire;                    // `transport gzip|lz4 [ssl]`, `transport plain ssl`
    std::string address() const;  // host:port, IPv6 bracketed
    // The destination polymur registers for it: [scheme://]host:port[:instance] (route/destination.hpp).
    std::string destination_text() const;
    Where where;
};

struct Cluster {
    std::string name;
    ClusterType type = ClusterType::forward;
    bool useall = false;
    int replication = 1;
    bool dynamic = false;
    std::vector<Member> members;
    Where where;
};

enum class ValidateAction { log, drop };

struct Match {
    std::vector<std::string> expressions;  // "*" is match-all
    std::optional<std::string> validate;
    ValidateAction validate_action = ValidateAction::drop;
    std::vector<std::string> clusters;  // empty with blackhole or validate-only
    bool blackhole = false;
    bool stop = false;  // as written; blackhole implies stop
    Where where;
};

struct Rewrite {
    std::string expression;
    std::string replacement;
    Where where;
};

enum class AggregateFunction { sum, count, max, min, average, median, percentile, variance, stddev };
const char* aggregate_function_name(AggregateFunction function);  // "sum" ... "stddev" ("percentile" without N)

enum class BucketTimestamp { start, middle, end };

// `compute FUNCTION write to METRIC`: METRIC may hold back-references (\1, \_1, \^1, \.1) to the expression.
struct Compute {
    AggregateFunction function = AggregateFunction::sum;
    int percentile = 0;  // 1..99 with AggregateFunction::percentile
    std::string metric;
    Where where;
    std::string label() const;  // "sum", "percentile95": carbon-c-relay's name for it
};

inline constexpr size_t kMaxAggregateComputes = 64;

struct Aggregate {
    std::vector<std::string> expressions;
    int interval = 0;  // every N seconds, > 0
    int expire = 0;    // expire after M seconds, > interval
    BucketTimestamp timestamp = BucketTimestamp::end;
    std::vector<Compute> computes;
    std::vector<std::string> clusters;  // send to; empty: the results go back through the rules
    bool stop = false;                  // only with send to, as carbon-c-relay's grammar
    Where where;
};

// The identity of an aggregate rule's buckets: a 64-bit hash of its definition as parsed (expressions, interval,
// expiry, timestamp position, each compute's function and written name, `send to` clusters, `stop`), in order.
// The same rule gives the same number in every run and every polymur, whatever its place in the file, its layout
// or the aliases it uses (`avg`, `average`); any change to what it computes or where it sends gives another.
// The aggregator uses it to apply queued points only to the rule that queued them (docs/AGGREGATION.md).
// `occurrence`: how many rules of the file before this one have the same definition (two identical rules are
// two rules, each with its own buckets).
uint64_t aggregate_fingerprint(const Aggregate& aggregate, size_t occurrence = 0);

struct Rule {
    enum class Kind { match, rewrite, aggregate } kind;
    size_t index;  // into matches, rewrites or aggregates
};

struct ListenAddress {
    std::string address;  // "[interface:]port", "port" or a unix socket path
    std::string proto;    // tcp, udp or unix
};

struct Listen {
    std::string transport = "plain";
    bool ssl = false;
    std::string pemcert;
    std::vector<ListenAddress> addresses;
    Where where;
};

struct Statistics {
    int submit_every = 60;
    bool reset_counters = false;
    std::optional<std::string> prefix;
    std::vector<std::string> send_to;
    bool stop = false;
    bool deprecated_form = false;  // `send statistics to ...;`
    Where where;
};

struct RulesConfig {
    std::vector<Cluster> clusters;
    std::vector<Match> matches;
    std::vector<Rewrite> rewrites;
    std::vector<Aggregate> aggregates;
    std::vector<Rule> rules;  // matches, rewrites and aggregates in file order
    std::vector<Listen> listens;
    std::optional<Statistics> statistics;
    std::vector<std::string> warnings;  // "file:line: ..." for accepted clauses polymur ignores

    const Cluster* find_cluster(std::string_view name) const;
};

// Returns the files an `include` names (a path or a glob), in the order to read them, or sets `error`.
using IncludeResolver =
    std::function<bool(const std::string& pattern, std::vector<std::string>& files, std::string& error)>;
// Reads a whole file or sets `error`.
using FileReader = std::function<bool(const std::string& path, std::string& text, std::string& error)>;

// Parses `text` (named `file` in messages). On failure returns false with `error` = "file:line: reason".
bool parse_rules_text(std::string_view text, const std::string& file, RulesConfig& out, std::string& error,
                      const IncludeResolver& resolve = {}, const FileReader& read = {});

// Reads `path` and everything it includes (globs expanded in sorted order, relative to the working directory
// as carbon-c-relay resolves them). With `sources`, also appends the name and the text of every file read, in
// the order read: what a reload compares to tell whether the rules changed on disk.
bool parse_rules_file(const std::string& path, RulesConfig& out, std::string& error, std::string* sources = nullptr);

}  // namespace polymur::route::rules
