#include "protocol/ingest_request.hpp"

#include <cstdint>

#include "protocol/http_fields.hpp"

namespace polymur::protocol {

IngestHeaders check_ingest_headers(const HttpHeader* headers, size_t count, std::string_view namespace_header) {
    IngestHeaders out;
    auto refuse = [&](const char* why) {
        out.status = 400;
        out.why = why;
        out.has_namespace = false;
        out.namespace_value = {};
        return out;
    };
    bool have_length = false, have_encoding = false, have_transfer_encoding = false;
    uint64_t length = 0;
    for (size_t i = 0; i < count; ++i) {
        std::string_view name = headers[i].name, value = headers[i].value;
        if (same_token(name, namespace_header)) {
            if (out.has_namespace) return refuse("the namespace header appears more than once");
            out.has_namespace = true;
            out.namespace_value = value;
        } else if (same_token(name, "Content-Length")) {
            uint64_t this_length = 0;
            if (!parse_content_length(trim_ows(value), this_length)) return refuse("Content-Length is not a number");
            if (have_length && this_length != length) return refuse("two Content-Length headers that differ");
            have_length = true;
            length = this_length;
        } else if (same_token(name, "Transfer-Encoding")) {
            have_transfer_encoding = true;
        } else if (same_token(name, "Content-Encoding")) {
            if (have_encoding) return refuse("Content-Encoding appears more than once");
            have_encoding = true;
            std::string_view coding = trim_ows(value);
            if (!same_token(coding, "gzip") && !same_token(coding, "x-gzip"))
                return refuse("the body must be gzip (Content-Encoding: gzip, or none)");
        }
    }
    if (have_length && have_transfer_encoding) return refuse("both Content-Length and Transfer-Encoding");
    return out;
}

}  // namespace polymur::protocol
