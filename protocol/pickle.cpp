#include "protocol/pickle.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>

namespace polymur::protocol {
namespace {

// The opcodes, as Python's Lib/pickle.py names them.
enum : uint8_t {
    MARK = '(',
    STOP = '.',
    INT = 'I',
    BININT = 'J',
    BININT1 = 'K',
    BININT2 = 'M',
    LONG = 'L',
    NONE = 'N',
    STRING = 'S',
    BINSTRING = 'T',
    SHORT_BINSTRING = 'U',
    UNICODE = 'V',
    BINUNICODE = 'X',
    APPEND = 'a',
    APPENDS = 'e',
    GET = 'g',
    BINGET = 'h',
    LONG_BINGET = 'j',
    LIST = 'l',
    EMPTY_LIST = ']',
    PUT = 'p',
    BINPUT = 'q',
    LONG_BINPUT = 'r',
    TUPLE = 't',
    EMPTY_TUPLE = ')',
    FLOAT = 'F',
    BINFLOAT = 'G',
    BINBYTES = 'B',
    SHORT_BINBYTES = 'C',
    PROTO = 0x80,
    TUPLE1 = 0x85,
    TUPLE2 = 0x86,
    TUPLE3 = 0x87,
    NEWTRUE = 0x88,
    NEWFALSE = 0x89,
    LONG1 = 0x8a,
    LONG4 = 0x8b,
    SHORT_BINUNICODE = 0x8c,
    BINUNICODE8 = 0x8d,
    BINBYTES8 = 0x8e,
    MEMOIZE = 0x94,
    FRAME = 0x95,
    // Opcodes that import, call or build objects: never.
    GLOBAL = 'c',
    STACK_GLOBAL = 0x93,
    REDUCE = 'R',
    BUILD = 'b',
    INST = 'i',
    OBJ = 'o',
    NEWOBJ = 0x81,
    NEWOBJ_EX = 0x92,
    EXT1 = 0x82,
    EXT2 = 0x83,
    EXT4 = 0x84,
    PERSID = 'P',
    BINPERSID = 'Q',
};

uint64_t little_endian(const char* p, size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(static_cast<unsigned char>(p[k])) << (8 * k);
    return v;
}

bool is_integer_text(std::string_view s) {
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | ((cp >> 18) & 0x07));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool parse_hex(std::string_view s, uint32_t& out) {
    out = 0;
    for (char c : s) {
        int d = hex_digit(c);
        if (d < 0) return false;
        out = out * 16 + static_cast<uint32_t>(d);
    }
    return true;
}

// Protocol 0 UNICODE: raw-unicode-escape. Bytes are Latin-1 code points, except \uXXXX and
// \UXXXXXXXX. The result is UTF-8 (a code point past U+10FFFF or a lone surrogate comes out as bytes
// the name check refuses).
bool decode_raw_unicode_escape(std::string_view s, std::string& out) {
    for (size_t k = 0; k < s.size(); ++k) {
        unsigned char c = static_cast<unsigned char>(s[k]);
        if (c == '\\' && k + 1 < s.size() && (s[k + 1] == 'u' || s[k + 1] == 'U')) {
            size_t digits = s[k + 1] == 'u' ? 4 : 8;
            uint32_t cp;
            if (k + 2 + digits > s.size() || !parse_hex(s.substr(k + 2, digits), cp)) return false;
            if (cp > 0x10ffff) return false;
            put_utf8(out, cp);
            k += 1 + digits;
        } else {
            put_utf8(out, c);
        }
    }
    return true;
}

// Protocol 0 STRING: a Python 2 repr, quoted, with backslash escapes (codecs.escape_decode).
bool decode_quoted_string(std::string_view s, std::string& out) {
    if (s.size() < 2 || (s[0] != '\'' && s[0] != '"') || s.back() != s[0]) return false;
    s = s.substr(1, s.size() - 2);
    for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] != '\\') {
            out += s[k];
            continue;
        }
        if (++k == s.size()) return false;  // a trailing backslash
        char e = s[k];
        switch (e) {
            case '\n': break;  // line continuation
            case '\\':
            case '\'':
            case '"': out += e; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'v': out += '\v'; break;
            case 'x': {
                uint32_t v;
                if (k + 3 > s.size() || !parse_hex(s.substr(k + 1, 2), v)) return false;
                out += static_cast<char>(v);
                k += 2;
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    uint32_t v = static_cast<uint32_t>(e - '0');
                    for (int more = 0; more < 2 && k + 1 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '7'; ++more)
                        v = v * 8 + static_cast<uint32_t>(s[++k] - '0');
                    out += static_cast<char>(v & 0xff);
                } else {
                    out += '\\';
                    out += e;
                }
        }
    }
    return true;
}

