#include "route/routing_table.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <cstring>

namespace polymur::route {

namespace {

uint32_t fnv1a_32(std::string_view text) {
    uint32_t hash = 2166136261u;
    for (unsigned char c : text) hash = (hash ^ c) * 16777619u;
    return hash;
}

constexpr size_t kMaxGroups = 16;  // capture groups a rewrite can refer to (\0 .. \15)

// How one expression is tested: carbon-c-relay's own shortcuts (a `^literal` prefix, a plain literal)
// give the same answers as the regular expression, without running it.
class Expression {
public:
    bool compile(const std::string& text, bool need_groups, std::string& error) {
        text_ = text;
        if (text == "*") {
            kind_ = Kind::all;
            return true;
        }
        if (!need_groups) {
            std::string_view body = text;
            bool anchored = !body.empty() && body[0] == '^';
            if (anchored) body.remove_prefix(1);
            std::string literal;
            if (plain_literal(body, literal)) {
                literal_ = literal;
                kind_ = anchored ? Kind::prefix : Kind::contains;
                return true;
            }
        }
        std::string translated;
        if (!posix_ere_to_re2(text, translated, error)) return false;
        RE2::Options options;
        options.set_posix_syntax(true);
        options.set_longest_match(true);  // POSIX: leftmost-longest
        options.set_perl_classes(true);   // glibc's \w \W \s \S
        options.set_word_boundary(true);  // glibc's \b \B
        options.set_log_errors(false);
        options.set_max_mem(64 << 20);
        regex_ = std::make_unique<RE2>(translated, options);
        if (!regex_->ok()) {
            error = "bad regular expression '" + text + "': " + regex_->error();
            return false;
        }
        kind_ = Kind::regex;
        std::string_view body = text;
        anchored_ = !body.empty() && body[0] == '^';
        if (anchored_) body.remove_prefix(1);
        required_ = required_literal(body);
        suffix_ = required_suffix(body);
        return true;
    }

    bool matches(std::string_view name) const {
        switch (kind_) {
            case Kind::all: return true;
            case Kind::prefix:
                return name.size() >= literal_.size() &&
                    std::memcmp(name.data(), literal_.data(), literal_.size()) == 0;
            case Kind::contains: return literal_.empty() || name.find(literal_) != std::string_view::npos;
            case Kind::regex:
                if (!passes_prefilter(name)) return false;
                return regex_->Match(re2::StringPiece(name.data(), name.size()), 0, name.size(), RE2::UNANCHORED,
                                     nullptr, 0);
        }
        return false;
    }

    // groups[0..count) = whole match and captures; unmatched groups are empty. Returns false on no match.
    bool match_groups(std::string_view name, std::string_view* groups, size_t& count) const {
        if (kind_ != Kind::regex) {  // `*` and plain strings: the part matched, no groups
            if (!matches(name)) return false;
            size_t at = kind_ == Kind::contains ? name.find(literal_) : 0;
            groups[0] = kind_ == Kind::all ? name : name.substr(at == std::string_view::npos ? 0 : at, literal_.size());
            count = 1;
            return true;
        }
        if (!passes_prefilter(name)) return false;
        re2::StringPiece pieces[kMaxGroups];
        int n = std::min<int>(int(kMaxGroups), regex_->NumberOfCapturingGroups() + 1);
        if (!regex_->Match(re2::StringPiece(name.data(), name.size()), 0, name.size(), RE2::UNANCHORED, pieces, n))
            return false;
        for (int i = 0; i < n; ++i)
            groups[i] = pieces[i].data() ? std::string_view(pieces[i].data(), pieces[i].size()) : std::string_view();
        count = size_t(n);
        return true;
    }

    const std::string& text() const { return text_; }
    bool literal() const { return kind_ == Kind::prefix || kind_ == Kind::contains; }
    bool matches_everything() const { return kind_ == Kind::all; }

private:
    enum class Kind { all, prefix, contains, regex } kind_ = Kind::all;
    std::string text_;
    std::string literal_;
    std::unique_ptr<RE2> regex_;
    bool anchored_ = false;
    std::string required_;  // a literal every match starts with (at the start of the name when anchored_)
    std::string suffix_;    // a literal every matching name ends with (the pattern ends with it and `$`)

    bool passes_prefilter(std::string_view name) const {
        if (!suffix_.empty() &&
            (name.size() < suffix_.size() ||
             std::memcmp(name.data() + name.size() - suffix_.size(), suffix_.data(), suffix_.size()) != 0))
            return false;
        if (required_.empty()) return true;
        if (anchored_)
            return name.size() >= required_.size() && std::memcmp(name.data(), required_.data(), required_.size()) == 0;
        return name.find(required_) != std::string_view::npos;
    }

