#include "route/lookup_command.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include "common/man_options.hpp"
#include "common/option_error.hpp"
#include "route/destination.hpp"
#include "route/hash_ring.hpp"
#include "route/routing_table.hpp"

namespace polymur::route {

namespace {

constexpr int kUsageError = 2;

int fail(const std::string& message) {
    std::cerr << "polymur lookup: " << message << "\n";
    return kUsageError;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

// carbon's plaintext parser does line.strip().split(): the name is the first field.
std::string_view metric_name(std::string_view line) {
    size_t begin = 0;
    while (begin < line.size() && is_space(line[begin])) ++begin;
    size_t end = begin;
    while (end < line.size() && !is_space(line[end])) ++end;
    return line.substr(begin, end - begin);
}

// Collects output and writes it in large blocks: the tool is meant for millions of names.
class OutputBuffer {
public:
    OutputBuffer() { data_.reserve(kFlushAt + 65536); }
    void append(std::string_view text) {
        data_.append(text);
        if (data_.size() >= kFlushAt) flush();
    }
    void append(char c) { data_.push_back(c); }
    bool flush() {
        if (!data_.empty() && std::fwrite(data_.data(), 1, data_.size(), stdout) != data_.size()) ok_ = false;
        data_.clear();
        return ok_ && std::fflush(stdout) == 0;
    }

private:
    static constexpr size_t kFlushAt = 1 << 20;
    std::string data_;
    bool ok_ = true;
};

}  // namespace

int run_lookup(int argc, char** argv) {
    namespace po = boost::program_options;
    std::string distribution, hash_type_text, hash_compat_text, destinations_text, rules_file;
    long replication = 1;
    bool diverse = true;

    po::options_description options(
        "Usage: polymur lookup --destinations HOST:PORT[:INSTANCE],... [options] < names\n"
        "       polymur lookup --rules FILE < names\n"
        "Prints name<TAB>destination[|destination...] for every metric name (or plaintext line) on stdin.\n"
        "Options");
    options.add_options()("help", "show this help")(
        "distribution", po::value(&distribution)->default_value("hash-route"), "hash-route or broadcast")(
        "hash-type", po::value(&hash_type_text)->default_value("carbon_ch"), "carbon_ch, fnv1a_ch or jump_fnv1a_ch")(
        "hash-compat", po::value(&hash_compat_text)->default_value("graphite"),
        "graphite or carbon-c-relay: whose placement carbon_ch and fnv1a_ch follow")(
        "destinations", po::value(&destinations_text), "comma-separated host:port[:instance] or [v6]:port[:instance]")(
        "rules", po::value(&rules_file),
        "a carbon-c-relay rules file, as the relay's --rules: every copy's destination "
        "(the rewritten name is not shown; 'polymur test -f FILE' traces the rules)")(
        "replication-factor", po::value(&replication)->default_value(1), "copies per metric (REPLICATION_FACTOR)")(
        "diverse-replicas", po::value(&diverse)->default_value(true, "true"),
        "true/false: replicas on distinct hosts (DIVERSE_REPLICAS); not used by jump_fnv1a_ch");

    if (write_man_options_if_asked(argc, argv, options, std::cout)) return 0;
    po::variables_map vm;
    try {
        const auto style = po::command_line_style::default_style | po::command_line_style::allow_long_disguise;
        po::store(po::command_line_parser(argc, argv).options(options).style(style).run(), vm);
        po::notify(vm);
    } catch (po::error& e) {
        return fail(option_error_text(e) + " (see --help)");
    }
    if (vm.count("help")) {
        std::cout << options << "\n";
        return 0;
    }

    const bool broadcast = distribution == "broadcast";
    if (!broadcast && distribution != "hash-route")
        return fail("unknown distribution '" + distribution + "' (expected hash-route or broadcast)");
    HashType hash_type;
    if (!parse_hash_type(hash_type_text, hash_type))
        return fail("unknown hash type '" + hash_type_text + "' (expected carbon_ch, fnv1a_ch or jump_fnv1a_ch)");
    HashCompat hash_compat;
    if (!parse_hash_compat(hash_compat_text, hash_compat))
        return fail("unknown hash compatibility '" + hash_compat_text + "' (expected graphite or carbon-c-relay)");
    if (replication < 1 || replication > static_cast<long>(kMaxReplication))
        return fail("--replication-factor must be between 1 and " + std::to_string(kMaxReplication));
    std::unique_ptr<RoutingTable> table;
    if (!rules_file.empty()) {
        if (vm.count("destinations")) return fail("--rules and --destinations: the rules file names the destinations");
        std::string error;
        table = compile_rules_file(rules_file, error);
        if (!table) return fail(error);
    }
    if (!table && (!vm.count("destinations") || destinations_text.empty())) return fail("--destinations is required");

    std::vector<Destination> destinations;
    for (size_t begin = 0; !table;) {
        const size_t comma = std::min(destinations_text.find(',', begin), destinations_text.size());
        Destination destination;
        std::string error;
        if (comma == begin) return fail("empty entry in --destinations '" + destinations_text + "'");
        if (!parse_destination(std::string_view(destinations_text).substr(begin, comma - begin), destination, error))
            return fail(error);
        destinations.push_back(std::move(destination));
        if (comma == destinations_text.size()) break;
        begin = comma + 1;
    }

    if (!table) {
        // The relay's implicit table: one cluster over the destinations and `match *`.
        std::string error;
        table = RoutingTable::build_implicit(broadcast, hash_type, destinations, static_cast<size_t>(replication),
                                             diverse, error, hash_compat);
        if (!table) return fail(error);
        table->keep_ring_repeats();
    }

    OutputBuffer output;
    auto result = std::make_unique<RouteResult>();
    const auto answer = [&](std::string_view line) {
        const std::string_view name = metric_name(line);
        if (name.empty()) return;
        output.append(name);
        output.append('\t');
        table->route(name, {}, nullptr, *result);
        for (size_t k = 0; k < result->send_count; ++k) {
            if (k > 0) output.append('|');
            output.append(table->slot_text(result->sends[k].slot));
        }
        output.append('\n');
    };

    // Lines are answered straight out of the read buffer; only a line split across two reads
    // is copied.
    std::vector<char> buffer(1 << 20);
    std::string partial;
    size_t got;
    while ((got = std::fread(buffer.data(), 1, buffer.size(), stdin)) > 0) {
        const char* p = buffer.data();
        const char* const end = p + got;
        while (const char* newline = static_cast<const char*>(std::memchr(p, '\n', end - p))) {
            if (partial.empty()) {
                answer(std::string_view(p, newline - p));
            } else {
                partial.append(p, newline);
                answer(partial);
                partial.clear();
            }
            p = newline + 1;
        }
        partial.append(p, end);
    }
    if (!partial.empty()) answer(partial);
    if (std::ferror(stdin)) {
        output.flush();
        std::cerr << "polymur lookup: error reading stdin\n";
        return 1;
    }
    if (!output.flush()) {
        std::cerr << "polymur lookup: error writing stdout\n";
        return 1;
    }
    return 0;
}

}  // namespace polymur::route