// As Python's repr() writes a float: positional from 1e-4 to 1e16, exponent beyond.
size_t format_real(double d, char* buf, size_t cap) {
    if (std::isnan(d)) return std::string_view("nan").copy(buf, cap);
    if (std::isinf(d)) return std::string_view(d < 0 ? "-inf" : "inf").copy(buf, cap);
    double m = std::fabs(d);
    auto format = (d == 0 || (m >= 1e-4 && m < 1e16)) ? std::chars_format::fixed : std::chars_format::scientific;
    auto r = std::to_chars(buf, buf + cap, d, format);
    return r.ec == std::errc() ? static_cast<size_t>(r.ptr - buf) : 0;
}

}  // namespace

const char* describe(PickleError error) {
    switch (error) {
        case PickleError::none: return "no error";
        case PickleError::empty: return "empty frame";
        case PickleError::truncated: return "truncated pickle";
        case PickleError::forbidden_opcode: return "opcode that imports or calls (refused)";
        case PickleError::unknown_opcode: return "unsupported opcode";
        case PickleError::bad_argument: return "malformed opcode argument";
        case PickleError::bad_structure: return "not a list of (name, (timestamp, value))";
        case PickleError::trailing_bytes: return "bytes after STOP";
    }
    return "unknown error";
}

bool looks_like_pickle_frame(std::string_view s) {
    if (s.size() < 6 || s[0] != 0) return false;
    auto b4 = static_cast<unsigned char>(s[4]), b5 = static_cast<unsigned char>(s[5]);
    return (b4 == PROTO && b5 <= 5) || (b4 == MARK && b5 == LIST) || b4 == EMPTY_LIST;
}

std::string_view PickleReader::text_of(const Value& v) const {
    return v.in_arena ? std::string_view(text_).substr(v.a, v.b) : payload_.substr(v.a, v.b);
}

void PickleReader::append_to_list(uint32_t list, const Value& v) {
    auto node = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back({v, kNil});
    List& l = lists_[list];
    if (l.tail == kNil) {
        l.head = node;
    } else {
        nodes_[l.tail].next = node;
    }
    l.tail = node;
    ++l.count;
}