    // The literal characters a pattern begins with that every match must contain, in order: "" when there is a
    // top-level alternation or the pattern starts with an operator.
    static std::string required_literal(std::string_view body) {
        int depth = 0;
        bool bracket = false;
        for (size_t i = 0; i < body.size(); ++i) {
            char c = body[i];
            if (bracket) {
                if (c == ']' && i > 0 && body[i - 1] != '[') bracket = false;
                continue;
            }
            if (c == '\\') {
                ++i;
            } else if (c == '[') {
                bracket = true;
                if (i + 1 < body.size() && body[i + 1] == '^') ++i;
                if (i + 1 < body.size() && body[i + 1] == ']') ++i;
            } else if (c == '(') {
                ++depth;
            } else if (c == ')') {
                --depth;
            } else if (c == '|' && depth == 0) {
                return "";
            }
        }
        std::string literal;
        for (size_t i = 0; i < body.size(); ++i) {
            char c = body[i];
            char lit;
            size_t width = 1;
            if (c == '\\') {
                if (i + 1 >= body.size()) break;
                char next = body[i + 1];
                if (!std::strchr(".[]()*+?{}|^$\\", next)) break;  // \w, \b ...: a class, not a literal
                lit = next;
                width = 2;
            } else if (std::strchr(".[]()*+?{}|^$", c)) {
                break;
            } else {
                lit = c;
            }
            char after = i + width < body.size() ? body[i + width] : '\0';
            if (after == '*' || after == '?' || after == '{') break;  // this character is optional
            literal.push_back(lit);
            if (after == '+') break;
            i += width - 1;
        }
        return literal;
    }

    // The literal characters a pattern ends with, just before its closing `$`, that every matching name therefore
    // ends with: "" when the pattern does not end with `$`, has a top-level alternation, or ends with an operator.
    // (Rule sets that differ only at the end, such as ^sys\.(...)\.m7$, then run one expression per name, not all.)
    static std::string required_suffix(std::string_view body) {
        std::string run;  // the literals since the last operator, at depth 0
        int depth = 0;
        for (size_t i = 0; i < body.size(); ++i) {
            char c = body[i];
            if (c == '\\') {
                if (i + 1 >= body.size()) return "";
                char next = body[i + 1];
                ++i;
                if (!std::strchr(".[]()*+?{}|^$\\", next)) {  // \w, \b ...: a class, not a literal
                    run.clear();
                    continue;
                }
                if (depth == 0) run.push_back(next);
                continue;
            }
            if (c == '[') {
                if (i + 1 < body.size() && body[i + 1] == '^') ++i;
                if (i + 1 < body.size() && body[i + 1] == ']') ++i;
                while (++i < body.size() && body[i] != ']') {}
                run.clear();
                continue;
            }
            if (c == '$') {
                if (i + 1 == body.size() && depth == 0) return run;
                run.clear();
                continue;
            }
            if (c == '|' && depth == 0) return "";
            if (c == '(') ++depth;
            if (c == ')') --depth;
            if (std::strchr(".()*+?{}|^", c)) {  // an operator: what came before is no longer at the end for sure
                if (c == '{')
                    while (i + 1 < body.size() && body[i] != '}') ++i;
                run.clear();
                continue;
            }
            if (depth == 0) run.push_back(c);
        }
        return "";
    }

    // A body with no ERE operators (an escaped character counts as itself).
    static bool plain_literal(std::string_view body, std::string& literal) {
        for (size_t i = 0; i < body.size(); ++i) {
            char c = body[i];
            if (c == '\\') {
                if (i + 1 >= body.size()) return false;
                char next = body[i + 1];
                if (!std::strchr(".[]()*+?{}|^$\\", next)) return false;  // \w, \b, \1 ...: not literal
                literal.push_back(next);
                ++i;
            } else if (std::strchr(".[]()*+?{}|^$", c)) {
                return false;
            } else {
                literal.push_back(c);
            }
        }
        return true;
    }
};

}  // namespace

bool posix_ere_to_re2(std::string_view ere, std::string& out, std::string& error) {
    out.clear();
    for (size_t i = 0; i < ere.size(); ++i) {
        char c = ere[i];
        if (c == '[') {
            // A bracket expression: a backslash in it is an ordinary character in POSIX.
            size_t j = i + 1;
            out.push_back('[');
            if (j < ere.size() && ere[j] == '^') out.push_back(ere[j++]);
            if (j < ere.size() && ere[j] == ']') {
                out += "\\]";
                ++j;
            }
            bool closed = false;
            while (j < ere.size()) {
                char b = ere[j];
                if (b == ']') {
                    closed = true;
                    break;
                }
                if (b == '[' && j + 1 < ere.size() && (ere[j + 1] == ':' || ere[j + 1] == '.' || ere[j + 1] == '=')) {
                    char kind = ere[j + 1];
                    size_t end = ere.find(std::string {kind, ']'}, j + 2);
                    if (end == std::string_view::npos) break;
                    out.append(ere.substr(j, end + 2 - j));
                    j = end + 2;
                    continue;
                }
                if (b == '\\') out += "\\\\";
                else out.push_back(b);
                ++j;
            }
            if (!closed) {
                error = "bad regular expression '" + std::string(ere) + "': unmatched [";
                return false;
            }
            out.push_back(']');
            i = j;
        } else if (c == '\\') {
            if (i + 1 >= ere.size()) {
                error = "bad regular expression '" + std::string(ere) + "': trailing backslash";
                return false;
            }
            char next = ere[++i];
            if (next >= '1' && next <= '9') {
                error = "regular expression '" + std::string(ere) +
                    "': back-references inside a pattern are not supported by polymur (RE2)";
                return false;
            }
            if (next == '<' || next == '>' || next == '`' || next == '\'') {
                error =
                    "regular expression '" + std::string(ere) + "': \\" + next + " is not supported by polymur (RE2)";
                return false;
            }
            if (std::strchr("wWsSbB", next)) {
                out.push_back('\\');
                out.push_back(next);
            } else if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') ||
                       next == '_') {
                out.push_back(next);  // glibc: an escaped ordinary character is that character
            } else {
                out.push_back('\\');
                out.push_back(next);
            }
        } else {
            out.push_back(c);
        }
    }
    return true;
}

