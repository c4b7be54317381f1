#include "protocol/tag_normalize.hpp"

#include <algorithm>

namespace polymur::protocol {

namespace {

// carbon's TaggedSeries.validateTagAndValue (tag and value are never empty here).
bool valid_tag_and_value(std::string_view tag, std::string_view value) {
    return tag.find_first_of(";!^=") == std::string_view::npos && value.find(';') == std::string_view::npos &&
        value.front() != '~';
}

// One `tag="value"` of the OpenMetrics form at the front of `rest`, and the separator after it
// (`,`, `:,` or the end), as carbon's pattern ([^=]+)="((?:[\\]["\\]|[^"\\])+)"(:?,|$) matches it.
bool take_openmetrics_tag(std::string_view& rest, std::string_view& tag, std::string_view& value) {
    const size_t equals = rest.find('=');
    if (equals == 0 || equals == std::string_view::npos || equals + 1 >= rest.size() || rest[equals + 1] != '"')
        return false;
    tag = rest.substr(0, equals);
    size_t i = equals + 2;
    const size_t value_begin = i;
    while (i < rest.size() && rest[i] != '"') {
        if (rest[i] == '\\') {
            if (i + 1 >= rest.size() || (rest[i + 1] != '"' && rest[i + 1] != '\\')) return false;
            ++i;
        }
        ++i;
    }
    if (i >= rest.size() || i == value_begin) return false;  // no closing quote, or an empty value
    value = rest.substr(value_begin, i - value_begin);
    ++i;
    if (i == rest.size()) {
        rest = {};
    } else if (rest[i] == ',') {
        rest.remove_prefix(i + 1);
    } else if (rest[i] == ':' && i + 1 < rest.size() && rest[i + 1] == ',') {
        rest.remove_prefix(i + 2);
    } else {
        return false;
    }
    return true;
}

}  // namespace

bool TagNormalizer::add_tag(std::string_view tag, std::string_view value, bool unescape) {
    const size_t offset = scratch_.size();
    scratch_.append(tag);
    scratch_ += '=';
    const size_t value_offset = scratch_.size();
    if (!unescape) {
        scratch_.append(value);
    } else {
        for (size_t i = 0; i < value.size(); ++i) scratch_ += value[i] == '\\' ? value[++i] : value[i];
    }
    if (!valid_tag_and_value(tag, std::string_view(scratch_).substr(value_offset))) return false;
    tags_.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(tag.size()),
                     static_cast<uint32_t>(scratch_.size() - offset), static_cast<uint32_t>(tags_.size())});
    return true;
}

std::string_view TagNormalizer::finish(std::string_view metric) {
    const size_t strip = metric.find_first_not_of('~');
    if (strip == std::string_view::npos) return {};  // the name would be empty
    const std::string_view name = metric.substr(strip);
    const auto text = [&](const Tag& t) { return std::string_view(scratch_).substr(t.offset, t.size); };
    const auto tag_of = [&](const Tag& t) { return std::string_view(scratch_).substr(t.offset, t.tag_size); };
    // A dict keeps the last value of a repeated tag; `name` is replaced by the metric name.
    std::sort(tags_.begin(), tags_.end(), [&](const Tag& a, const Tag& b) {
        const int c = tag_of(a).compare(tag_of(b));
        return c != 0 ? c < 0 : a.order > b.order;
    });
    size_t kept = 0;
    for (size_t i = 0; i < tags_.size(); ++i) {
        if (kept > 0 && tag_of(tags_[kept - 1]) == tag_of(tags_[i])) continue;
        if (tag_of(tags_[i]) == "name") continue;
        tags_[kept++] = tags_[i];
    }
    tags_.resize(kept);
    // carbon sorts the strings ";tag=value" (code point order, which is UTF-8 byte order).
    std::sort(tags_.begin(), tags_.end(), [&](const Tag& a, const Tag& b) { return text(a) < text(b); });
    out_.assign(name);
    for (const Tag& t : tags_) {
        out_ += ';';
        out_.append(text(t));
    }
    return out_;
}

std::string_view TagNormalizer::normalize(std::string_view name) {
    const bool openmetrics =
        name.size() >= 2 && name.substr(name.size() - 2) == "\"}" && name.find('{') != std::string_view::npos;
    if (!openmetrics && name.find(';') == std::string_view::npos && (name.empty() || name.front() != '~'))
        return name;  // untagged: carbon's path is the name itself
    scratch_.clear();
    tags_.clear();
    std::string_view metric;
    if (openmetrics) {
        const size_t brace = name.find('{');
        metric = name.substr(0, brace);
        std::string_view rest = name.substr(brace + 1, name.size() - brace - 2);
        // carbon splits at '{' into exactly two parts; a second '{' makes it give up.
        if (metric.empty() || rest.find('{') != std::string_view::npos) return name;
        while (!rest.empty()) {
            std::string_view tag, value;
            if (!take_openmetrics_tag(rest, tag, value) || !add_tag(tag, value, true)) return name;
        }
    } else {
        const size_t semicolon = name.find(';');
        metric = name.substr(0, semicolon);
        if (metric.empty()) return name;
        for (size_t begin = semicolon; begin != std::string_view::npos;) {
            const size_t end = name.find(';', begin + 1);
            const std::string_view segment =
                name.substr(begin + 1, end == std::string_view::npos ? std::string_view::npos : end - begin - 1);
            const size_t equals = segment.find('=');
            if (equals == 0 || equals == std::string_view::npos || equals + 1 == segment.size()) return name;
            if (!add_tag(segment.substr(0, equals), segment.substr(equals + 1), false)) return name;
            begin = end;
        }
    }
    const std::string_view normalized = finish(metric);
    return normalized.data() == nullptr ? name : normalized;
}

}  // namespace polymur::protocol