PickleError PickleReader::decode(std::string_view p) {
    payload_ = p;
    stack_.clear();
    marks_.clear();
    memo_.clear();
    items_.clear();
    nodes_.clear();
    lists_.clear();
    text_.clear();
    result_ = Value {};
    cursor_ = kNil;
    tuple_cursor_ = 0;
    failed_opcode_ = 0;
    if (p.empty()) return PickleError::empty;
    if (p.size() > (1u << 30)) return PickleError::bad_argument;

    size_t pos = 0;
    size_t memo_count = 0;
    uint8_t op = 0;
    auto fail = [&](PickleError e) {
        failed_opcode_ = op;
        return e;
    };
    // The lowest stack index the current mark lets us pop down to.
    auto floor = [&]() -> size_t { return marks_.empty() ? 0 : marks_.back(); };
    auto text_value = [](uint32_t off, size_t len, bool arena) {
        Value v;
        v.kind = Kind::text;
        v.in_arena = arena;
        v.a = off;
        v.b = static_cast<uint32_t>(len);
        return v;
    };
    auto new_list = [&]() {
        Value v;
        v.kind = Kind::list;
        v.a = static_cast<uint32_t>(lists_.size());
        lists_.push_back({kNil, kNil, 0});
        return v;
    };
    auto make_tuple = [&](size_t from) {
        Value v;
        v.kind = Kind::tuple;
        v.a = static_cast<uint32_t>(items_.size());
        v.b = static_cast<uint32_t>(stack_.size() - from);
        items_.insert(items_.end(), stack_.begin() + static_cast<std::ptrdiff_t>(from), stack_.end());
        stack_.resize(from);
        return v;
    };
    auto set_memo = [&](uint64_t index) {
        if (stack_.size() <= floor() || index > p.size()) return false;
        if (index >= memo_.size()) memo_.resize(index + 1);
        if (!memo_[index].memoized) ++memo_count;
        memo_[index] = stack_.back();
        memo_[index].memoized = true;
        return true;
    };

    for (;;) {
        if (pos >= p.size()) return fail(PickleError::truncated);
        op = static_cast<uint8_t>(p[pos++]);
        const size_t left = p.size() - pos;
        // Reads a newline-terminated argument.
        std::string_view line;
        auto read_line = [&]() {
            size_t nl = p.find('\n', pos);
            if (nl == std::string_view::npos) return false;
            line = p.substr(pos, nl - pos);
            pos = nl + 1;
            return true;
        };
        // Reads a length-prefixed argument with an n-byte little-endian length.
        auto read_counted = [&](size_t n, std::string_view& out) {
            if (left < n) return false;
            uint64_t len = little_endian(p.data() + pos, n);
            if (len > left - n) return false;
            out = p.substr(pos + n, len);
            pos += n + len;
            return true;
        };
        switch (op) {
            case PROTO:
                if (left < 1) return fail(PickleError::truncated);
                if (static_cast<unsigned char>(p[pos]) > 5) return fail(PickleError::bad_argument);
                ++pos;
                break;
            case FRAME:
                if (left < 8) return fail(PickleError::truncated);
                pos += 8;  // the frame's size only helps a streaming reader; the whole payload is here
                break;
            case STOP: {
                if (stack_.size() <= floor()) return fail(PickleError::bad_structure);
                result_ = stack_.back();
                if (result_.kind != Kind::list && result_.kind != Kind::tuple) return fail(PickleError::bad_structure);
                if (pos != p.size()) return fail(PickleError::trailing_bytes);
                if (result_.kind == Kind::list) cursor_ = lists_[result_.a].head;
                return PickleError::none;
            }
            case MARK: marks_.push_back(static_cast<uint32_t>(stack_.size())); break;
            case EMPTY_LIST: stack_.push_back(new_list()); break;
            case LIST: {
                if (marks_.empty()) return fail(PickleError::bad_structure);
                size_t from = marks_.back();
                marks_.pop_back();
                Value list = new_list();
                for (size_t k = from; k < stack_.size(); ++k) append_to_list(list.a, stack_[k]);
                stack_.resize(from);
                stack_.push_back(list);
                break;
            }
            case EMPTY_TUPLE: stack_.push_back(make_tuple(stack_.size())); break;
            case TUPLE: {
                if (marks_.empty()) return fail(PickleError::bad_structure);
                size_t from = marks_.back();
                marks_.pop_back();
                stack_.push_back(make_tuple(from));
                break;
            }
            case TUPLE1:
            case TUPLE2:
            case TUPLE3: {
                size_t n = op - TUPLE1 + 1u;
                if (stack_.size() < floor() + n) return fail(PickleError::bad_structure);
                stack_.push_back(make_tuple(stack_.size() - n));
                break;
            }
            case APPEND: {
                if (stack_.size() < floor() + 2) return fail(PickleError::bad_structure);
                Value v = stack_.back();
                stack_.pop_back();
                if (stack_.back().kind != Kind::list) return fail(PickleError::bad_structure);
                append_to_list(stack_.back().a, v);
                break;
            }
            case APPENDS: {
                if (marks_.empty()) return fail(PickleError::bad_structure);
                size_t from = marks_.back();
                marks_.pop_back();
                if (from == 0 || from - 1 < floor() || stack_[from - 1].kind != Kind::list)
                    return fail(PickleError::bad_structure);
                uint32_t list = stack_[from - 1].a;
                for (size_t k = from; k < stack_.size(); ++k) append_to_list(list, stack_[k]);
                stack_.resize(from);
                break;
            }
            case PUT: {
                if (!read_line()) return fail(PickleError::truncated);
                uint64_t index = 0;
                auto r = std::from_chars(line.data(), line.data() + line.size(), index);
                if (r.ec != std::errc() || r.ptr != line.data() + line.size() || !set_memo(index))
                    return fail(PickleError::bad_argument);
                break;
            }
            case BINPUT:
            case LONG_BINPUT: {
                size_t n = op == BINPUT ? 1 : 4;
                if (left < n) return fail(PickleError::truncated);
                uint64_t index = little_endian(p.data() + pos, n);
                pos += n;
                if (!set_memo(index)) return fail(PickleError::bad_argument);
                break;
            }
            case MEMOIZE:
                if (!set_memo(memo_count)) return fail(PickleError::bad_argument);
                break;
            case GET:
            case BINGET:
            case LONG_BINGET: {
                uint64_t index = 0;
                if (op == GET) {
                    if (!read_line()) return fail(PickleError::truncated);
                    auto r = std::from_chars(line.data(), line.data() + line.size(), index);
                    if (r.ec != std::errc() || r.ptr != line.data() + line.size())
                        return fail(PickleError::bad_argument);
                } else {
                    size_t n = op == BINGET ? 1 : 4;
                    if (left < n) return fail(PickleError::truncated);
                    index = little_endian(p.data() + pos, n);
                    pos += n;
                }
                if (index >= memo_.size() || !memo_[index].memoized) return fail(PickleError::bad_argument);
                stack_.push_back(memo_[index]);
                break;
            }
            case INT:
            case LONG: {
                if (!read_line()) return fail(PickleError::truncated);
                if (op == LONG && !line.empty() && line.back() == 'L') line.remove_suffix(1);
                if (op == INT && (line == "00" || line == "01")) {  // protocol 0's False and True
                    Value v;
                    v.kind = Kind::boolean;
                    v.i = line[1] - '0';
                    stack_.push_back(v);
                    break;
                }
                if (!is_integer_text(line)) return fail(PickleError::bad_argument);
                Value v = text_value(static_cast<uint32_t>(line.data() - p.data()), line.size(), false);
                v.kind = Kind::numeral;
                stack_.push_back(v);
                break;
            }
            case BININT:
            case BININT1:
            case BININT2: {
                size_t n = op == BININT ? 4 : op == BININT1 ? 1 : 2;
                if (left < n) return fail(PickleError::truncated);
                Value v;
                v.kind = Kind::integer;
                uint64_t raw = little_endian(p.data() + pos, n);
                v.i = op == BININT ? static_cast<int32_t>(static_cast<uint32_t>(raw)) : static_cast<int64_t>(raw);
                pos += n;
                stack_.push_back(v);
                break;
            }
            case LONG1:
            case LONG4: {
                std::string_view bytes;
                if (op == LONG4 && left >= 4 && static_cast<int32_t>(little_endian(p.data() + pos, 4)) < 0)
                    return fail(PickleError::bad_argument);
                if (!read_counted(op == LONG1 ? 1 : 4, bytes)) return fail(PickleError::truncated);
                Value v;
                if (bytes.size() <= 8) {
                    uint64_t raw = little_endian(bytes.data(), bytes.size());
                    if (!bytes.empty() && bytes.size() < 8 && (static_cast<unsigned char>(bytes.back()) & 0x80))
                        raw |= ~uint64_t(0) << (8 * bytes.size());  // two's complement: extend the sign
                    v.kind = Kind::integer;
                    v.i = static_cast<int64_t>(raw);
                } else {
                    v.kind = Kind::unusable;  // an integer past 64 bits is no metric value
                }
                stack_.push_back(v);
                break;
            }
            case FLOAT: {
                if (!read_line()) return fail(PickleError::truncated);
                Value v = text_value(static_cast<uint32_t>(line.data() - p.data()), line.size(), false);
                v.kind = Kind::numeral;  // Python's float() of this text: the line parser judges it
                stack_.push_back(v);
                break;
            }
            case BINFLOAT: {
                if (left < 8) return fail(PickleError::truncated);
                uint64_t bits = 0;
                for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<unsigned char>(p[pos + k]);
                Value v;
                v.kind = Kind::real;
                std::memcpy(&v.f, &bits, sizeof v.f);
                pos += 8;
                stack_.push_back(v);
                break;
            }
            case STRING:
            case UNICODE: {
                if (!read_line()) return fail(PickleError::truncated);
                size_t start = text_.size();
                bool ok = op == STRING ? decode_quoted_string(line, text_) : decode_raw_unicode_escape(line, text_);
                if (!ok || text_.size() > p.size() * 4) return fail(PickleError::bad_argument);
                stack_.push_back(text_value(static_cast<uint32_t>(start), text_.size() - start, true));
                break;
            }
            case BINSTRING:
                if (left >= 4 && static_cast<int32_t>(little_endian(p.data() + pos, 4)) < 0)
                    return fail(PickleError::bad_argument);
                [[fallthrough]];
            case SHORT_BINSTRING:
            case BINUNICODE:
            case SHORT_BINUNICODE:
            case BINUNICODE8:
            case SHORT_BINBYTES:
            case BINBYTES:
            case BINBYTES8: {
                size_t n = (op == SHORT_BINSTRING || op == SHORT_BINUNICODE || op == SHORT_BINBYTES) ? 1
                    : (op == BINUNICODE8 || op == BINBYTES8)                                         ? 8
                                                                                                     : 4;
                std::string_view bytes;
                if (!read_counted(n, bytes)) return fail(PickleError::truncated);
                stack_.push_back(text_value(static_cast<uint32_t>(bytes.data() - p.data()), bytes.size(), false));
                break;
            }
            case NONE: stack_.push_back(Value {}); break;
            case NEWTRUE:
            case NEWFALSE: {
                Value v;
                v.kind = Kind::boolean;
                v.i = op == NEWTRUE;
                stack_.push_back(v);
                break;
            }
            case GLOBAL:
            case STACK_GLOBAL:
            case REDUCE:
            case BUILD:
            case INST:
            case OBJ:
            case NEWOBJ:
            case NEWOBJ_EX:
            case EXT1:
            case EXT2:
            case EXT4:
            case PERSID:
            case BINPERSID: return fail(PickleError::forbidden_opcode);
            default: return fail(PickleError::unknown_opcode);
        }
    }
}

