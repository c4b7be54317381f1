// protocol/pickle: frames made by Python's pickle in every protocol (tests/data/pickle/gen_pickle_seeds.py
// writes them into the fuzz seed corpus, with what each decodes to), hand-made Python 2 frames,
// hostile frames, and each opcode path on its own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/pickle.hpp"

using namespace polymur::protocol;
namespace fs = std::filesystem;

namespace {

const fs::path kSeeds = fs::path(POLYMUR_TEST_DATA_DIR) / "fuzz" / "fuzz_pickle";
const fs::path kExpected = fs::path(POLYMUR_TEST_DATA_DIR) / "pickle" / "expected";

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Row {
    std::string name;
    double timestamp, value;
};

std::vector<Row> decode_all(PickleReader& reader, std::string_view payload, PickleError& error, size_t& malformed) {
    std::vector<Row> rows;
    malformed = 0;
    error = reader.decode(payload);
    if (error != PickleError::none) return rows;
    PickleMetric m;
    for (;;) {
        PickleReader::Next n = reader.next(m);
        if (n == PickleReader::Next::end) break;
        if (n == PickleReader::Next::malformed) {
            ++malformed;
            continue;
        }
        rows.push_back({std::string(m.name), std::strtod(std::string(m.timestamp).c_str(), nullptr),
                        std::strtod(std::string(m.value).c_str(), nullptr)});
    }
    return rows;
}

template <size_t N>
std::string bytes(const char (&s)[N]) {
    return std::string(s, N - 1);
}

PickleError decode_error(std::string_view payload) {
    PickleReader reader;
    return reader.decode(payload);
}

std::string_view payload_of(const std::string& frame) {
    EXPECT_GE(frame.size(), 4u);
    EXPECT_EQ(pickle_frame_length(frame.data()), frame.size() - 4);
    return std::string_view(frame).substr(4);
}

TEST(Pickle, EverySeedFromPythonDecodesToWhatPythonPickled) {
    PickleReader reader;  // one reader for every frame: nothing may leak from one frame into the next
    size_t checked = 0;
    for (const auto& entry : fs::directory_iterator(kExpected)) {
        std::string frame = slurp(kSeeds / entry.path().filename());
        PickleError error;
        size_t malformed;
        auto rows = decode_all(reader, payload_of(frame), error, malformed);
        ASSERT_EQ(error, PickleError::none) << entry.path().filename() << ": " << describe(error);
        std::istringstream expected(slurp(entry.path()));
        std::string line;
        size_t k = 0;
        while (std::getline(expected, line)) {
            size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1);
            ASSERT_LT(k, rows.size()) << entry.path().filename();
            EXPECT_EQ(rows[k].name, line.substr(0, t1)) << entry.path().filename();
            EXPECT_EQ(rows[k].timestamp, std::strtod(line.substr(t1 + 1, t2 - t1 - 1).c_str(), nullptr))
                << rows[k].name;
            EXPECT_EQ(rows[k].value, std::strtod(line.substr(t2 + 1).c_str(), nullptr)) << rows[k].name;
            ++k;
        }
        EXPECT_EQ(k, rows.size()) << entry.path().filename();
        ++checked;
    }
    EXPECT_GE(checked, 20u);  // protocols 0-5, tuples and lists, bytes, Python 2, carbon's client
}

TEST(Pickle, HostileSeedsAreRefused) {
    const std::pair<const char*, PickleError> cases[] = {
        {"evil_global_reduce", PickleError::forbidden_opcode},
        {"evil_stack_global", PickleError::forbidden_opcode},
        {"evil_inside_list", PickleError::forbidden_opcode},
        {"evil_build", PickleError::unknown_opcode},
        {"truncated", PickleError::truncated},
        {"unknown_dict", PickleError::unknown_opcode},
        {"bad_get", PickleError::bad_argument},
        {"huge_put", PickleError::bad_argument},
        {"long_unicode_length", PickleError::truncated},
        {"not_a_list", PickleError::bad_structure},
        {"trailing_bytes", PickleError::trailing_bytes},
        {"appends_without_mark", PickleError::bad_structure},
        {"marks_only", PickleError::bad_structure},
    };
    for (const auto& [name, error] : cases) {
        std::string frame = slurp(kSeeds / name);
        EXPECT_EQ(decode_error(payload_of(frame)), error) << name;
    }
}

