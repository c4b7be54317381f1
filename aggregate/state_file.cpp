#include "aggregate/state_file.hpp"

#include <charconv>
#include <cstdio>
#include <sstream>
#include <type_traits>

namespace polymur::aggregate {
namespace {

constexpr std::string_view kMagic = "polymur-aggregator-state ";

template <class T>
bool parse_number(std::string_view text, T& out, int base = 10) {
    if (text.empty()) return false;
    std::from_chars_result r;
    if constexpr (std::is_floating_point_v<T>) r = std::from_chars(text.data(), text.data() + text.size(), out);
    else r = std::from_chars(text.data(), text.data() + text.size(), out, base);
    return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

// Reads the state file front to back; every step false when the text is not what it must be there.
class Cursor {
public:
    explicit Cursor(std::string_view text) : rest_(text) {}
    // Up to (not including) `end`, which is consumed.
    bool until(char end, std::string_view& out) {
        const size_t at = rest_.find(end);
        if (at == std::string_view::npos) return false;
        out = rest_.substr(0, at);
        rest_.remove_prefix(at + 1);
        return true;
    }
    template <class T>
    bool number(char end, T& out, int base = 10) {
        std::string_view text;
        return until(end, text) && parse_number(text, out, base);
    }
    // "WORD NUMBER\n"
    template <class T>
    bool labelled(std::string_view word, T& out) {
        std::string_view seen;
        return until(' ', seen) && seen == word && number('\n', out);
    }
    bool take(size_t n, std::string_view& out) {
        if (rest_.size() < n) return false;
        out = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return true;
    }
    size_t left() const { return rest_.size(); }

private:
    std::string_view rest_;
};

}  // namespace

std::string format_state(const SavedState& state) {
    std::ostringstream out;
    out << kMagic << kStateVersion << "\nrules " << state.fingerprints.size() << "\n";
    char hex[17];
    for (uint64_t fingerprint : state.fingerprints) {
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fingerprint));
        out << hex << '\n';
    }
    out << "emitted_through_ms " << state.emitted_through_ms << "\npending " << state.pending.size() << "\n";
    for (const RecordedResults& p : state.pending)
        out << p.target.size() << ' ' << p.target << ' ' << p.start << ' ' << p.lines << ' ' << p.bytes.size() << '\n'
            << p.bytes;
    return out.str();
}

bool parse_state(std::string_view text, SavedState& state, std::string& error) {
    state = SavedState();
    Cursor in(text);
    std::string_view magic;
    if (!in.until('\n', magic) || magic.substr(0, kMagic.size()) != kMagic ||
        !parse_number(magic.substr(kMagic.size()), state.version) || state.version < 1 ||
        state.version > kStateVersion) {
        error = "not a state file of this polymur";
        return false;
    }
    error = "cut short";
    if (state.version >= 2) {
        size_t rules = 0;
        if (!in.labelled("rules", rules) || rules > in.left() / 17) return false;
        state.fingerprints.resize(rules);
        for (uint64_t& fingerprint : state.fingerprints) {
            std::string_view hex;
            if (!in.until('\n', hex) || hex.size() != 16 || !parse_number(hex, fingerprint, 16)) return false;
        }
    }
    size_t count = 0;
    if (!in.labelled("emitted_through_ms", state.emitted_through_ms) || !in.labelled("pending", count)) return false;
    for (size_t i = 0; i < count; ++i) {
        RecordedResults p;
        size_t target_size = 0, size = 0;
        std::string_view target, separator, bytes;
        if (!in.number(' ', target_size) || !in.take(target_size, target) || !in.take(1, separator) ||
            separator != " " || !in.number(' ', p.start) || !in.number(' ', p.lines) || !in.number('\n', size) ||
            !in.take(size, bytes))
            return false;
        p.target = target;
        p.bytes = bytes;
        state.pending.push_back(std::move(p));
    }
    if (in.left()) {
        error = "bytes after the end";
        return false;
    }
    error.clear();
    return true;
}

std::string rule_field(uint64_t fingerprint) {
    char text[kRuleFieldSize + 1];
    std::snprintf(text, sizeof text, "%016llx ", static_cast<unsigned long long>(fingerprint));
    return text;
}

bool parse_queued_point(std::string_view line, QueuedPoint& r) {
    std::string_view fields[5];
    size_t n = 0;
    while (n < 5) {
        size_t space = line.find(' ');
        if (n == 4) space = std::string_view::npos;
        fields[n++] = line.substr(0, space);
        if (space == std::string_view::npos) break;
        line.remove_prefix(space + 1);
    }
    if (n != 5) return false;
    r.by_index = fields[0].size() != kRuleFieldSize - 1;
    if (r.by_index ? !parse_number(fields[0], r.index) : !parse_number(fields[0], r.fingerprint, 16)) return false;
    if (!parse_number(fields[1], r.received) || !parse_number(fields[3], r.value)) return false;
    r.name = fields[2];
    if (!parse_number(fields[4], r.timestamp)) {  // Graphite also takes a fractional timestamp
        double t = 0;
        if (!parse_number(fields[4], t) || !(t > -9e15 && t < 9e15)) return false;
        r.timestamp = int64_t(t);
    }
    return true;
}

}  // namespace polymur::aggregate
