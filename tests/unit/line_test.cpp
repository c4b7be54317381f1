#include "protocol/line.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace polymur::protocol {
namespace {

struct Parsed {
    LineError error;
    ParsedLine line;
    std::shared_ptr<const std::string> text;  // the views in `line` point into it
};

Parsed parse(std::string_view text) {
    Parsed p {LineError::none, {}, std::make_shared<const std::string>(text)};
    p.error = parse_line(*p.text, p.line);
    return p;
}

TEST(ParseLine, CanonicalLine) {
    const std::string text = "carbon.agents.host.cpu 12.5 1700000000";
    ParsedLine line;
    ASSERT_EQ(parse_line(text, line), LineError::none);
    EXPECT_EQ(line.name, "carbon.agents.host.cpu");
    EXPECT_EQ(line.value, "12.5");
    EXPECT_EQ(line.timestamp, "1700000000");
    EXPECT_FALSE(line.timestamp_is_now);
    EXPECT_TRUE(line.canonical);
    // The fields are views into the input, not copies.
    EXPECT_EQ(line.name.data(), text.data());
    EXPECT_EQ(line.value.data(), text.data() + 23);
    EXPECT_EQ(line.timestamp.data() + line.timestamp.size(), text.data() + text.size());
}

TEST(ParseLine, TabSeparatorIsValidButNotCanonical) {
    auto p = parse("a.b\t1\t2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name, "a.b");
    EXPECT_EQ(p.line.value, "1");
    EXPECT_EQ(p.line.timestamp, "2");
    EXPECT_FALSE(p.line.canonical);
}

TEST(ParseLine, MixedTabAndSpaceIsNotCanonical) {
    auto p = parse("a.b 1\t2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.timestamp, "2");
    EXPECT_FALSE(p.line.canonical);
}

TEST(ParseLine, MultipleSpacesAreValidButNotCanonical) {
    auto p = parse("a.b   1  2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name, "a.b");
    EXPECT_EQ(p.line.value, "1");
    EXPECT_EQ(p.line.timestamp, "2");
    EXPECT_FALSE(p.line.canonical);
}

TEST(ParseLine, LeadingAndTrailingBlanksAreValidButNotCanonical) {
    auto lead = parse(" a.b 1 2");
    ASSERT_EQ(lead.error, LineError::none);
    EXPECT_EQ(lead.line.name, "a.b");
    EXPECT_FALSE(lead.line.canonical);

    auto trail = parse("a.b 1 2 ");
    ASSERT_EQ(trail.error, LineError::none);
    EXPECT_EQ(trail.line.timestamp, "2");
    EXPECT_FALSE(trail.line.canonical);
}

TEST(ParseLine, TrailingCarriageReturnIsDropped) {
    auto p = parse("a.b 1 2\r");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name, "a.b");
    EXPECT_EQ(p.line.value, "1");
    EXPECT_EQ(p.line.timestamp, "2");  // without the '\r'
    EXPECT_FALSE(p.line.timestamp_is_now);
}

TEST(ParseLine, CarriageReturnInsideIsASeparator) {
    // carbon splits on '\r' as on any whitespace, wherever it is.
    for (const char* text : {"a.b 1\r 2", "a.b\r1\r2", "a.b 1 2\r\r", "\ra.b 1 2"}) {
        auto p = parse(text);
        ASSERT_EQ(p.error, LineError::none) << text;
        EXPECT_EQ(p.line.name, "a.b");
        EXPECT_EQ(p.line.value, "1");
        EXPECT_EQ(p.line.timestamp, "2");
        EXPECT_FALSE(p.line.canonical) << text;
    }
    EXPECT_EQ(parse("a.b 1\r2 3").error, LineError::field_count);
}

TEST(ParseLine, MinusOneTimestampMeansNow) {
    auto p = parse("a.b 1 -1");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_TRUE(p.line.timestamp_is_now);
    EXPECT_EQ(p.line.timestamp, "-1");
    // The relay rewrites the timestamp, so such a line is never forwarded byte for byte.
    EXPECT_FALSE(p.line.canonical);
}

TEST(ParseLine, FloatTimestamp) {
    auto p = parse("a.b 1 1700000000.25");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.timestamp, "1700000000.25");
    EXPECT_FALSE(p.line.timestamp_is_now);
    EXPECT_TRUE(p.line.canonical);
}

TEST(ParseLine, LeadingPlusIsAcceptedLikePythonFloat) {
    auto value = parse("a.b +1.5 2");
    ASSERT_EQ(value.error, LineError::none);
    EXPECT_EQ(value.line.value, "+1.5");  // kept as written
    auto ts = parse("a.b 1 +2");
    ASSERT_EQ(ts.error, LineError::none);
    EXPECT_EQ(ts.line.timestamp, "+2");
    EXPECT_EQ(parse("a.b + 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 1 +").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b ++1 2").error, LineError::bad_value);
}

TEST(ParseLine, SignAfterPlusIsRejected) {
    // Python's float("+-1") raises ValueError, so carbon drops such a line.
    ParsedLine out;
    LineError error = parse_line("a.b +-1 2", out);
    EXPECT_EQ(error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 1 +-1").error, LineError::bad_timestamp);
}

TEST(ParseLine, ExponentValues) {
    for (const char* v : {"1e3", "1E3", "-2.5e-3", "1e+10", "+1e3", ".5", "5."}) {
        auto p = parse(std::string("a.b ") + v + " 2");
        EXPECT_EQ(p.error, LineError::none) << v;
        EXPECT_EQ(p.line.value, v);
    }
    EXPECT_EQ(parse("a.b 1 1.7e9").error, LineError::none);
    EXPECT_EQ(parse("a.b 1e 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 0x10 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 0x1p3 2").error, LineError::bad_value);  // Python's float() has no hex either
    EXPECT_EQ(parse("a.b 1.e5 2").error, LineError::none);
    EXPECT_EQ(parse("a.b 007 017").error, LineError::none);  // leading zeros, as float("007")
    EXPECT_EQ(parse("a.b --1 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 1.5.2 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b .e5 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b nan(1) 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b infinit 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 1,5 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b 12abc 2").error, LineError::bad_value);
}

TEST(ParseLine, NanValueIsRejected) {
    EXPECT_EQ(parse("a.b nan 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b NaN 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b -nan 2").error, LineError::bad_value);
    EXPECT_EQ(parse("a.b +nan 2").error, LineError::bad_value);
}

TEST(ParseLine, InfValueIsAccepted) {
    for (const char* v : {"inf", "-inf", "+inf", "Infinity", "iNfInItY", "-INF"}) {
        auto p = parse(std::string("a.b ") + v + " 2");
        EXPECT_EQ(p.error, LineError::none) << v;
        EXPECT_EQ(p.line.value, v);
    }
}

TEST(ParseLine, NonFiniteTimestampIsRejected) {
    // carbon's int(ts) raises on these and the exception drops the connection.
    EXPECT_EQ(parse("a.b 1 inf").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 Infinity").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 1e309").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 " + std::string(400, '9')).error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 nan").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -inf").error, LineError::bad_timestamp);
}

TEST(ParseLine, NegativeTimestampOtherThanMinusOneIsRejected) {
    EXPECT_EQ(parse("a.b 1 -2").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -0.5").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -2.0").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -1e400").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -1700000000").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 abc").error, LineError::bad_timestamp);
    // 0 is a valid (if odd) timestamp.
    auto zero = parse("a.b 1 0");
    ASSERT_EQ(zero.error, LineError::none);
    EXPECT_FALSE(zero.line.timestamp_is_now);
}

TEST(ParseLine, TwoFieldsIsFieldCount) {
    EXPECT_EQ(parse("a.b 1").error, LineError::field_count);
    EXPECT_EQ(parse("a.b").error, LineError::field_count);
}

TEST(ParseLine, FourFieldsIsFieldCount) {
    EXPECT_EQ(parse("a.b 1 2 3").error, LineError::field_count);
    EXPECT_EQ(parse("a.b 1 2 3 4 5").error, LineError::field_count);
}

TEST(ParseLine, EmptyLine) {
    EXPECT_EQ(parse("").error, LineError::empty);
    EXPECT_EQ(parse("\r").error, LineError::empty);
}

TEST(ParseLine, BlankLine) {
    EXPECT_EQ(parse("   ").error, LineError::empty);
    EXPECT_EQ(parse(" \t \t").error, LineError::empty);
    EXPECT_EQ(parse("  \r").error, LineError::empty);
}

TEST(ParseLine, ControlCharacterInNameIsRejected) {
    EXPECT_EQ(parse(std::string("a\x01"
                                "b 1 2"))
                  .error,
              LineError::bad_name);
    EXPECT_EQ(parse(std::string("a\x7f"
                                "b 1 2"))
                  .error,
              LineError::bad_name);
    EXPECT_EQ(parse(std::string("a\x1b[31m 1 2")).error, LineError::bad_name);
    EXPECT_EQ(parse(std::string("a\0b 1 2", 7)).error, LineError::bad_name);
}

TEST(ParseLine, Utf8NameIsAccepted) {
    const std::string name = "m\xc3\xa9trique.\xe6\xb8\xa9\xe5\xba\xa6";  // "métrique.温度"
    auto p = parse(name + " 1 2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name, name);
    EXPECT_TRUE(p.line.canonical);
}

TEST(ParseLine, TaggedNameIsAccepted) {
    auto p = parse("a.b;tag=v;dc=eu 1 2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name, "a.b;tag=v;dc=eu");
    EXPECT_TRUE(p.line.canonical);
}

TEST(ParseLine, LongName) {
    const std::string name(16384, 'x');
    auto p = parse(name + " 1 2");
    ASSERT_EQ(p.error, LineError::none);
    EXPECT_EQ(p.line.name.size(), 16384u);
    EXPECT_EQ(p.line.name, name);
    EXPECT_TRUE(p.line.canonical);
}

// carbon-cache decodes each line as UTF-8 and drops the connection, with everything behind the line
// in its buffer, when it cannot: such a line must never be forwarded.
TEST(ParseLine, InvalidUtf8IsRejected) {
    const char* bad[] = {
        "\xff",
        "\xfe",
        "\x80",
        "\xbf",  // never valid / a stray continuation byte
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\xaf",  // overlong forms (of NUL, U+007F, '/')
        "\xf0\x80\x80\xaf",
        "\xe0\x9f\xbf",  // overlong 4- and 3-byte forms
        "\xed\xa0\x80",
        "\xed\xbf\xbf",  // UTF-16 surrogates
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",  // past U+10FFFF
        "\xc3",
        "\xe6\xb8",
        "\xf0\x9f\x98",  // truncated sequences
        "\xc3\x28",
        "\xe2\x28\xa1",  // a lead byte without its continuation
    };
    for (const char* b : bad) {
        EXPECT_EQ(parse(std::string("a") + b + "b 1 2").error, LineError::bad_utf8) << b;
        EXPECT_EQ(parse(std::string("a.b") + b + " 1 2").error, LineError::bad_utf8) << b;  // before a separator
        EXPECT_EQ(parse(std::string("a.b") + b).error, LineError::bad_utf8) << b;           // at the end of the line
        EXPECT_EQ(parse(std::string("a.b 1") + b + " 2").error, LineError::bad_utf8) << b;
        EXPECT_EQ(parse(std::string("a.b 1 2") + b).error, LineError::bad_utf8) << b;
        EXPECT_EQ(parse(std::string("a.b 1 2 ") + b).error, LineError::bad_utf8) << b;
        EXPECT_EQ(check_name(std::string("a") + b), LineError::bad_utf8) << b;
    }
}

TEST(ParseLine, Utf8BoundariesAreAccepted) {
    const char* good[] = {"\xc2\xa1",     "\xdf\xbf",     "\xe0\xa0\x80",     "\xed\x9f\xbf",
                          "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
                          "\xe2\x80\x8b", "\xe1\xa0\x8e", "\xef\xbb\xbf"};  // U+200B, U+180E, U+FEFF are not whitespace
    for (const char* g : good) {
        const std::string name = std::string("a") + g + "b";
        auto p = parse(name + " 1 2");
        ASSERT_EQ(p.error, LineError::none) << g;
        EXPECT_EQ(p.line.name, name);
        EXPECT_TRUE(p.line.canonical);
        EXPECT_EQ(check_name(name), LineError::none);
    }
}

TEST(ParseLine, C1ControlInNameIsRejected) {
    for (const char* c : {"\xc2\x80", "\xc2\x9b", "\xc2\x9f"})  // U+0080, CSI, U+009F
        EXPECT_EQ(parse(std::string("a") + c + "b 1 2").error, LineError::bad_name) << c;
}

// carbon splits on what Python's str.isspace() calls whitespace; so does polymur, and it forwards
// single spaces.
const char* const kSpaces[] = {"\x0b",         "\x0c",         "\r",           "\x1c",         "\x1d",
                               "\x1e",         "\x1f",         "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80",
                               "\xe2\x80\x80", "\xe2\x80\x83", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9",
                               "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};

TEST(ParseLine, UnicodeWhitespaceSeparatesFields) {
    for (const char* ws : kSpaces) {
        const std::string w = ws;
        for (const std::string& text :
             {"a.b" + w + "1" + w + "2", w + "a.b 1 2" + w, "a.b" + w + " 1 " + w + w + "2"}) {
            auto p = parse(text);
            ASSERT_EQ(p.error, LineError::none) << text;
            EXPECT_EQ(p.line.name, "a.b");
            EXPECT_EQ(p.line.value, "1");
            EXPECT_EQ(p.line.timestamp, "2");
            EXPECT_FALSE(p.line.canonical);
        }
        EXPECT_EQ(parse("a" + w + "b 1 2").error, LineError::field_count) << ws;
        EXPECT_EQ(parse(w + w).error, LineError::empty) << ws;
        EXPECT_EQ(check_name("a" + w + "b"), LineError::bad_name) << ws;
    }
}

TEST(ParseLine, PythonOnlyNumberFormsAreRejected) {
    // carbon's float() reads these; other Graphite destinations do not, and polymur forwards the
    // text as written, so it refuses them.
    for (const char* n : {"1_000", "1_0.5", "\xef\xbc\x91\xef\xbc\x92", "\xd9\xa1", "1\xef\xbc\x90"}) {
        EXPECT_EQ(parse(std::string("a.b ") + n + " 2").error, LineError::bad_value) << n;
        EXPECT_EQ(parse(std::string("a.b 1 ") + n).error, LineError::bad_timestamp) << n;
    }
}

TEST(ParseLine, ValueOverflowIsAcceptedAsCarbonReadsIt) {
    // carbon reads 1e309 as inf and 1e-400 as 0, and stores them; polymur forwards them as written.
    for (const std::string& v : {std::string("1e309"), std::string("-1e309"), std::string("+1e400"),
                                 std::string("1e-400"), std::string(400, '9'), "0." + std::string(400, '0') + "1"}) {
        auto p = parse("a.b " + v + " 2");
        ASSERT_EQ(p.error, LineError::none) << v;
        EXPECT_EQ(p.line.value, v);
        EXPECT_EQ(parse_line_general("a.b " + v + " 2", p.line), LineError::none) << v;
    }
}

TEST(ParseLine, TimestampBetweenMinusTwoAndMinusOneMeansNow) {
    // carbon: int(ts) == -1 means now.
    for (const char* t : {"-1", "-1.0", "-1e0", "-1.5", "-1.999", "-0.1e1", "-10e-1"}) {
        auto p = parse(std::string("a.b 1 ") + t);
        ASSERT_EQ(p.error, LineError::none) << t;
        EXPECT_TRUE(p.line.timestamp_is_now) << t;
        EXPECT_FALSE(p.line.canonical);
    }
    for (const char* t : {"-2", "-0.999", "-3.5"})
        EXPECT_EQ(parse(std::string("a.b 1 ") + t).error, LineError::bad_timestamp) << t;
    for (const char* t : {"-0", "-0.0", "-1e-400", "1e-400", "1e300"}) {
        auto p = parse(std::string("a.b 1 ") + t);
        ASSERT_EQ(p.error, LineError::none) << t;
        EXPECT_FALSE(p.line.timestamp_is_now) << t;
        EXPECT_EQ(p.line.timestamp, t);
    }
}

TEST(ParseLine, CheckName) {
    EXPECT_EQ(check_name("a.b;tag=v"), LineError::none);
    EXPECT_EQ(check_name("m\xc3\xa9trique"), LineError::none);
    EXPECT_EQ(check_name(""), LineError::bad_name);
    EXPECT_EQ(check_name("a b"), LineError::bad_name);
    EXPECT_EQ(check_name("a\tb"), LineError::bad_name);
    EXPECT_EQ(check_name("a\x01"), LineError::bad_name);
    EXPECT_EQ(check_name(std::string("a\0", 2)), LineError::bad_name);
    EXPECT_EQ(check_name("a\x7f"), LineError::bad_name);
}

TEST(ParseLine, OutputUntouchedOnError) {
    ParsedLine out;
    out.name = "keep";
    out.canonical = true;
    EXPECT_EQ(parse_line("a.b nan 2", out), LineError::bad_value);
    EXPECT_EQ(out.name, "keep");
    EXPECT_TRUE(out.canonical);
}

TEST(ParseLine, Describe) {
    EXPECT_STREQ(describe(LineError::none), "valid");
    EXPECT_STREQ(describe(LineError::empty), "empty line");
    EXPECT_STREQ(describe(LineError::field_count), "expected 3 fields: name value timestamp");
    EXPECT_STREQ(describe(LineError::bad_utf8), "not valid UTF-8");
    EXPECT_STREQ(describe(LineError::bad_name), "control character in metric name");
    EXPECT_STREQ(describe(LineError::bad_value), "value is not a number");
    EXPECT_STREQ(describe(LineError::bad_timestamp), "timestamp is not a non-negative number or -1");
}

}  // namespace
}  // namespace polymur::protocol

namespace polymur::protocol {
namespace {

// splitmix64: the same random cases on every run.
struct SplitMix {
    uint64_t state;
    uint64_t operator()() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

// The fast path only takes lines the general parser takes the same way; every case here runs through
// both.
void expect_same(const std::string& line, size_t& accepted_fast) {
    ParsedLine fast, general;
    LineError a = parse_line(line, fast), b = parse_line_general(line, general);
    ASSERT_EQ(a, b) << "'" << line << "'";
    if (a != LineError::none) return;
    EXPECT_EQ(fast.name, general.name) << line;
    EXPECT_EQ(fast.value, general.value) << line;
    EXPECT_EQ(fast.timestamp, general.timestamp) << line;
    EXPECT_EQ(fast.timestamp_is_now, general.timestamp_is_now) << line;
    EXPECT_EQ(fast.canonical, general.canonical) << line;
    accepted_fast += fast.canonical;
}

TEST(ParseLine, FastPathAgreesWithTheGeneralParser) {
    const char* names[] = {
        "a.b", "x",           "tagged;a=b", "utf8.\xc3\xa9t\xc3\xa9", "tab\tname", "ctl\x01name",    "del\x7f",
        "",    "bad\xffutf8", "c1\xc2\x9b", "nbsp\xc2\xa0",           "~!",        "sur\xed\xa0\x80"};
    const char* values[] = {"1",        "-1",  "1.5", ".5",   "5.", "-0",      "1e3",   "1E-3",   "2.5e+10",
                            "+1",       "nan", "inf", "-inf", "1e", "e3",      "--1",   "1..2",   "0x10",
                            "",         "1_0", "-.5", "-",    ".",  "1.5e3.2", "1e309", "1e-400", "\xef\xbc\x91",
                            "Infinity", "1.e5"};
    const char* stamps[] = {"1700000000",
                            "-1",
                            "0",
                            "1.5",
                            "1e9",
                            "-2",
                            "+5",
                            "abc",
                            "",
                            "12345678901234567890",
                            "123456789012345678",
                            "1234567890123456789",
                            "-1.0",
                            "017",
                            "-1.5",
                            "1e309",
                            "1_7"};
    const char* seps[] = {" ", "  ", "\t", "\r", "\xc2\xa0", "\x0b"};
    size_t compared = 0, fast = 0;
    for (const char* n : names)
        for (const char* v : values)
            for (const char* t : stamps)
                for (const char* s1 : seps)
                    for (const char* s2 : seps)
                        for (const char* tail : {"", "\r", " ", "\xe3\x80\x80"}) {
                            expect_same(std::string(n) + s1 + v + s2 + t + tail, fast);
                            ++compared;
                        }
    EXPECT_GT(compared, 500000u);
    EXPECT_GT(fast, 1000u);  // the fast path was taken, not only the general parser
}

// Random lines from fragments that sit on the edges of both parsers.
TEST(ParseLine, FastPathAgreesOnRandomLines) {
    const char* fragments[] = {"a",
                               "b.c",
                               " ",
                               " ",
                               " ",
                               "\t",
                               "\r",
                               "1",
                               "0",
                               "9",
                               ".",
                               "-",
                               "+",
                               "e",
                               "E",
                               "-1",
                               "inf",
                               "nan",
                               "_",
                               "\xc3\xa9",
                               "\xc2\xa0",
                               "\xc2\x85",
                               "\xff",
                               "\xc3",
                               "\x01",
                               "\x7f",
                               "\xe3\x80\x80",
                               "1700000000",
                               "12345678901234567890",
                               "\xef\xbc\x91",
                               ";",
                               "=",
                               "x"};
    SplitMix next {0x9e3779b97f4a7c15ull};
    size_t fast = 0;
    for (int i = 0; i < 200000; ++i) {
        std::string line;
        for (uint64_t k = next() % 12; k > 0; --k) line += fragments[next() % std::size(fragments)];
        expect_same(line, fast);
    }
    EXPECT_GT(fast, 5u);
}

// Runs `check` with the fast path on each set of registers this CPU has (SSE2, AVX2), then the widest again.
template <class Check>
void on_each_vector_width(Check&& check) {
    for (LineVectors vectors : {LineVectors::sse2, LineVectors::avx2}) {
        if (!use_line_vectors(vectors)) continue;
        SCOPED_TRACE(vectors == LineVectors::avx2 ? "avx2" : "sse2");
        check();
    }
    if (!use_line_vectors(LineVectors::avx2)) use_line_vectors(LineVectors::sse2);
}

// The fast path reads lines of 16 to 64 bytes in 16- or 32-byte steps and others with memchr: lines of
// every length from 5 to 80 bytes, with a third space, a tab, a control, UTF-8 or a non-digit at
// every position, agree with the general parser, and the plain ones are canonical.
void agree_at_every_length_and_position() {
    size_t fast = 0, plain = 0;
    for (size_t name_len = 1; name_len <= 60; ++name_len)
        for (const char* tail : {" 1.5 1700000000", " 7 17", " -2e3 123456789012345678"}) {
            const std::string line = std::string(name_len, 'n') + tail;
            expect_same(line, fast);
            ++plain;
            for (size_t at = 0; at < line.size(); ++at)
                for (const char* odd : {" ", "\t", "\x01", "\xc3\xa9", "x", "\x7f", "/", ":", "!", "~"}) {
                    std::string changed = line;
                    changed.replace(at, 1, odd);
                    expect_same(changed, fast);
                }
        }
    EXPECT_GE(fast, plain);
}

TEST(ParseLine, FastPathAgreesAtEveryLengthAndPosition) {
    on_each_vector_width([] { agree_at_every_length_and_position(); });
}

// Every value of up to 4 characters from those that decide its form (digits and the bytes either side of
// them, '.', signs, exponents, a letter, a space), in lines whose value falls at each offset of a 16-byte step and whose length is
// under, inside and over the 16-64 bytes the masks read: the fast path takes only what the general
// parser takes, with the same fields.
void agree_on_every_short_value_shape() {
    const char alphabet[] = {'0', '9', '.', '-', '+', 'e', 'E', 'x', ' ', '/', ':'};  // '/' and ':' next to the digits
    std::vector<std::string> values;
    std::string value;
    auto grow = [&](auto&& self, size_t left) -> void {
        values.push_back(value);
        if (!left) return;
        for (char c : alphabet) {
            value.push_back(c);
            self(self, left - 1);
            value.pop_back();
        }
    };
    grow(grow, 4);
    size_t fast = 0;
    for (size_t name_len : {1, 5, 11, 15, 16, 30, 47, 60})
        for (const char* stamp : {"1700000000", "7", "", "1234567890123456789", "17x"})
            for (const std::string& v : values) expect_same(std::string(name_len, 'n') + " " + v + " " + stamp, fast);
    EXPECT_GT(values.size(), 16000u);
    EXPECT_GT(fast, 5000u);
}

TEST(ParseLine, FastPathAgreesOnEveryShortValueShape) {
    on_each_vector_width([] { agree_on_every_short_value_shape(); });
}

// scan_lines on a buffer of lines: every '\n' found, in order, and a line it calls canonical is one
// parse_line accepts as canonical with the same fields. Returns how many it found canonical.
size_t expect_scan_agrees(const std::string& buffer) {
    std::vector<ScannedLine> scanned(buffer.size() + 1);
    const size_t count = scan_lines(buffer.data(), buffer.size(), scanned.data());
    size_t found = 0, start = 0, canonical = 0;
    for (size_t at = buffer.find('\n'); at != std::string::npos; at = buffer.find('\n', at + 1), ++found) {
        EXPECT_LT(found, count);
        if (found >= count) break;
        const ScannedLine& s = scanned[found];
        EXPECT_EQ(s.end, at);
        const std::string_view line(buffer.data() + start, at - start);
        if (s.canonical) {
            ++canonical;
            ParsedLine expected, got;
            EXPECT_EQ(parse_line(line, expected), LineError::none) << "'" << line << "'";
            EXPECT_TRUE(expected.canonical) << "'" << line << "'";
            scanned_fields(line.data(), s, line.size(), got);
            EXPECT_EQ(got.name, expected.name) << line;
            EXPECT_EQ(got.value, expected.value) << line;
            EXPECT_EQ(got.timestamp, expected.timestamp) << line;
            EXPECT_EQ(got.name.data(), expected.name.data()) << line;
            EXPECT_FALSE(got.timestamp_is_now);
        }
        start = at + 1;
    }
    EXPECT_EQ(count, found);
    return canonical;
}

// Plain lines of every length around the 64 bytes the scan parses, starting at every offset of a 64-byte
// block, each also changed at every position: the scan calls canonical exactly the plain ones of at most
// 64 bytes, and nothing parse_line would not.
void scan_agrees_at_every_length_and_offset() {
    for (size_t pad = 0; pad < 64; pad += 7)
        for (size_t name_len = 1; name_len <= 62; ++name_len) {
            const std::string line = std::string(name_len, 'n') + " 1.5 1700000000";
            std::string buffer = std::string(pad, 'p') + "\n" + line + "\n" + line + "\n";
            const size_t expected = line.size() <= 64 ? 2 : 0;
            EXPECT_EQ(expect_scan_agrees(buffer), expected) << buffer;
            for (size_t at = 0; at < line.size(); ++at)
                for (const char* odd : {" ", "\t", "\x01", "\xc3\xa9", "x", "\r", "-", "."}) {
                    std::string changed = line;
                    changed.replace(at, 1, odd);
                    expect_scan_agrees(std::string(pad, 'p') + "\n" + changed + "\n" + line + "\n" + changed);
                }
        }
}

TEST(ScanLines, AgreesWithParseLineAtEveryLengthAndOffset) {
    on_each_vector_width([] { scan_agrees_at_every_length_and_offset(); });
}

// Random buffers of lines from the fragments both parsers find hard, empty lines and a last line without
// its '\n' included, of every length up to a few blocks.
TEST(ScanLines, AgreesWithParseLineOnRandomBuffers) {
    const char* fragments[] = {
        "a",        "b.c",      " ",    " ",          " ",   "\t",
        "\r",       "\n",       "\n",   "1",          "0",   "9",
        ".",        "-",        "+",    "e",          "inf", "\xc3\xa9",
        "\xc2\xa0", "\xff",     "\x01", "1700000000", "x",   "metric.name.long.enough 1.25 1700000000\n",
        "a 1 2\n",  "a 1 2\r\n"};
    on_each_vector_width([&] {
        SplitMix next {0x2545f4914f6cdd1dull};
        size_t canonical = 0;
        for (int i = 0; i < 20000; ++i) {
            std::string buffer;
            for (uint64_t k = next() % 60; k > 0; --k) buffer += fragments[next() % std::size(fragments)];
            canonical += expect_scan_agrees(buffer);
        }
        EXPECT_GT(canonical, 10000u);
    });
}

TEST(ScanLines, EmptyAndNewlineOnlyBuffers) {
    EXPECT_EQ(expect_scan_agrees(""), 0u);
    EXPECT_EQ(expect_scan_agrees(std::string(200, '\n')), 0u);
    EXPECT_EQ(expect_scan_agrees("no newline at all 1 2"), 0u);
}

// tests/data/lines: one file per row of the README's table (also the fuzz target's seeds). Every line
// gets the row's decision, on both parsers.
TEST(ParseLine, SeedFilesGetTheirRowsDecision) {
    const std::map<std::string, LineError> rows = {{"canonical", LineError::none},
                                                   {"crlf", LineError::none},
                                                   {"tabs-and-runs", LineError::none},
                                                   {"unicode-spaces", LineError::none},
                                                   {"ascii-separators", LineError::none},
                                                   {"cr-inside", LineError::none},
                                                   {"invalid-utf8", LineError::bad_utf8},
                                                   {"overlong-nul", LineError::bad_utf8},
                                                   {"surrogate", LineError::bad_utf8},
                                                   {"past-10ffff", LineError::bad_utf8},
                                                   {"truncated-utf8", LineError::bad_utf8},
                                                   {"utf8-name", LineError::none},
                                                   {"c0-control", LineError::bad_name},
                                                   {"c1-control", LineError::bad_name},
                                                   {"nul", LineError::bad_name},
                                                   {"value-forms", LineError::none},
                                                   {"value-invalid", LineError::bad_value},
                                                   {"timestamp-now", LineError::none},
                                                   {"timestamp-invalid", LineError::bad_timestamp}};
    size_t files = 0, fast = 0;
    for (const auto& entry : std::filesystem::directory_iterator(POLYMUR_TEST_DATA_DIR "/lines")) {
        if (entry.path().extension() != ".txt") continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        const std::string stem = entry.path().stem().string();
        auto row = rows.find(stem);
        std::string line;
        for (std::istringstream lines(text.str()); std::getline(lines, line);) {
            expect_same(line, fast);
            ParsedLine parsed;
            if (row != rows.end()) {
                EXPECT_EQ(parse_line(line, parsed), row->second) << stem << ": " << line;
            }
        }
        ++files;
    }
    EXPECT_GE(files, rows.size());
}

}  // namespace
}  // namespace polymur::protocol