bool PickleReader::item(const Value& seq, uint32_t index, uint32_t expected_size, Value& out) const {
    if (seq.kind == Kind::tuple) {
        if (seq.b != expected_size) return false;
        out = items_[seq.a + index];
        return true;
    }
    if (seq.kind != Kind::list) return false;
    const List& l = lists_[seq.a];
    if (l.count != expected_size) return false;
    uint32_t node = l.head;
    for (uint32_t k = 0; k < index; ++k) node = nodes_[node].next;
    out = nodes_[node].value;
    return true;
}

bool PickleReader::number_text(const Value& v, char* buf, std::string_view& out) const {
    switch (v.kind) {
        case Kind::integer:
        case Kind::boolean: {
            auto r = std::to_chars(buf, buf + 32, v.i);
            out = std::string_view(buf, static_cast<size_t>(r.ptr - buf));
            return true;
        }
        case Kind::real: {
            size_t n = format_real(v.f, buf, 63);
            out = std::string_view(buf, n);
            return n != 0;
        }
        case Kind::numeral:
        case Kind::text:  // carbon's float() takes str and bytes of a number
            out = text_of(v);
            return true;
        default: return false;
    }
}

PickleReader::Next PickleReader::next(PickleMetric& out) {
    Value element;
    if (result_.kind == Kind::list) {
        if (cursor_ == kNil) return Next::end;
        element = nodes_[cursor_].value;
        cursor_ = nodes_[cursor_].next;
    } else if (result_.kind == Kind::tuple && tuple_cursor_ < result_.b) {
        element = items_[result_.a + tuple_cursor_++];
    } else {
        return Next::end;
    }
    Value name, point, timestamp, value;
    if (!item(element, 0, 2, name) || !item(element, 1, 2, point) || name.kind != Kind::text ||
        !item(point, 0, 2, timestamp) || !item(point, 1, 2, value))
        return Next::malformed;
    out.name = text_of(name);
    if (!number_text(timestamp, timestamp_buf_, out.timestamp) || !number_text(value, value_buf_, out.value))
        return Next::malformed;
    return Next::metric;
}

}  // namespace polymur::protocol
