// The gateway's checks of one request's headers (worker/http_ingest.cpp calls them before it reads a
// line): pure code, no I/O, no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace polymur::protocol {

struct HttpHeader {
    std::string_view name;
    std::string_view value;
};

struct IngestHeaders {
    int status = 0;                    // 0: acceptable; otherwise the status to refuse with (400)
    const char* why = nullptr;         // with a status: the reason, for the answer and the log
    bool has_namespace = false;        // the namespace header is present (exactly once)
    std::string_view namespace_value;  // its value
};

// Checks the request headers `headers[0..count)` in the order received. `namespace_header` is the
// configured --namespace-header. Refused with 400:
// - the namespace header more than once (a load balancer that appends instead of replacing would let
//   the client choose its namespace);
// - Content-Length more than once with different values, or not a plain decimal number (request
//   smuggling behind a proxy that reads another one than we do);
// - Content-Length together with Transfer-Encoding (the same);
// - a Content-Encoding other than gzip or x-gzip, or more than one.
IngestHeaders check_ingest_headers(const HttpHeader* headers, size_t count, std::string_view namespace_header);

}  // namespace polymur::protocol