TEST(Pickle, EveryPrefixOfAValidFrameIsAnErrorNeverACrash) {
    for (int proto = 0; proto <= 5; ++proto) {
        std::string frame = slurp(kSeeds / ("proto" + std::to_string(proto) + "_tuples"));
        std::string_view payload = payload_of(frame);
        PickleReader reader;
        for (size_t n = 0; n < payload.size(); ++n)
            EXPECT_NE(reader.decode(payload.substr(0, n)), PickleError::none) << proto << " " << n;
        EXPECT_EQ(reader.decode(payload), PickleError::none);
    }
}

TEST(Pickle, ElementsThatAreNotMetricsAreSkippedOneByOne) {
    std::string frame = slurp(kSeeds / "malformed_elements");
    PickleReader reader;
    PickleError error;
    size_t malformed;
    auto rows = decode_all(reader, payload_of(frame), error, malformed);
    ASSERT_EQ(error, PickleError::none);
    EXPECT_EQ(malformed, 4u);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].name, "ok");
}

// Single opcode paths, by hand (protocol 2 framing unless said).
TEST(Pickle, OpcodePaths) {
    // LIST after MARK, APPEND, TUPLE after MARK, INT, FLOAT text kept as written.
    {
        PickleReader r;
        ASSERT_EQ(r.decode("(lp0\n(Va.b\np1\n(I1700000000\nF0.25\ntp2\ntp3\na."), PickleError::none);
        PickleMetric m;
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.name, "a.b");
        EXPECT_EQ(m.timestamp, "1700000000");
        EXPECT_EQ(m.value, "0.25");
        EXPECT_EQ(r.next(m), PickleReader::Next::end);
    }
    // UNICODE raw-unicode-escape: Latin-1 bytes and \u escapes become UTF-8; GET of a memoized tuple.
    {
        PickleReader r;
        ASSERT_EQ(r.decode("(lp0\n(V\xe9\\u6e29\\u005c\np1\n(I1\nI2\ntp2\ntp3\na(g1\ng2\ntp4\na."), PickleError::none);
        PickleMetric m;
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.name, "\xc3\xa9\xe6\xb8\xa9\\");
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.name, "\xc3\xa9\xe6\xb8\xa9\\");
        EXPECT_EQ(m.value, "2");
    }
    // BININT1/BININT2/BININT (negative), BINFLOAT formatted as Python's repr, TUPLE1/TUPLE3 are not pairs.
    {
        PickleReader r;
        std::string p = bytes(
            "\x80\x02]q\x00(X\x01\x00\x00\x00"
            "aJ\xff\xff\xff\xffG\x3f\xf8\x00\x00\x00\x00\x00\x00\x86\x86"
            "X\x01\x00\x00\x00"
            "bM\x01\x01G\x44\x15\xaf\x1d\x78\xb5\x8c\x40\x86\x86"
            "X\x01\x00\x00\x00"
            "cK\x01\x85\x86"
            "e.");
        ASSERT_EQ(r.decode(p), PickleError::none);
        PickleMetric m;
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.timestamp, "-1");
        EXPECT_EQ(m.value, "1.5");
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.timestamp, "257");
        EXPECT_EQ(m.value, "1e+20");  // as Python's repr()
        EXPECT_EQ(r.next(m), PickleReader::Next::malformed);
        EXPECT_EQ(r.next(m), PickleReader::Next::end);
    }
    // FRAME and MEMOIZE (protocol 4), SHORT_BINUNICODE, LONG1 of 0, 9 bytes (too big: not a metric).
    {
        PickleReader r;
        std::string p = bytes(
            "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x01x\x94\x8a\x00\x8a\x00\x86\x86"
            "\x8c\x01y\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01K\x00\x86\x86"
            "e.");
        ASSERT_EQ(r.decode(p), PickleError::none);
        PickleMetric m;
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.timestamp, "0");
        EXPECT_EQ(r.next(m), PickleReader::Next::malformed);
    }
    // NEWTRUE/NEWFALSE as 1/0, NONE not a number, a tuple result (not a list) is read too.
    {
        PickleReader r;
        std::string p = bytes(
            "\x80\x02X\x01\x00\x00\x00"
            "a\x88\x89\x86\x86X\x01\x00\x00\x00"
            "bN\x88\x86\x86\x86.");
        ASSERT_EQ(r.decode(p), PickleError::none);
        PickleMetric m;
        ASSERT_EQ(r.next(m), PickleReader::Next::metric);
        EXPECT_EQ(m.timestamp, "1");
        EXPECT_EQ(m.value, "0");
        EXPECT_EQ(r.next(m), PickleReader::Next::malformed);
    }
    // A list appended into itself is no metric and no loop.
    {
        PickleReader r;
        ASSERT_EQ(r.decode(bytes("\x80\x02]q\x00h\x00"
                                 "a.")),
                  PickleError::none);
        PickleMetric m;
        EXPECT_EQ(r.next(m), PickleReader::Next::malformed);
        EXPECT_EQ(r.next(m), PickleReader::Next::end);
    }
    EXPECT_EQ(decode_error(""), PickleError::empty);
    EXPECT_EQ(decode_error(bytes("\x80\x06].")), PickleError::bad_argument);    // protocol 6 does not exist
    EXPECT_EQ(decode_error("(lp0\n(Ia\nI1\nt."), PickleError::bad_argument);    // INT that is no number
    EXPECT_EQ(decode_error("(S'unterminated\nl."), PickleError::bad_argument);  // STRING without its quote
    EXPECT_EQ(decode_error("(V\\u12\nl."), PickleError::bad_argument);          // short \u escape
    EXPECT_EQ(decode_error("(lp99999999\n."), PickleError::bad_argument);       // memo index past the frame
    EXPECT_EQ(decode_error(bytes("\x80\x02]\x8b\xff\xff\xff\xff.")), PickleError::bad_argument);  // LONG4 < 0
    EXPECT_EQ(decode_error(bytes("\x80\x02]\x86.")), PickleError::bad_structure);                 // TUPLE2 of one
    EXPECT_EQ(decode_error(bytes("\x80\x02]K")), PickleError::truncated);
    EXPECT_EQ(decode_error("c__builtin__\nlist\n)R."), PickleError::forbidden_opcode);
    for (char op : bytes("iobPQ\x81\x92\x82\x83\x84\x93R"))
        EXPECT_EQ(decode_error(std::string("]") + op + "."), PickleError::forbidden_opcode) << int(op);
    for (char op : bytes("}du0123\x8f\x90\x91\x96\x97\x98"))
        EXPECT_EQ(decode_error(std::string("]") + op + "."), PickleError::unknown_opcode) << int(op);
}

