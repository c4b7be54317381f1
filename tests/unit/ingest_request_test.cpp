// The gateway's request checks (protocol/ingest_request), its gzip body (protocol/gzip_body) and the
// lines of a batch (protocol/batch_lines).
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/batch_lines.hpp"
#include "protocol/gzip_body.hpp"
#include "protocol/ingest_request.hpp"

using namespace polymur::protocol;

namespace {

IngestHeaders check(std::vector<HttpHeader> headers) {
    return check_ingest_headers(headers.data(), headers.size(), "X-Polymur-Namespace");
}

std::string gzip(std::string_view text) {
    z_stream zs {};
    EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, text.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs.avail_in = static_cast<uInt>(text.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

GzipBody::Result decode(GzipBody& body, const std::string& data, size_t limit, size_t piece = 0) {
    std::vector<std::string_view> chunks;
    if (!piece) piece = data.size() ? data.size() : 1;
    for (size_t at = 0; at < data.size(); at += piece) chunks.push_back(std::string_view(data).substr(at, piece));
    return body.decode(chunks.data(), chunks.size(), limit);
}

}  // namespace

TEST(IngestHeaders, PlainRequestIsAccepted) {
    IngestHeaders out = check({{"Host", "gw"}, {"Content-Encoding", "gzip"}, {"Content-Length", "12"}});
    EXPECT_EQ(out.status, 0);
    EXPECT_FALSE(out.has_namespace);
    EXPECT_EQ(check({{"content-encoding", " X-GZIP "}}).status, 0);
    EXPECT_EQ(check({}).status, 0);
}

TEST(IngestHeaders, NamespaceHeader) {
    IngestHeaders out = check({{"x-polymur-namespace", "tenant-a"}});
    EXPECT_EQ(out.status, 0);
    EXPECT_TRUE(out.has_namespace);
    EXPECT_EQ(out.namespace_value, "tenant-a");
}

TEST(IngestHeaders, TwoNamespaceHeadersAreRefused) {
    // A balancer that appends its header after the client's must not let the client's win.
    IngestHeaders out = check({{"X-Polymur-Namespace", "victim"}, {"X-Polymur-Namespace", "tenant-a"}});
    EXPECT_EQ(out.status, 400);
    EXPECT_FALSE(out.has_namespace);
    EXPECT_EQ(check({{"X-Polymur-Namespace", "a"}, {"x-polymur-namespace", "a"}}).status, 400);
    // The configured header name is the one checked.
    HttpHeader custom[] = {{"X-Tenant", "a"}, {"X-Tenant", "b"}};
    EXPECT_EQ(check_ingest_headers(custom, 2, "x-tenant").status, 400);
    EXPECT_EQ(check_ingest_headers(custom, 2, "X-Polymur-Namespace").status, 0);
}

TEST(IngestHeaders, ContentLength) {
    EXPECT_EQ(check({{"Content-Length", "10"}, {"Content-Length", "10"}}).status, 0);
    EXPECT_EQ(check({{"Content-Length", "10"}, {"Content-Length", "11"}}).status, 400);
    EXPECT_EQ(check({{"Content-Length", "1x2"}}).status, 400);
    EXPECT_EQ(check({{"Content-Length", "-1"}}).status, 400);
    EXPECT_EQ(check({{"Content-Length", "99999999999999999999999"}}).status, 400);
    EXPECT_EQ(check({{"Content-Length", "10"}, {"Transfer-Encoding", "chunked"}}).status, 400);
    EXPECT_EQ(check({{"Transfer-Encoding", "chunked"}}).status, 0);
}

TEST(IngestHeaders, ContentEncoding) {
    EXPECT_EQ(check({{"Content-Encoding", "br"}}).status, 400);
    EXPECT_EQ(check({{"Content-Encoding", "gzip, br"}}).status, 400);
    EXPECT_EQ(check({{"Content-Encoding", "gzip"}, {"Content-Encoding", "gzip"}}).status, 400);
    EXPECT_NE(std::string(check({{"Content-Encoding", "deflate"}}).why).find("gzip"), std::string::npos);
}

TEST(GzipBody, OneAndSeveralMembers) {
    GzipBody body;
    ASSERT_TRUE(body.init());
    const std::string text = "a.b 1 1700000000\nc.d 2 1700000000\n";
    for (size_t piece : {size_t {0}, size_t {1}, size_t {7}}) {
        EXPECT_EQ(decode(body, gzip(text), 1 << 20, piece), GzipBody::Result::ok);
        EXPECT_EQ(body.text(), text);
        EXPECT_EQ(decode(body, gzip("x 1 1\n") + gzip("y 2 2\n"), 1 << 20, piece), GzipBody::Result::ok);
        EXPECT_EQ(body.text(), "x 1 1\ny 2 2\n");
    }
}

TEST(GzipBody, Refusals) {
    GzipBody body;
    ASSERT_TRUE(body.init());
    EXPECT_EQ(decode(body, "", 100), GzipBody::Result::not_gzip);
    EXPECT_EQ(decode(body, "plain text, not gzip", 100), GzipBody::Result::not_gzip);
    std::string whole = gzip(std::string(1000, 'a'));
    EXPECT_EQ(decode(body, whole.substr(0, whole.size() - 6), 100000), GzipBody::Result::not_gzip);  // truncated
    EXPECT_EQ(decode(body, whole, 999), GzipBody::Result::too_large);
    EXPECT_EQ(decode(body, whole, 1000), GzipBody::Result::ok);
    // A bomb stops at the limit: 100 MB of zeros in about 100 KB.
    std::string bomb = gzip(std::string(100 << 20, '\0'));
    EXPECT_EQ(decode(body, bomb, 1 << 20), GzipBody::Result::too_large);
    body.shrink_to(0);
    EXPECT_EQ(decode(body, whole, 1000), GzipBody::Result::ok);
}

TEST(GzipBody, LyingTrailerIsOnlyAHint) {
    GzipBody body;
    ASSERT_TRUE(body.init());
    std::string data = gzip(std::string(5000, 'b'));
    data[data.size() - 4] = 1;  // claims 1 byte (mod 2^32)
    data[data.size() - 3] = data[data.size() - 2] = data[data.size() - 1] = 0;
    EXPECT_EQ(decode(body, data, 100000), GzipBody::Result::not_gzip);  // zlib checks the length
}

TEST(BatchLines, PrefixAndInvalidLines) {
    char name[32];
    std::vector<std::string> seen;
    for_each_batch_line("a.b 1 2\nbad\n\nc 3 -1\nd 4 5", "tenant", 100, 10, name,
                        [&](std::string_view line, const ParsedLine* parsed, std::string_view full) {
                            seen.push_back(parsed ? std::string(full) : "invalid:" + std::string(line));
                        });
    EXPECT_EQ(seen, (std::vector<std::string> {"tenant.a.b", "invalid:bad", "invalid:", "tenant.c", "tenant.d"}));
}

TEST(BatchLines, BoundsHold) {
    char name[16];
    std::vector<bool> valid;
    auto visit = [&](std::string_view, const ParsedLine* parsed, std::string_view) {
        valid.push_back(parsed != nullptr);
    };
    for_each_batch_line("abcdefghij 1 2\nshort 1 2\n", "tenant", 100, 10, name, visit);  // 6 + 1 + 10 > 16
    EXPECT_EQ(valid, (std::vector<bool> {false, true}));
    valid.clear();
    for_each_batch_line("a 1 2\nabcdefgh 1 2\n", "", 10, 10, name, visit);  // the second is longer than 10
    EXPECT_EQ(valid, (std::vector<bool> {true, false}));
    // As forwarded: "a 1 1700000000" (-1 stamped) and "tenant.ab 1 2" are longer than 12.
    valid.clear();
    for_each_batch_line("a 1 -1\na 1 2\n", "", 12, 10, name, visit);
    for_each_batch_line("ab 1 2\n", "tenant", 12, 10, name, visit);
    EXPECT_EQ(valid, (std::vector<bool> {false, true, false}));
}