bool expand_replacement(std::string_view replacement, const std::string_view* groups, size_t group_count, char* out,
                        size_t cap, size_t& used) {
    auto put = [&](char c) {
        if (used >= cap) return false;
        out[used++] = c;
        return true;
    };
    size_t i = 0;
    while (i < replacement.size()) {
        char c = replacement[i++];
        if (c != '\\') {
            if (!put(c)) return false;
            continue;
        }
        // After a backslash: more backslashes are skipped; then an optional case mark (_ lower, ^ upper) right
        // after them, then any number of '.' (dots become underscores), then a group number. Anything else
        // is written as itself and ends the escape (carbon-c-relay 3.7.3's behaviour, as run).
        while (i < replacement.size() && replacement[i] == '\\') ++i;
        int change_case = 0;
        bool dots = false;
        if (i < replacement.size() && (replacement[i] == '_' || replacement[i] == '^'))
            change_case = replacement[i++] == '_' ? -1 : 1;
        while (i < replacement.size() && replacement[i] == '.') {
            dots = true;
            ++i;
        }
        if (i >= replacement.size()) break;
        char d = replacement[i];
        if (d < '0' || d > '9') {
            if (!put(d)) return false;
            ++i;
            continue;
        }
        size_t group = 0;
        while (i < replacement.size() && replacement[i] >= '0' && replacement[i] <= '9') {
            group = std::min<size_t>(group * 10 + size_t(replacement[i] - '0'), 1000);
            ++i;
        }
        if (group == 0 || group >= group_count) continue;  // \0 and groups the expression lacks are empty
        for (char g : groups[group]) {
            if (dots && g == '.') g = '_';
            if (change_case < 0 && g >= 'A' && g <= 'Z') g = char(g - 'A' + 'a');
            if (change_case > 0 && g >= 'a' && g <= 'z') g = char(g - 'a' + 'A');
            if (!put(g)) return false;
        }
    }
    return true;
}

class CompiledCluster {
public:
    std::string name;
    rules::ClusterType type = rules::ClusterType::forward;
    size_t replication = 1;
    bool dynamic = false;
    bool diverse = false;       // Graphite's DIVERSE_REPLICAS (implicit cluster only; carbon-c-relay has none)
    bool keep_repeats = false;  // report a node the ring names twice twice (polymur lookup shows carbon's answer)
    std::vector<uint16_t> member_slots;     // in file order
    std::vector<std::string> file_members;  // host:port[:instance] as the rules file lists them
    std::vector<std::string> members;       // the same now (runtime membership changes)
    std::unique_ptr<HashRing> ring;         // hash clusters; indices into member_slots

    // Appends this cluster's slots for `name` to out[count..); returns the new count.
    size_t select(std::string_view name, const bool* up, uint16_t* out, size_t count, size_t cap) const {
        auto is_up = [&](uint16_t slot) { return up == nullptr || up[slot]; };
        auto push = [&](uint16_t slot) {
            if (count < cap) out[count++] = slot;
        };
        const size_t n = member_slots.size();
        switch (type) {
            case rules::ClusterType::forward:
                for (uint16_t slot : member_slots) push(slot);
                break;
            case rules::ClusterType::any_of: {
                const uint32_t hash = fnv1a_32(name);
                size_t pick = hash % n;
                if (!is_up(member_slots[pick])) {
                    // Its share spreads over the members that are up (each takes about the same part),
                    // the same members for the same name while the set of members up stays the same.
                    size_t up_count = 0;
                    for (uint16_t slot : member_slots) up_count += is_up(slot);
                    if (up_count) {
                        size_t nth = (hash / n) % up_count;
                        for (size_t k = 0; k < n; ++k)
                            if (is_up(member_slots[k]) && nth-- == 0) {
                                pick = k;
                                break;
                            }
                    }
                }
                push(member_slots[pick]);
                break;
            }
            case rules::ClusterType::failover: {
                size_t pick = 0;
                for (size_t k = 0; k < n; ++k) {
                    if (is_up(member_slots[k])) {
                        pick = k;
                        break;
                    }
                }
                push(member_slots[pick]);
                break;
            }
            default: {
                uint16_t found[kMaxReplication];
                if (!dynamic || up == nullptr) {
                    size_t got = ring->lookup(name, std::min(replication, kMaxReplication), diverse, found);
                    for (size_t k = 0; k < got; ++k) {
                        // carbon can name one node twice (a one-node ring without diverse replicas): one copy.
                        bool repeat = false;
                        for (size_t j = 0; j < k && !keep_repeats; ++j) repeat |= found[j] == found[k];
                        if (!repeat) push(member_slots[found[k]]);
                    }
                    break;
                }
                // dynamic: the first `replication` members in ring order that are up (all of them when none is).
                size_t want = std::min({replication, kMaxReplication, n});
                size_t got = ring->lookup(name, std::min(n, kMaxReplication), false, found);
                size_t taken = 0;
                for (size_t k = 0; k < got && taken < want; ++k)
                    if (is_up(member_slots[found[k]])) {
                        push(member_slots[found[k]]);
                        ++taken;
                    }
                for (size_t k = 0; k < got && taken < want; ++k)
                    if (!is_up(member_slots[found[k]])) {
                        push(member_slots[found[k]]);
                        ++taken;
                    }
            }
        }
        return count;
    }
    bool fails_over() const {
        return type == rules::ClusterType::any_of || type == rules::ClusterType::failover || dynamic;
    }
    bool has_member(size_t slot) const {
        return std::find(member_slots.begin(), member_slots.end(), slot) != member_slots.end();
    }
};