// The long forms Python uses past 255 bytes or 256 memo entries, by hand: BINBYTES, BINUNICODE8,
// BINBYTES8, LONG_BINPUT/LONG_BINGET, LONG4; EMPTY_TUPLE and TUPLE3 are no metric.
TEST(Pickle, LongFormsOfLengthsAndMemoIndices) {
    PickleReader r;
    std::string p = bytes(
        "\x80\x05]r\x00\x00\x00\x00("
        "B\x03\x00\x00\x00"
        "a.b"
        "\x8d\x02\x00\x00\x00\x00\x00\x00\x00"
        "17"
        "\x8e\x01\x00\x00\x00\x00\x00\x00\x00"
        "5"
        "r\x05\x00\x00\x00\x86\x86"
        "\x8c\x01"
        "c\x8b\x02\x00\x00\x00\x00\x01j\x05\x00\x00\x00\x86\x86"
        ")K\x01K\x02K\x03\x87"
        "e.");
    ASSERT_EQ(r.decode(p), PickleError::none) << describe(r.decode(p));
    PickleMetric m;
    ASSERT_EQ(r.next(m), PickleReader::Next::metric);
    EXPECT_EQ(m.name, "a.b");
    EXPECT_EQ(m.timestamp, "17");  // str and bytes holding a number, as carbon's float() takes them
    EXPECT_EQ(m.value, "5");
    ASSERT_EQ(r.next(m), PickleReader::Next::metric);
    EXPECT_EQ(m.name, "c");
    EXPECT_EQ(m.timestamp, "256");                        // LONG4 of two bytes
    EXPECT_EQ(m.value, "5");                              // the memoized point's value, through LONG_BINGET
    EXPECT_EQ(r.next(m), PickleReader::Next::malformed);  // ()
    EXPECT_EQ(r.next(m), PickleReader::Next::malformed);  // (1, 2, 3)
    EXPECT_EQ(r.next(m), PickleReader::Next::end);
}

TEST(Pickle, LooksLikePickleFrame) {
    EXPECT_TRUE(looks_like_pickle_frame(bytes("\x00\x00\x01\x00\x80\x02]q")));
    EXPECT_TRUE(looks_like_pickle_frame(bytes("\x00\x00\x01\x00(lp0\n")));
    EXPECT_TRUE(looks_like_pickle_frame(bytes("\x00\x00\x01\x00]q\x00(")));
    EXPECT_FALSE(looks_like_pickle_frame("a.b 1 1700000000\n"));
    EXPECT_FALSE(looks_like_pickle_frame(bytes("\x00\x00\x01")));
}

}  // namespace
