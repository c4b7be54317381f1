// The HTTP(S) ingest endpoint of a listener worker (Polymur's gateway wire format): POST /ingest
// with a gzip body of LF-terminated lines, GET /ping. Implemented in worker/http_ingest.cpp.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace polymur {

struct IngestOutcome {
    bool accepted = false;    // false: the queues cannot take the whole batch now (answer 503)
    bool never_fits = false;  // with accepted false: larger than a destination queue can ever hold (413)
    bool aggregator = false;  // with accepted false: the aggregator's queue refused it, not a destination's
    uint64_t valid = 0;
    uint64_t invalid = 0;
};

// What the endpoint needs from its listener worker.
class LineSink {
public:
    virtual ~LineSink() = default;
    // Validates and routes every line of `lines` (LF-separated), each name prefixed with `prefix`
    // plus '.' when `prefix` is not empty. All or nothing: when the queues cannot take every valid
    // line, nothing is queued and accepted is false. Invalid lines are counted and skipped.
    virtual IngestOutcome ingest(std::string_view lines, std::string_view prefix) = 0;
};

class HttpIngest {
public:
    virtual ~HttpIngest() = default;
};

// Serves HTTPS (`tls`: --cert, --key, --ca-cert, --crl; client certificates required) or plain
// HTTP (namespace from --namespace-header, trusted only from --trusted-proxies) on the listening
// socket `fd`. Returns nullptr and sets `error` when it cannot start (a bad certificate file).
std::unique_ptr<HttpIngest> start_http_ingest(struct event_base* base, int fd, bool tls, const Config& config,
                                              LineSink& sink, std::string& error);

}  // namespace polymur
