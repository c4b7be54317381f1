// The client side of TLS as polymur's outputs speak it (https:// gateways, tls:// and +tls://
// destinations): the one client context builder, the session set up to verify the destination's name,
// the handshake within a deadline, and errors worded for the log.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <string>

#include "worker/transport.hpp"

namespace polymur {

// A client context: TLS 1.2 and later, forward-secret AEAD suites, the peer verified against
// `ca_file` (empty: the system's trust store), presenting `cert`/`key` when given. Errors name the
// options (`ca_option`, `cert_option`, `key_option`).
SSL_CTX* new_tls_client_context(const std::string& ca_option, const std::string& ca_file,
                                const std::string& cert_option, const std::string& cert, const std::string& key_option,
                                const std::string& key, std::string& error);

// A session on the connected socket `fd` that checks the peer's certificate names `host` (a DNS
// name, also sent as SNI, or an IP address), then the handshake until `deadline`. On failure the
// session is freed (nullptr) and `error` says why; Io::aborted when the link gave up waiting.
Io tls_client_handshake(SSL_CTX* ctx, int fd, const std::string& host, OutputLink& link, int64_t deadline, SSL*& ssl,
                        std::string& error);

// Why an SSL call on `ssl` returning `rc` failed: a certificate verification failure, OpenSSL's
// queued errors, or "connection closed by <peer>".
std::string tls_failure(SSL* ssl, int rc, const char* what, const char* peer);

}  // namespace polymur
