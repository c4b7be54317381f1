// The proxy's reader of the gateway's HTTP answers (protocol/http_response).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "protocol/http_fields.hpp"
#include "protocol/http_response.hpp"

using polymur::protocol::HttpResponseReader;
using Result = HttpResponseReader::Result;

namespace {

struct Outcome {
    Result result;
    size_t used;  // bytes of the input consumed
};

// Feeds `text` at once, as the proxy does when the whole answer arrived in one read.
Outcome read_all(HttpResponseReader& reader, std::string_view text) {
    reader.start();
    size_t used = 0;
    Result result = reader.feed(text, used);
    return {result, used};
}

// Feeds `text` one byte at a time, keeping unconsumed bytes as the proxy's receive buffer does.
Outcome read_bytewise(HttpResponseReader& reader, std::string_view text) {
    reader.start();
    std::string buffer;
    size_t total = 0;
    for (char c : text) {
        buffer += c;
        size_t used = 0;
        Result result = reader.feed(buffer, used);
        buffer.erase(0, used);
        total += used;
        if (result != Result::more) return {result, total};
    }
    return {Result::more, total};
}

}  // namespace

TEST(HttpResponse, OkWithLength) {
    const std::string text = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\naccepted 3\nNEXT";
    for (auto read : {read_all, read_bytewise}) {
        HttpResponseReader reader;
        Outcome out = read(reader, text);
        EXPECT_EQ(out.result, Result::done);
        EXPECT_EQ(out.used, text.size() - 4);  // the next answer's bytes stay unread
        EXPECT_EQ(reader.status(), 200);
        EXPECT_FALSE(reader.close_after());
        EXPECT_EQ(reader.body(), "accepted 3\n");
    }
}

TEST(HttpResponse, ContentLengthMustBeDigitsOnly) {
    // Used to read as 12: every non-digit was taken as 0 and skipped.
    for (const char* bad : {"1x2", "12 3", "-1", "+5", "0x10", "", "1,1", "١٢"}) {
        HttpResponseReader reader;
        std::string text = std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + bad + "\r\n\r\n0123456789ab";
        EXPECT_EQ(read_all(reader, text).result, Result::error) << bad;
        EXPECT_NE(reader.error().find("Content-Length"), std::string::npos) << reader.error();
    }
}

