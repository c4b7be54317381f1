// The gateway's handling of one request (worker/http_ingest.cpp): its headers (protocol/ingest_request),
// its gzip body (protocol/gzip_body) and the lines in it (protocol/batch_lines).
// Input: header lines ("Name: value", LF or CRLF), an empty line, then the body. The first byte says
// whether the body is taken as it is (random bytes are rarely gzip) or gzipped first (so the line
// path sees the fuzzer's lines), and in how many pieces it lies in memory.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/batch_lines.hpp"
#include "protocol/gzip_body.hpp"
#include "protocol/ingest_request.hpp"

using namespace polymur::protocol;

namespace {

constexpr size_t kBodyLimit = 1 << 20;

std::string gzip(std::string_view text) {
    z_stream zs {};
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
    std::string out(deflateBound(&zs, text.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs.avail_in = static_cast<uInt>(text.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static GzipBody body;
    if (!body.init()) std::abort();
    if (size == 0) return 0;
    const bool compress = data[0] & 1;
    const size_t pieces = (data[0] >> 1) % 8 + 1;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

    std::vector<HttpHeader> headers;
    while (!input.empty()) {
        size_t nl = input.find('\n');
        std::string_view line = input.substr(0, nl);
        input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        size_t colon = line.find(':');
        headers.push_back(
            {line.substr(0, colon), colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1)});
    }
    IngestHeaders checked = check_ingest_headers(headers.data(), headers.size(), "X-Polymur-Namespace");
    if (checked.status != 0 && (checked.status != 400 || !checked.why)) std::abort();
    if (checked.status) return 0;

    std::string compressed = compress ? gzip(input) : std::string(input);
    std::vector<std::string_view> chunks;
    const size_t piece = compressed.size() / pieces + 1;
    for (size_t at = 0; at < compressed.size(); at += piece)
        chunks.push_back(std::string_view(compressed).substr(at, piece));
    GzipBody::Result result = body.decode(chunks.data(), chunks.size(), kBodyLimit);
    if (compress && input.size() <= kBodyLimit && !input.empty() && result != GzipBody::Result::ok) std::abort();
    if (result != GzipBody::Result::ok) return 0;
    if (body.text().size() > kBodyLimit) std::abort();
    if (compress && body.text() != input) std::abort();

    char name[20000];
    const std::string_view prefix = checked.has_namespace ? std::string_view("tenant") : std::string_view();
    size_t valid = 0;
    for_each_batch_line(body.text(), prefix, 16384, 10, name,
                        [&](std::string_view line, const ParsedLine* parsed, std::string_view full) {
                            if (!parsed) return;
                            ++valid;
                            if (full.empty() || parsed->value.empty() || line.size() > 16384) std::abort();
                            if (!prefix.empty() && full.substr(0, prefix.size() + 1) != "tenant.") std::abort();
                        });
    body.shrink_to(4 << 20);
    return 0;
}