class CompiledRule {
public:
    rules::Rule::Kind kind = rules::Rule::Kind::match;
    std::vector<Expression> expressions;  // match: any of them; rewrite: one
    std::unique_ptr<Expression> validate;
    rules::ValidateAction validate_action = rules::ValidateAction::drop;
    std::vector<const CompiledCluster*> clusters;
    bool blackhole = false;
    bool stop = false;
    std::string replacement;
    size_t aggregate = 0;  // aggregate rules: index into RoutingTable::aggregates_
};

RoutingTable::RoutingTable() = default;
RoutingTable::~RoutingTable() = default;

size_t RoutingTable::slot_for(const rules::Member& member) {
    const std::string address = member.address();
    for (size_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].address == address) return i;
    slots_.push_back({address, member.instance, member.destination_text()});
    return slots_.size() - 1;
}

namespace {

std::string where_text(const rules::Where& where) { return where.file + ":" + std::to_string(where.line) + ": "; }

// A hash cluster's ring over `members` in this order, with carbon-c-relay's own placement (what its users'
// files mean); other cluster types have none (`ring` reset). False with `error`.
bool rules_ring(rules::ClusterType type, const std::vector<Destination>& members, std::unique_ptr<HashRing>& ring,
                std::string& error) {
    ring.reset();
    if (type != rules::ClusterType::carbon_ch && type != rules::ClusterType::fnv1a_ch &&
        type != rules::ClusterType::jump_fnv1a_ch)
        return true;
    const HashType hash = type == rules::ClusterType::carbon_ch ? HashType::carbon_ch
        : type == rules::ClusterType::fnv1a_ch                  ? HashType::fnv1a_ch
                                                                : HashType::jump_fnv1a_ch;
    ring = HashRing::build(hash, members, error, HashCompat::carbon_c_relay);
    return ring != nullptr;
}

}  // namespace

