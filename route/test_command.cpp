#include "route/test_command.hpp"

#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "route/routing_table.hpp"
#include "route/rules_parser.hpp"

namespace polymur::route {

namespace {

constexpr int kUsageError = 2;

// Prints each step in the layout of `carbon-c-relay -t` (without its optimiser's annotations).
class PrintTrace : public RouteTrace {
public:
    PrintTrace(const RoutingTable& table, std::string& out) : table_(table), out_(out) {}

    void rewrote(size_t, std::string_view expression, std::string_view before, std::string_view replacement,
                 std::string_view after) override {
        out_ += "rewrite\n    ";
        out_ += expression;
        out_ += " -> ";
        out_ += before;
        out_ += "\n    into(";
        out_ += replacement;
        out_ += ") -> ";
        out_ += after;
        out_ += "\n";
    }
    void matched(size_t, std::string_view expression, std::string_view name) override {
        out_ += "match\n    ";
        out_ += expression;
        out_ += " -> ";
        out_ += name;
        out_ += "\n";
    }
    void validated(size_t rule, std::string_view expression, std::string_view data, bool passed) override {
        out_ += "    validate\n        ";
        out_ += expression;
        out_ += " -> ";
        out_ += data;
        out_ += "\n";
        if (passed) {
            out_ += "        match\n";
        } else {
            out_ += "        fail -> ";
            out_ += table_.rule_validate_drops(rule) ? "drop\n" : "log\n";
        }
    }
    void cluster(size_t, std::string_view type, std::string_view name, const uint16_t* slots, size_t count) override {
        out_ += "    ";
        out_ += type;
        out_ += "(";
        out_ += name;
        out_ += ")\n";
        for (size_t k = 0; k < count; ++k) {
            out_ += "        ";
            out_ += table_.slot_address(slots[k]);
            out_ += "\n";
        }
    }
    void aggregated(size_t, size_t aggregate, std::string_view expression, std::string_view name,
                    bool literal) override {
        out_ += "aggregation\n    ";
        out_ += expression;
        out_ += " -> ";
        out_ += name;
        out_ += "\n";
        const rules::Aggregate& rule = table_.aggregate(aggregate);
        char written[RouteResult::kNameBytes];
        for (size_t c = 0; c < rule.computes.size(); ++c) {
            size_t used = 0;
            if (!table_.aggregate_output_name(aggregate, c, name, written, sizeof written, used)) used = 0;
            out_ += "    ";
            out_ += rule.computes[c].label();
            if (literal) {  // carbon-c-relay -t: "median -> d.median" for a rule of plain strings
                out_ += " -> ";
                out_.append(written, used);
                out_ += "\n";
                continue;
            }
            out_ += "(";
            out_ += rule.computes[c].metric;
            out_ += ") -> ";
            out_.append(written, used);
            out_ += " \n";  // carbon-c-relay -t ends these lines with a space
        }
    }
    void blackholed(size_t) override { out_ += "    blackholed\n"; }
    void stopped(size_t) override { out_ += "    stop\n"; }
    void nothing_matched(std::string_view name) override {
        out_ += "nothing matched ";
        out_ += name;
        out_ += "\n";
    }

private:
    const RoutingTable& table_;
    std::string& out_;
};

int usage() {
    std::cerr << "usage: polymur test -f RULES-FILE < names\n"
                 "Reads metric names (or plaintext lines) on stdin and prints, for each, the rewrites applied, the\n"
                 "rules that matched, the aggregates it feeds (with the metrics they write) and the destinations,\n"
                 "like carbon-c-relay -t -f RULES-FILE.\n";
    return kUsageError;
}

}  // namespace

int run_test(int argc, char** argv) {
    std::string file;
    for (int i = 1; i < argc; ++i) {
        if ((std::strcmp(argv[i], "-f") == 0 || std::strcmp(argv[i], "--rules") == 0) && i + 1 < argc) {
            file = argv[++i];
        } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else {
            std::cerr << "polymur test: unexpected argument '" << argv[i] << "'\n";
            return usage();
        }
    }
    if (file.empty()) return usage();

    rules::RulesConfig config;
    std::string error;
    if (!rules::parse_rules_file(file, config, error)) {
        std::cerr << "polymur test: " << error << "\n";
        return 1;
    }
    for (const std::string& warning : config.warnings) std::cerr << "polymur test: warning: " << warning << "\n";
    std::unique_ptr<RoutingTable> table = RoutingTable::build(config, error);
    if (!table) {
        std::cerr << "polymur test: " << error << "\n";
        return 1;
    }

    auto result = std::make_unique<RouteResult>();
    std::string out;
    PrintTrace trace(*table, out);
    std::string line;
    while (std::getline(std::cin, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        // carbon-c-relay -t: the name runs to the first space; the data (for validate) is what follows it.
        size_t space = line.find(' ');
        std::string_view name = std::string_view(line).substr(0, space);
        std::string_view data;
        if (space != std::string::npos) {
            size_t begin = line.find_first_not_of(' ', space);
            if (begin != std::string::npos) data = std::string_view(line).substr(begin);
        }
        table->route(name, data, nullptr, *result, &trace);
        if (out.size() > (1 << 20)) {
            std::cout << out;
            out.clear();
        }
    }
    std::cout << out << std::flush;
    return std::cout ? 0 : 1;
}

}  // namespace polymur::route
