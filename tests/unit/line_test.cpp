#include "protocol/line.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

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

TEST(ParseLine, CarriageReturnInsideIsNotDropped) {
    // Only a trailing '\r' is a line ending; one before the timestamp makes the value invalid.
    EXPECT_EQ(parse("a.b 1\r 2").error, LineError::bad_value);
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
    for (const char* v : {"inf", "-inf", "+inf", "Infinity"}) {
        auto p = parse(std::string("a.b ") + v + " 2");
        EXPECT_EQ(p.error, LineError::none) << v;
        EXPECT_EQ(p.line.value, v);
    }
}

TEST(ParseLine, NonFiniteTimestampIsRejected) {
    EXPECT_EQ(parse("a.b 1 inf").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 nan").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -inf").error, LineError::bad_timestamp);
}

TEST(ParseLine, NegativeTimestampOtherThanMinusOneIsRejected) {
    EXPECT_EQ(parse("a.b 1 -2").error, LineError::bad_timestamp);
    EXPECT_EQ(parse("a.b 1 -0.5").error, LineError::bad_timestamp);
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
    EXPECT_EQ(parse(std::string("a\x01" "b 1 2")).error, LineError::bad_name);
    EXPECT_EQ(parse(std::string("a\x7f" "b 1 2")).error, LineError::bad_name);
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
    EXPECT_STREQ(describe(LineError::bad_name), "control character in metric name");
    EXPECT_STREQ(describe(LineError::bad_value), "value is not a number");
    EXPECT_STREQ(describe(LineError::bad_timestamp), "timestamp is not a non-negative number or -1");
}

}  // namespace
}  // namespace polymur::protocol

namespace polymur::protocol {
namespace {

// The fast path must agree with the general parser on every line, valid or not.
TEST(ParseLine, FastPathAgreesWithTheGeneralParser) {
    const char* names[] = {"a.b", "x", "tagged;a=b", "utf8.\xc3\xa9t\xc3\xa9", "tab\tname", "ctl\x01name", "del\x7f", ""};
    const char* values[] = {"1", "-1", "1.5", ".5", "5.", "-0", "1e3", "1E-3", "2.5e+10", "+1", "nan", "inf", "-inf",
                            "1e", "e3", "--1", "1..2", "0x10", "", "1_0", "-.5", "-", ".", "1.5e3.2"};
    const char* stamps[] = {"1700000000", "-1", "0", "1.5", "1e9", "-2", "+5", "abc", "", "12345678901234567890",
                            "123456789012345678", "-1.0", "017"};
    const char* seps[] = {" ", "  ", "\t"};
    size_t compared = 0;
    for (const char* n : names)
        for (const char* v : values)
            for (const char* t : stamps)
                for (const char* s1 : seps)
                    for (const char* s2 : seps)
                        for (const char* tail : {"", "\r", " "}) {
                            std::string line = std::string(n) + s1 + v + s2 + t + tail;
                            ParsedLine fast, general;
                            LineError a = parse_line(line, fast), b = parse_line_general(line, general);
                            ASSERT_EQ(a, b) << "'" << line << "'";
                            if (a == LineError::none) {
                                EXPECT_EQ(fast.name, general.name) << line;
                                EXPECT_EQ(fast.value, general.value) << line;
                                EXPECT_EQ(fast.timestamp, general.timestamp) << line;
                                EXPECT_EQ(fast.timestamp_is_now, general.timestamp_is_now) << line;
                                EXPECT_EQ(fast.canonical, general.canonical) << line;
                            }
                            ++compared;
                        }
    EXPECT_GT(compared, 50000u);
}

}  // namespace
}  // namespace polymur::protocol