std::unique_ptr<RoutingTable> RoutingTable::build(const rules::RulesConfig& config, std::string& error) {
    std::unique_ptr<RoutingTable> table(new RoutingTable());
    for (const rules::Cluster& source : config.clusters) {
        auto cluster = std::make_unique<CompiledCluster>();
        cluster->name = source.name;
        cluster->type = source.type;
        cluster->replication = size_t(source.replication);
        cluster->dynamic = source.dynamic;
        std::vector<Destination> ring_members;
        for (const rules::Member& member : source.members) {
            size_t slot = table->slot_for(member);
            if (slot >= kMaxRouteDestinations) {
                error =
                    where_text(member.where) + "more than " + std::to_string(kMaxRouteDestinations) + " destinations";
                return nullptr;
            }
            cluster->member_slots.push_back(uint16_t(slot));
            Destination destination;
            destination.host = member.host;
            destination.port = member.port;
            destination.instance = member.instance;
            destination.text = member.destination_text();
            cluster->file_members.push_back(destination.text);
            ring_members.push_back(std::move(destination));
        }
        cluster->members = cluster->file_members;
        std::string ring_error;
        if (!rules_ring(source.type, ring_members, cluster->ring, ring_error)) {
            error = where_text(source.where) + "cluster " + source.name + ": " + ring_error;
            return nullptr;
        }
        table->clusters_.push_back(std::move(cluster));
    }
    auto find = [&](const std::string& name) -> const CompiledCluster* {
        for (const auto& cluster : table->clusters_)
            if (cluster->name == name) return cluster.get();
        return nullptr;
    };
    // The rule's expressions (any of them applies) and its clusters; false with `error` set.
    auto compile_common = [&](CompiledRule& compiled, const std::vector<std::string>& expressions,
                              const std::vector<std::string>& clusters, const rules::Where& where) {
        std::string regex_error;
        for (const std::string& text : expressions) {
            Expression expression;
            if (!expression.compile(text, false, regex_error)) {  // plain strings: no groups to refer to
                error = where_text(where) + regex_error;
                return false;
            }
            compiled.expressions.push_back(std::move(expression));
        }
        for (const std::string& name : clusters) {
            const CompiledCluster* cluster = find(name);
            if (!cluster) {
                error = where_text(where) + "unknown cluster '" + name + "'";
                return false;
            }
            compiled.clusters.push_back(cluster);
        }
        return true;
    };
    for (const rules::Rule& rule : config.rules) {
        auto compiled = std::make_unique<CompiledRule>();
        compiled->kind = rule.kind;
        std::string regex_error;
        if (rule.kind == rules::Rule::Kind::match) {
            const rules::Match& match = config.matches[rule.index];
            if (!compile_common(*compiled, match.expressions, match.clusters, match.where)) return nullptr;
            if (match.validate) {
                compiled->validate = std::make_unique<Expression>();
                if (!compiled->validate->compile(*match.validate, false, regex_error)) {
                    error = where_text(match.where) + regex_error;
                    return nullptr;
                }
                compiled->validate_action = match.validate_action;
            }
            compiled->blackhole = match.blackhole;
            compiled->stop = match.stop || match.blackhole;
        } else if (rule.kind == rules::Rule::Kind::rewrite) {
            const rules::Rewrite& rewrite = config.rewrites[rule.index];
            Expression expression;
            if (!expression.compile(rewrite.expression, true, regex_error)) {
                error = where_text(rewrite.where) + regex_error;
                return nullptr;
            }
            compiled->expressions.push_back(std::move(expression));
            compiled->replacement = rewrite.replacement;
        } else {
            const rules::Aggregate& aggregate = config.aggregates[rule.index];
            if (!compile_common(*compiled, aggregate.expressions, aggregate.clusters, aggregate.where)) return nullptr;
            compiled->stop = aggregate.stop;
            compiled->aggregate = table->aggregates_.size();
            table->aggregates_.push_back(aggregate);
            // A rule identical to an earlier one is numbered after it: each has its own buckets.
            const uint64_t definition = rules::aggregate_fingerprint(aggregate);
            size_t occurrence = 0;
            for (size_t earlier = 0; earlier + 1 < table->aggregates_.size(); ++earlier)
                occurrence += rules::aggregate_fingerprint(table->aggregates_[earlier]) == definition;
            table->aggregate_fingerprints_.push_back(rules::aggregate_fingerprint(aggregate, occurrence));
            table->aggregate_rules_.push_back(compiled.get());
        }
        table->rules_.push_back(std::move(compiled));
    }
    return table;
}

std::unique_ptr<RoutingTable> RoutingTable::build_implicit(bool broadcast, HashType type,
                                                           const std::vector<Destination>& destinations,
                                                           size_t replication, bool diverse, std::string& error,
                                                           HashCompat compat) {
    std::unique_ptr<RoutingTable> table(new RoutingTable());
    auto cluster = std::make_unique<CompiledCluster>();
    cluster->name = "default";
    cluster->type = broadcast         ? rules::ClusterType::forward
        : type == HashType::carbon_ch ? rules::ClusterType::carbon_ch
        : type == HashType::fnv1a_ch  ? rules::ClusterType::fnv1a_ch
                                      : rules::ClusterType::jump_fnv1a_ch;
    cluster->replication = replication;
    for (const Destination& destination : destinations) {
        if (table->slots_.size() >= kMaxRouteDestinations) {
            error = "more than " + std::to_string(kMaxRouteDestinations) + " destinations";
            return nullptr;
        }
        // Each destination as written is its own slot, as today (two instances on one port stay two).
        table->slots_.push_back({destination.text, destination.instance, destination.text});
        cluster->member_slots.push_back(uint16_t(table->slots_.size() - 1));
    }
    if (!broadcast && !destinations.empty()) {
        cluster->ring = HashRing::build(type, destinations, error, compat);
        if (!cluster->ring) return nullptr;
    }
    cluster->diverse = diverse;
    auto rule = std::make_unique<CompiledRule>();
    Expression all;
    std::string unused;
    all.compile("*", false, unused);
    rule->expressions.push_back(std::move(all));
    if (!destinations.empty()) rule->clusters.push_back(cluster.get());
    table->clusters_.push_back(std::move(cluster));
    table->rules_.push_back(std::move(rule));
    return table;
}

std::unique_ptr<RoutingTable> compile_rules_file(const std::string& path, std::string& error,
                                                 std::vector<std::string>* warnings, std::string* sources) {
    rules::RulesConfig config;
    if (!rules::parse_rules_file(path, config, error, sources)) return nullptr;
    if (warnings) warnings->insert(warnings->end(), config.warnings.begin(), config.warnings.end());
    return RoutingTable::build(config, error);
}