TEST(HttpResponse, ContentLengthOverflowIsAnError) {
    HttpResponseReader reader;
    EXPECT_EQ(read_all(reader, "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\n").result,
              Result::error);
    EXPECT_EQ(read_all(reader, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n").result,
              Result::error);
    uint64_t value = 0;
    EXPECT_TRUE(polymur::protocol::parse_content_length("4611686018427387904", value));  // 2^62
    EXPECT_EQ(value, uint64_t {1} << 62);
    EXPECT_FALSE(polymur::protocol::parse_content_length("4611686018427387905", value));
    EXPECT_TRUE(polymur::protocol::parse_content_length("00012", value));
    EXPECT_EQ(value, 12u);
}

TEST(HttpResponse, TwoDifferentContentLengthsAreAnError) {
    HttpResponseReader reader;
    EXPECT_EQ(read_all(reader, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc").result,
              Result::error);
    EXPECT_EQ(read_all(reader, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length:2\r\n\r\nab").result,
              Result::done);
}

TEST(HttpResponse, Chunked) {
    const std::string text =
        "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nContent-Length: 999\r\n\r\n"
        "5;ext=1\r\nqueue\r\nD \r\ns full; retry\r\n0\r\nX-Trailer: 1\r\n\r\n";
    for (auto read : {read_all, read_bytewise}) {
        HttpResponseReader reader;
        Outcome out = read(reader, text);
        ASSERT_EQ(out.result, Result::done) << reader.error();
        EXPECT_EQ(out.used, text.size());
        EXPECT_EQ(reader.status(), 503);
        EXPECT_EQ(reader.body(), "queues full; retry");
    }
}

TEST(HttpResponse, BadChunks) {
    for (const char* bad :
         {"zz\r\n", "\r\n", "-1\r\n", "10000000000000000\r\nx", "5\r\nabcdefg\r\n", "5 x\r\nabcde\r\n"}) {
        HttpResponseReader reader;
        std::string text = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") + bad;
        EXPECT_EQ(read_all(reader, text).result, Result::error) << bad;
    }
}

TEST(HttpResponse, InformationalAnswersAreSkipped) {
    HttpResponseReader reader;
    Outcome out = read_all(reader,
                           "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(out.result, Result::done);
    EXPECT_EQ(reader.status(), 200);
}

TEST(HttpResponse, EndlessInformationalAnswersAreBounded) {
    std::string text;
    while (text.size() <= HttpResponseReader::kMaxHeaderBytes) text += "HTTP/1.1 100 Continue\r\n\r\n";
    HttpResponseReader reader;
    EXPECT_EQ(read_all(reader, text).result, Result::error);
    EXPECT_NE(reader.error().find("64 KiB"), std::string::npos);
}

TEST(HttpResponse, PartialLineWaitsForMore) {
    HttpResponseReader reader;
    Outcome out = read_all(reader, "HTTP/1.1 200 OK\r\nContent-Len");
    EXPECT_EQ(out.result, Result::more);
    EXPECT_EQ(out.used, 17u);  // the status line only
    std::string long_header = "HTTP/1.1 200 OK\r\nX: " + std::string(HttpResponseReader::kMaxHeaderBytes, 'a');
    EXPECT_EQ(read_all(reader, long_header).result, Result::error);
}

TEST(HttpResponse, ConnectionClose) {
    HttpResponseReader reader;
    read_all(reader, "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(reader.close_after());
    read_all(reader, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(reader.close_after());
    read_all(reader, "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
    EXPECT_FALSE(reader.close_after());
}

TEST(HttpResponse, BodyUntilClose) {
    HttpResponseReader reader;
    Outcome out = read_all(reader, "HTTP/1.1 500 Internal Server Error\r\n\r\nsomething broke");
    EXPECT_EQ(out.result, Result::more);
    EXPECT_TRUE(reader.reads_until_close());
    EXPECT_EQ(reader.end_of_stream(), Result::done);
    EXPECT_TRUE(reader.close_after());
    EXPECT_EQ(reader.status(), 500);
    EXPECT_EQ(reader.body(), "something broke");
    // Another transfer coding than chunked also runs to the close.
    read_all(reader, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz");
    EXPECT_TRUE(reader.reads_until_close());
}

TEST(HttpResponse, NoBodyFor204And304) {
    HttpResponseReader reader;
    EXPECT_EQ(read_all(reader, "HTTP/1.1 204 No Content\r\n\r\n").result, Result::done);
    EXPECT_EQ(read_all(reader, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").result, Result::done);
}

TEST(HttpResponse, KeepsOnlyTheStartOfALongBody) {
    std::string body(1000, 'x');
    HttpResponseReader reader;
    Outcome out = read_all(reader, "HTTP/1.1 400 Bad Request\r\nContent-Length: 1000\r\n\r\n" + body);
    EXPECT_EQ(out.result, Result::done);
    EXPECT_EQ(reader.body().size(), HttpResponseReader::kKeptBody);
}

TEST(HttpResponse, BadStatusLines) {
    for (const char* bad :
         {"HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 Odd", "HTTP/1.1 600 Odd", "HTTP/2.0 200 OK",
          "HTTP/1.1  200 OK", "http/1.1 200 OK", "HTTP/1.1 2x0 OK", "SSH-2.0-OpenSSH", ""}) {
        HttpResponseReader reader;
        std::string text = std::string(bad) + "\r\nContent-Length: 0\r\n\r\n";
        EXPECT_EQ(read_all(reader, text).result, Result::error) << bad;
    }
    HttpResponseReader reader;
    EXPECT_EQ(read_all(reader, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").result, Result::done);  // no reason phrase
}

TEST(HttpResponse, BadHeaderLines) {
    for (const char* bad : {"no colon", ": empty name", " folded: value", "Name : space before colon"}) {
        HttpResponseReader reader;
        std::string text = std::string("HTTP/1.1 200 OK\r\n") + bad + "\r\nContent-Length: 0\r\n\r\n";
        EXPECT_EQ(read_all(reader, text).result, Result::error) << bad;
    }
}

TEST(HttpResponse, ClosedEarly) {
    HttpResponseReader reader;
    reader.start();
    EXPECT_EQ(reader.end_of_stream(), Result::error);
    EXPECT_NE(reader.error().find("without an answer"), std::string::npos);
    read_all(reader, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    EXPECT_EQ(reader.end_of_stream(), Result::error);
}
