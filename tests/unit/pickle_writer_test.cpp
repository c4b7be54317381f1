// protocol/pickle_writer: the frames polymur sends to pickle:// destinations, read back by our own
// pickle reader and by Python's pickle itself (what carbon-cache runs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/line.hpp"
#include "protocol/pickle.hpp"
#include "protocol/pickle_writer.hpp"
#include "temp_dir.hpp"

using namespace polymur::protocol;

namespace {

struct Metric {
    std::string name;
    double timestamp, value;
};

// Splits a buffer of frames and decodes each with PickleReader.
std::vector<Metric> decode_frames(const std::string& bytes, size_t max_payload, size_t* frames = nullptr) {
    std::vector<Metric> out;
    size_t at = 0, count = 0;
    while (at < bytes.size()) {
        EXPECT_LE(at + 4, bytes.size());
        uint32_t length = 0;
        for (int i = 0; i < 4; ++i) length = length << 8 | static_cast<uint8_t>(bytes[at + i]);
        EXPECT_LE(length, max_payload);
        EXPECT_LE(at + 4 + length, bytes.size());
        PickleReader reader;
        EXPECT_EQ(reader.decode(std::string_view(bytes).substr(at + 4, length)), PickleError::none);
        PickleMetric m;
        while (reader.next(m) == PickleReader::Next::metric) {
            Metric row {std::string(m.name), 0, 0};
            EXPECT_TRUE(carbon_float(m.timestamp, row.timestamp)) << m.timestamp;
            EXPECT_TRUE(carbon_float(m.value, row.value)) << m.value;
            out.push_back(row);
        }
        at += 4 + length;
        ++count;
    }
    if (frames) *frames = count;
    return out;
}

TEST(PickleWriter, FramesReadBackExactly) {
    std::string out;
    PickleFrameWriter writer(out, 1 << 20);
    const std::vector<Metric> metrics = {{"a.b.c", 1700000000, 1.5},
                                         {"caf\xc3\xa9.\xe2\x82\xac", 1700000001, -0.1},
                                         {"x", 0, 1e308},
                                         {"y", 1700000002.5, -INFINITY}};
    for (const Metric& m : metrics) writer.add(m.name, m.timestamp, m.value);
    writer.finish();
    EXPECT_EQ(writer.frames(), 1u);
    std::vector<Metric> back = decode_frames(out, 1 << 20);
    ASSERT_EQ(back.size(), metrics.size());
    for (size_t i = 0; i < metrics.size(); ++i) {
        EXPECT_EQ(back[i].name, metrics[i].name);
        EXPECT_EQ(back[i].timestamp, metrics[i].timestamp);
        EXPECT_EQ(back[i].value, metrics[i].value);
    }
}

TEST(PickleWriter, FullFramesAreEndedAndNoFrameIsEmpty) {
    std::string out;
    const size_t max_payload = 200;
    PickleFrameWriter writer(out, max_payload);
    writer.finish();  // nothing added: no frame
    EXPECT_TRUE(out.empty());
    for (int i = 0; i < 100; ++i) writer.add("metric." + std::to_string(i), 1700000000 + i, i);
    writer.finish();
    size_t frames = 0;
    std::vector<Metric> back = decode_frames(out, max_payload, &frames);
    EXPECT_EQ(frames, writer.frames());
    EXPECT_GT(frames, 10u);
    ASSERT_EQ(back.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(back[i].name, "metric." + std::to_string(i));
    EXPECT_TRUE(writer.fits_a_frame(std::string(max_payload - 31, 'n')));
    EXPECT_FALSE(writer.fits_a_frame(std::string(max_payload - 30, 'n')));
}

TEST(PickleWriter, ReusedBufferDoesNotGrow) {
    std::string out;
    out.reserve(64 * 1024);
    const size_t capacity = out.capacity();
    for (int round = 0; round < 3; ++round) {
        out.clear();
        PickleFrameWriter writer(out, 16 * 1024);
        for (int i = 0; i < 1000; ++i) writer.add("some.metric.name", 1700000000, i);
        writer.finish();
    }
    EXPECT_EQ(out.capacity(), capacity);
}

// Python's pickle (what carbon's receiver runs) reads the frames as carbon-relay's own.
TEST(PickleWriter, PythonReadsWhatCarbonRelayWouldSend) {
    std::string out;
    PickleFrameWriter writer(out, 1 << 20);
    writer.add("a.b", 1700000000, 1.5);
    writer.add("caf\xc3\xa9", 1700000001, 2);
    writer.finish();
    polymur::test::TempDir dir;
    const std::string path = dir.path() + "/frames";
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(out.data(), 1, out.size(), f);
    std::fclose(f);
    const std::string command =
        "python3 -c \"import pickle,struct,sys; d=open(sys.argv[1],'rb').read(); n=struct.unpack('!L',d[:4])[0]; "
        "assert len(d)==4+n; print(repr(pickle.loads(d[4:])))\" " +
        path;
    FILE* p = popen(command.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char line[512] = {};
    std::string printed;
    while (std::fgets(line, sizeof line, p)) printed += line;
    EXPECT_EQ(pclose(p), 0);
    EXPECT_EQ(printed, "[('a.b', (1700000000.0, 1.5)), ('caf\xc3\xa9', (1700000001.0, 2.0))]\n");
}

TEST(CarbonFloat, AsPythonFloat) {
    double v = 0;
    ASSERT_TRUE(carbon_float("1.5", v));
    EXPECT_EQ(v, 1.5);
    ASSERT_TRUE(carbon_float("+2e3", v));
    EXPECT_EQ(v, 2000);
    ASSERT_TRUE(carbon_float("-1e400", v));
    EXPECT_EQ(v, -INFINITY);
    ASSERT_TRUE(carbon_float("1e-400", v));
    EXPECT_EQ(v, 0);
    ASSERT_TRUE(carbon_float("-Infinity", v));
    EXPECT_EQ(v, -INFINITY);
    ASSERT_TRUE(carbon_float(".5", v));
    EXPECT_EQ(v, 0.5);
    EXPECT_FALSE(carbon_float("1x", v));
    EXPECT_FALSE(carbon_float("", v));
    EXPECT_FALSE(carbon_float("--1", v));
}

}  // namespace