size_t RoutingTable::failover(std::string_view name, size_t own, const bool* up, uint16_t* out, size_t cap) const {
    bool placed_up[kMaxRouteDestinations];  // `up` as it was when the line was queued for `own`
    for (size_t s = 0; s < slots_.size(); ++s) placed_up[s] = up == nullptr || up[s];
    placed_up[own] = true;
    auto is_up = [&](uint16_t slot) { return up == nullptr || up[slot]; };
    size_t count = 0;
    auto add = [&](uint16_t slot) {
        if (slot == own || !is_up(slot) || count >= cap) return;
        for (size_t k = 0; k < count; ++k)
            if (out[k] == slot) return;
        out[count++] = slot;
    };
    const CompiledCluster* first = nullptr;
    bool claimed = false;
    uint16_t before[kMaxReplication], now[kMaxReplication];
    for (const auto& cluster : clusters_) {
        if (!cluster->fails_over() || !cluster->has_member(own)) continue;
        if (!first) first = cluster.get();
        size_t had = cluster->select(name, placed_up, before, 0, kMaxReplication);
        if (std::find(before, before + had, own) == before + had) continue;  // not this cluster's line
        claimed = true;
        size_t got = cluster->select(name, up, now, 0, kMaxReplication);
        for (size_t k = 0; k < got; ++k)
            if (std::find(before, before + had, now[k]) == before + had) add(now[k]);
    }
    if (!claimed && first) {
        // No cluster would have placed it here as things are now (members came back since): it goes where
        // the first such cluster places it now.
        size_t got = first->select(name, up, now, 0, kMaxReplication);
        for (size_t k = 0; k < got; ++k) add(now[k]);
    }
    return count;
}

void RoutingTable::keep_ring_repeats() {
    for (auto& cluster : clusters_) cluster->keep_repeats = true;
}

bool RoutingTable::slot_fails_over(size_t slot) const {
    for (const auto& cluster : clusters_)
        if (cluster->fails_over() && cluster->has_member(slot)) return true;
    return false;
}

long RoutingTable::find_slot(std::string_view text) const {
    for (size_t s = 0; s < slots_.size(); ++s)
        if (slots_[s].address == text || slots_[s].text == text) return long(s);
    return -1;
}

const std::string& RoutingTable::cluster_name(size_t cluster) const { return clusters_[cluster]->name; }
const char* RoutingTable::cluster_type(size_t cluster) const {
    return rules::cluster_type_name(clusters_[cluster]->type);
}
const std::vector<uint16_t>& RoutingTable::cluster_members(size_t cluster) const {
    return clusters_[cluster]->member_slots;
}

long RoutingTable::find_cluster(std::string_view name) const {
    for (size_t c = 0; c < clusters_.size(); ++c)
        if (clusters_[c]->name == name) return long(c);
    return -1;
}
const std::vector<std::string>& RoutingTable::cluster_file_members(size_t cluster) const {
    return clusters_[cluster]->file_members;
}
const std::vector<std::string>& RoutingTable::cluster_member_texts(size_t cluster) const {
    return clusters_[cluster]->members;
}

bool RoutingTable::set_cluster_members(size_t cluster, const std::vector<std::string>& members, std::string& error) {
    CompiledCluster& target = *clusters_[cluster];
    if (members.empty()) {
        error = "cluster " + target.name + " would have no members (a rules file cannot name an empty cluster)";
        return false;
    }
    std::vector<Destination> parsed;
    std::vector<rules::Member> as_members;
    for (const std::string& text : members) {
        Destination destination;
        if (!parse_destination(text, destination, error)) return false;
        if (destination.wire.framing != Framing::line) {
            error = "cluster members are [scheme://]host:port[:instance] with lines on the wire, not " + text;
            return false;
        }
        rules::Member member;
        member.host = destination.host;
        member.port = destination.port;
        member.instance = destination.instance;
        member.wire = destination.wire;
        destination.text = member.destination_text();
        as_members.push_back(std::move(member));
        for (const Destination& other : parsed)
            if (other.address() == destination.address()) {
                error = "cluster " + target.name + " would list " + destination.address() + " twice";
                return false;
            }
        parsed.push_back(std::move(destination));
    }
    std::unique_ptr<HashRing> ring;
    if (!rules_ring(target.type, parsed, ring, error)) {
        error = "cluster " + target.name + ": " + error;
        return false;
    }
    size_t new_slots = 0;
    for (const Destination& destination : parsed) new_slots += find_slot(destination.address()) < 0;
    if (slots_.size() + new_slots > kMaxRouteDestinations) {
        error = "more than " + std::to_string(kMaxRouteDestinations) + " destinations";
        return false;
    }
    // Nothing can fail from here: the cluster changes as a whole.
    std::vector<uint16_t> member_slots;
    std::vector<std::string> texts;
    for (size_t i = 0; i < parsed.size(); ++i) {
        member_slots.push_back(uint16_t(slot_for(as_members[i])));
        texts.push_back(parsed[i].text);
    }
    target.member_slots = std::move(member_slots);
    target.members = std::move(texts);
    target.ring = std::move(ring);
    return true;
}

bool RoutingTable::slot_in_cluster(size_t slot) const {
    for (const auto& cluster : clusters_)
        if (cluster->has_member(slot)) return true;
    return false;
}

bool RoutingTable::rule_validate_drops(size_t rule) const {
    return rules_[rule]->validate_action == rules::ValidateAction::drop;
}

