#include "admin/command.hpp"

#include "common/guard.hpp"

#include <cstdio>
#include <ctime>

namespace polymur::admin {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view next_word(std::string_view& rest) {
    size_t b = 0;
    while (b < rest.size() && is_space(rest[b])) ++b;
    size_t e = b;
    while (e < rest.size() && !is_space(rest[e])) ++e;
    std::string_view word = rest.substr(b, e - b);
    rest.remove_prefix(e);
    return word;
}

std::string printable(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    if (text.size() > 64) out += "...";
    return out;
}

}  // namespace

Command parse_command(std::string_view line) {
    Command command;
    std::string_view rest = line;
    std::string_view word = next_word(rest);
    if (word.empty()) return command;
    command.name = std::string(word);
    // A "token=<secret>" word may stand anywhere after the command; it is not an argument.
    // putdest DEST to CLUSTER and deldest DEST from CLUSTER name a cluster (--rules).
    const std::string_view cluster_word = word == "putdest" ? "to" : word == "deldest" ? "from" : "";
    bool want_cluster = false;
    for (std::string_view next = next_word(rest); !next.empty(); next = next_word(rest)) {
        if (next.substr(0, 6) == "token=") command.token = std::string(next.substr(6));
        else if (want_cluster) {
            command.cluster = std::string(next);
            want_cluster = false;
        } else if (command.argument.empty()) command.argument = std::string(next);
        else if (!cluster_word.empty() && command.cluster.empty() && (next == "to" || next == "from")) {
            if (next != cluster_word)
                command.error = std::string(word) + " takes '" + std::string(cluster_word) + " CLUSTER', not '" +
                    std::string(next) + "'";
            want_cluster = true;
        } else command.extra_arguments = true;
    }
    if (want_cluster && command.error.empty())
        command.error = std::string(word) + " " + std::string(cluster_word) + " needs a cluster name";
    if (word == "getdest") command.kind = CommandKind::getdest;
    else if (word == "putdest") command.kind = CommandKind::putdest;
    else if (word == "deldest") command.kind = CommandKind::deldest;
    else if (word == "stats") command.kind = CommandKind::stats;
    else if (word == "help") command.kind = CommandKind::help;
    else command.kind = CommandKind::unknown;
    return command;
}

std::string Backend::putdest_to(const std::string&, const std::string& cluster) {
    return "error: putdest ... to " + printable(cluster) +
        ": clusters come from a rules file (--rules); this relay has one implicit cluster: putdest <destination>\n";
}

std::string Backend::deldest_from(const std::string&, const std::string& cluster) {
    return "error: deldest ... from " + printable(cluster) +
        ": clusters come from a rules file (--rules); this relay has one implicit cluster: deldest <destination>\n";
}

std::string help_text() {
    return "commands: getdest | putdest <host:port[:instance]> [to <cluster>] [token=<secret>] | deldest "
           "<host:port[:instance]> [from <cluster>] [token=<secret>] | stats | help (one command per connection, "
           "e.g. echo getdest | nc localhost 2030; 'to'/'from' name a cluster of the --rules file)\n";
}

std::string execute(std::string_view line, Backend& backend, const Caller& caller, std::string* refused) {
    // Whatever goes wrong inside a command is this client's answer, never the relay's end.
    std::string reply;
    if (guarded("admin: command", [&] { reply = execute_command(line, backend, caller, refused); })) return reply;
    return "error: internal error while running the command (logged); polymur is still running\n";
}

std::string execute_command(std::string_view line, Backend& backend, const Caller& caller, std::string* refused) {
    Command command = parse_command(line);
    auto refuse = [&](const std::string& why) {
        if (refused) *refused = why;
        return "error: " + command.name + " refused: " + why + "\n";
    };
    switch (command.kind) {
        case CommandKind::empty: return "error: empty command; try 'help'\n";
        case CommandKind::unknown: return "error: not a command: " + printable(command.name) + "; try 'help'\n";
        case CommandKind::help: return help_text();
        case CommandKind::getdest: return backend.getdest();
        case CommandKind::stats: return backend.stats();
        case CommandKind::putdest:
        case CommandKind::deldest:
            if (command.argument.empty())
                return "error: " + command.name + " needs a destination (host:port[:instance])\n";
            if (!command.error.empty()) return "error: " + printable(command.error) + "\n";
            if (command.extra_arguments) return "error: " + command.name + " takes one destination\n";
            if (!command.token.empty()) {
                if (!caller.policy || caller.policy->token.empty())
                    return refuse("no --admin-token-file is configured");
                if (!caller.policy->token_matches(command.token)) return refuse("wrong token");
            } else if (!caller.may_change) {
                return refuse(caller.why_not);
            }
            if (!command.cluster.empty())
                return command.kind == CommandKind::putdest ? backend.putdest_to(command.argument, command.cluster)
                                                            : backend.deldest_from(command.argument, command.cluster);
            return command.kind == CommandKind::putdest ? backend.putdest(command.argument)
                                                        : backend.deldest(command.argument);
    }
    return "error: internal\n";
}

std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

std::string rfc3339_nano(int64_t unix_ns) {
    time_t seconds = static_cast<time_t>(unix_ns / 1000000000);
    long nanos = static_cast<long>(unix_ns % 1000000000);
    if (nanos < 0) {  // floor, not truncation, before the epoch
        nanos += 1000000000;
        --seconds;
    }
    struct tm tm = {};
    gmtime_r(&seconds, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nanos) {
        char frac[16];
        std::snprintf(frac, sizeof frac, ".%09ld", nanos);
        std::string f(frac);
        while (f.back() == '0') f.pop_back();  // Go trims trailing zeros
        return std::string(buf, n) + f + "Z";
    }
    return std::string(buf, n) + "Z";
}

}  // namespace polymur::admin
