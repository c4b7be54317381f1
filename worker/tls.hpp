// TLS contexts: the settings every context shares, and the servers' (the gateway, the TLS line listener).
#pragma once

#include <openssl/ssl.h>

#include <string>

namespace polymur {

// TLS 1.2 suites: forward secret AEAD only. TLS 1.3 suites are all AEAD: the servers keep OpenSSL's order,
// the clients set theirs (below).
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// TLS 1.3 suites in the client's order of preference: with AES instructions, and without them.
inline constexpr const char* kTls13CiphersAes =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kTls13CiphersChaCha =
    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
// The CPU has AES instructions (x86 AES-NI, ARMv8 AES): AES-GCM is then cheaper than ChaCha20.
bool cpu_has_aes();

// OpenSSL's queued errors, joined with "; " (empty when there are none). Clears the queue.
std::string openssl_errors();

// The settings every polymur TLS context has, server or client: TLS 1.2 and later, forward-secret AEAD
// suites only, no compression or renegotiation. nullptr with `error` on failure.
SSL_CTX* new_tls_context_base(const SSL_METHOD* method, std::string& error);

// Loads `cert` (a chain) and its `key` into `ctx`; false with `error` naming the options
// (`cert_option`, `key_option`) and OpenSSL's reason.
bool use_tls_certificate(SSL_CTX* ctx, const std::string& cert_option, const std::string& cert,
                         const std::string& key_option, const std::string& key, std::string& error);

// A server context (the gateway, the TLS line listener) presenting `cert`/`key` and trusting only
// the private CA in `ca_file` (none when empty) for client certificates. nullptr with `error` naming
// the option and OpenSSL's reason. The one client context is new_tls_client_context (tls_client.hpp).
SSL_CTX* new_tls_server_context(const std::string& cert_option, const std::string& cert, const std::string& key_option,
                                const std::string& key, const std::string& ca_option, const std::string& ca_file,
                                std::string& error);

// The server context of the TLS line listener (--tls-listen-addr): --tls-cert and --tls-key, and with
// a --tls-client-ca a client certificate it signs is required. No session resumption.
SSL_CTX* new_line_listener_tls_context(const std::string& cert, const std::string& key, const std::string& client_ca,
                                       std::string& error);

}  // namespace polymur