namespace {

// Appends `cluster`'s slots for `name` to the result's sends (slots[0..count) = them); false on overflow.
bool add_sends(const CompiledCluster& cluster, std::string_view name, uint8_t name_index, const bool* up,
               uint16_t* slots, size_t& count, RouteResult& result) {
    count = cluster.select(name, up, slots, 0, RouteResult::kMaxSends);
    for (size_t k = 0; k < count; ++k) {
        if (result.send_count >= RouteResult::kMaxSends) {
            result.overflow = true;
            return false;
        }
        result.sends[result.send_count++] = {slots[k], name_index};
    }
    return true;
}

}  // namespace

namespace {

// The table's rule when it is its only one and a `match` that takes every name to its clusters unchanged
// (no rewrite, validate, blackhole or aggregate): then route() sends each name where those clusters select.
const CompiledRule* sole_match_all(const std::vector<std::unique_ptr<CompiledRule>>& rules, bool aggregates) {
    if (rules.size() != 1 || aggregates) return nullptr;
    const CompiledRule& rule = *rules[0];
    if (rule.kind != rules::Rule::Kind::match || rule.validate || rule.blackhole) return nullptr;
    if (std::none_of(rule.expressions.begin(), rule.expressions.end(),
                     [](const Expression& e) { return e.matches_everything(); }))
        return nullptr;
    return &rule;
}

}  // namespace

bool RoutingTable::routes_by_one_cluster() const {
    const CompiledRule* rule = sole_match_all(rules_, !aggregates_.empty());
    return rule && rule->clusters.size() == 1;
}

size_t RoutingTable::one_cluster_slots(std::string_view name, const bool* up, uint16_t* out) const {
    return rules_[0]->clusters[0]->select(name, up, out, 0, RouteResult::kMaxSends);
}

size_t RoutingTable::one_cluster_slots_by_position() const {
    const CompiledCluster& cluster = *rules_[0]->clusters[0];
    if (cluster.type != rules::ClusterType::carbon_ch || cluster.dynamic) return 0;
    return std::min(cluster.replication, kMaxReplication);
}

bool RoutingTable::sends_every_name_to(std::vector<uint16_t>& slots) const {
    slots.clear();
    const CompiledRule* rule = sole_match_all(rules_, !aggregates_.empty());
    if (!rule) return false;
    for (const CompiledCluster* cluster : rule->clusters) {
        if (cluster->type != rules::ClusterType::forward) return false;
        slots.insert(slots.end(), cluster->member_slots.begin(), cluster->member_slots.end());
    }
    if (slots.size() > RouteResult::kMaxSends) {  // route() would stop at the overflow
        slots.clear();
        return false;
    }
    return true;
}

bool RoutingTable::hashes_carbon_ch() const {
    for (const auto& cluster : clusters_)
        if (cluster->type == rules::ClusterType::carbon_ch) return true;
    return false;
}

void RoutingTable::route(std::string_view name, std::string_view data, const bool* up, RouteResult& result,
                         RouteTrace* trace) const {
    result.name_count = 1;
    result.names[0] = name;
    result.send_count = 0;
    result.feed_count = 0;
    result.bytes_used = 0;
    result.blackholed = result.dropped = result.logged = result.overflow = result.matched = false;
    uint8_t current = 0;
    // result.names[current], kept here: reading back the view just stored into result.names costs a
    // store-forwarding stall on every line.
    std::string_view now = name;
    uint16_t slots[RouteResult::kMaxSends];
    for (size_t r = 0; r < rules_.size(); ++r) {
        const CompiledRule& rule = *rules_[r];
        if (rule.kind == rules::Rule::Kind::rewrite) {
            const Expression& expression = rule.expressions[0];
            std::string_view groups[kMaxGroups];
            size_t count = 0;
            if (!expression.match_groups(now, groups, count)) continue;
            if (result.name_count >= RouteResult::kMaxNames) {
                result.overflow = true;
                return;
            }
            char* out = result.bytes.data() + result.bytes_used;
            size_t cap = result.bytes.size() - result.bytes_used, used = 0;
            size_t before = size_t(groups[0].data() - now.data());
            bool fits = before <= cap;
            if (fits) {
                std::memcpy(out, now.data(), before);
                used = before;
                fits = expand_replacement(rule.replacement, groups, count, out, cap, used);
            }
            size_t tail = now.size() - before - groups[0].size();
            if (fits && cap - used >= tail) {
                std::memcpy(out + used, groups[0].data() + groups[0].size(), tail);
                used += tail;
            } else {
                result.overflow = true;
                return;
            }
            result.bytes_used += used;
            result.names[result.name_count] = std::string_view(out, used);
            current = uint8_t(result.name_count++);
            if (trace) trace->rewrote(r, expression.text(), now, rule.replacement, result.names[current]);
            now = result.names[current];
            continue;
        }
        const Expression* hit = nullptr;
        for (const Expression& expression : rule.expressions)
            if (expression.matches(now)) {
                hit = &expression;
                break;
            }
        if (!hit) continue;
        if (rule.kind == rules::Rule::Kind::aggregate) {
            if (result.feed_count >= RouteResult::kMaxFeeds) {
                result.overflow = true;
                return;
            }
            result.feeds[result.feed_count++] = {uint16_t(rule.aggregate), current};
            if (trace) {
                trace->aggregated(r, rule.aggregate, hit->text(), now, hit->literal());
                // The results' names decide a hash cluster's members, so carbon-c-relay -t lists a forward
                // cluster's members only; so does this.
                for (const CompiledCluster* cluster : rule.clusters) {
                    bool forward = cluster->type == rules::ClusterType::forward;
                    size_t count = forward ? cluster->select(now, up, slots, 0, RouteResult::kMaxSends) : 0;
                    trace->cluster(r, rules::cluster_type_name(cluster->type), cluster->name, slots, count);
                }
            }
            if (rule.stop) {
                if (trace) trace->stopped(r);
                return;
            }
            continue;
        }
        result.matched = true;
        if (trace) trace->matched(r, hit->text(), now);
        if (rule.validate) {
            bool passed = rule.validate->matches(data);
            if (trace) trace->validated(r, rule.validate->text(), data, passed);
            if (!passed) {
                // The rule sends nothing. carbon-c-relay (as run) then ends the lookup when the rule has no
                // destinations (a global validation) or says stop, and goes on to the next rule otherwise.
                if (rule.validate_action == rules::ValidateAction::log) result.logged = true;
                if ((rule.clusters.empty() && !rule.blackhole) || rule.stop) {
                    result.dropped = true;
                    if (trace) trace->stopped(r);
                    return;
                }
                continue;
            }
        }
        if (rule.blackhole) {
            result.blackholed = true;
            if (trace) {
                trace->blackholed(r);
                trace->stopped(r);
            }
            return;
        }
        for (const CompiledCluster* cluster : rule.clusters) {
            size_t count = 0;
            if (!add_sends(*cluster, now, current, up, slots, count, result)) return;
            if (trace) trace->cluster(r, rules::cluster_type_name(cluster->type), cluster->name, slots, count);
        }
        if (rule.stop) {
            if (trace) trace->stopped(r);
            return;
        }
    }
    if (!result.matched && result.feed_count == 0 && trace) trace->nothing_matched(result.names[current]);
}

namespace {

// Writes `metric` for `name` into out[used..cap): a regular expression's match is replaced in place, as a rewrite
// does (carbon-c-relay 3.7.3, as run: ^c\.(w)\. writing C.\1 turns c.w.89 into C.w89); a plain string's metric
// is written as it is.
bool write_aggregate_name(std::string_view metric, std::string_view name, bool literal, const std::string_view* groups,
                          size_t count, char* out, size_t cap, size_t& used) {
    if (literal || groups[0].size() == name.size()) return expand_replacement(metric, groups, count, out, cap, used);
    size_t before = size_t(groups[0].data() - name.data());
    size_t after = name.size() - before - groups[0].size();
    if (cap - used < before) return false;
    std::memcpy(out + used, name.data(), before);
    used += before;
    if (!expand_replacement(metric, groups, count, out, cap, used) || cap - used < after) return false;
    std::memcpy(out + used, groups[0].data() + groups[0].size(), after);
    used += after;
    return true;
}

}  // namespace

bool RoutingTable::aggregate_output_names(size_t index, std::string_view name, char* out, size_t cap,
                                          std::string_view* names) const {
    const CompiledRule& rule = *aggregate_rules_[index];
    std::string_view groups[kMaxGroups];
    size_t count = 0;
    const Expression* hit = nullptr;
    for (const Expression& expression : rule.expressions)
        if (expression.match_groups(name, groups, count)) {
            hit = &expression;
            break;
        }
    if (!hit) return false;
    size_t used = 0;
    const auto& computes = aggregates_[index].computes;
    for (size_t c = 0; c < computes.size(); ++c) {
        size_t begin = used;
        if (!write_aggregate_name(computes[c].metric, name, hit->literal(), groups, count, out, cap, used))
            return false;
        names[c] = std::string_view(out + begin, used - begin);
    }
    return true;
}

bool RoutingTable::aggregate_output_name(size_t index, size_t compute, std::string_view name, char* out, size_t cap,
                                         size_t& used) const {
    const CompiledRule& rule = *aggregate_rules_[index];
    std::string_view groups[kMaxGroups];
    size_t count = 0;
    for (const Expression& expression : rule.expressions)
        if (expression.match_groups(name, groups, count)) {
            used = 0;
            return write_aggregate_name(aggregates_[index].computes[compute].metric, name, expression.literal(), groups,
                                        count, out, cap, used);
        }
    return false;
}

void RoutingTable::route_aggregate_result(size_t index, std::string_view name, const bool* up,
                                          RouteResult& result) const {
    const CompiledRule& rule = *aggregate_rules_[index];
    if (rule.clusters.empty()) {
        route(name, {}, up, result);
        return;
    }
    result.name_count = 1;
    result.names[0] = name;
    result.send_count = 0;
    result.feed_count = 0;
    result.bytes_used = 0;
    result.blackholed = result.dropped = result.logged = result.overflow = false;
    result.matched = true;
    uint16_t slots[RouteResult::kMaxSends];
    size_t count = 0;
    for (const CompiledCluster* cluster : rule.clusters)
        if (!add_sends(*cluster, name, 0, up, slots, count, result)) return;
}

}  // namespace polymur::route
