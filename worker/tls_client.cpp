#include "worker/tls_client.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "worker/tls.hpp"

namespace polymur {

SSL_CTX* new_tls_client_context(const std::string& ca_option, const std::string& ca_file,
                                const std::string& cert_option, const std::string& cert, const std::string& key_option,
                                const std::string& key, std::string& error) {
    SSL_CTX* ctx = new_tls_context_base(TLS_client_method(), error);
    if (!ctx) return nullptr;
    auto fail = [&](std::string what) {
        error = std::move(what);
        SSL_CTX_free(ctx);
        return nullptr;
    };
    if (!cert.empty() || !key.empty()) {
        if (cert.empty() || key.empty()) return fail("--" + cert_option + " and --" + key_option + " go together");
        if (!use_tls_certificate(ctx, cert_option, cert, key_option, key, error)) return fail(error);
    }
    if (ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                        : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
        std::string queued = openssl_errors();
        return fail(
            (ca_file.empty() ? std::string("the system's trusted certificates") : "--" + ca_option + " " + ca_file) +
            ": " + (queued.empty() ? "unknown OpenSSL error" : queued));
    }
    // TLS 1.3: AES-128-GCM first where the CPU has AES instructions (the cheapest AEAD per byte there,
    // and a server that follows the client's order picks it), ChaCha20 first where it has not.
    if (SSL_CTX_set_ciphersuites(ctx, cpu_has_aes() ? kTls13CiphersAes : kTls13CiphersChaCha) != 1)
        return fail("cannot set the TLS 1.3 cipher suites: " + openssl_errors());
    // Partial writes: SSL_write returns as soon as some records went out (tls_stream.hpp confirms per
    // SSL_write). The write buffer is kept between records (no SSL_MODE_RELEASE_BUFFERS): a client has
    // a few busy connections, not thousands of idle ones.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    return ctx;
}

std::string tls_failure(SSL* ssl, int rc, const char* what, const char* peer) {
    int code = SSL_get_error(ssl, rc);
    std::string text = what;
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
        return text + ": certificate verification failed: " + X509_verify_cert_error_string(verify);
    std::string queued = openssl_errors();
    if (!queued.empty()) return text + ": " + queued;
    if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0))
        return text + ": connection closed by " + peer;
    if (code == SSL_ERROR_SYSCALL) return text + ": " + std::strerror(errno);
    return text + ": TLS error " + std::to_string(code);
}

Io tls_client_handshake(SSL_CTX* ctx, int fd, const std::string& host, OutputLink& link, int64_t deadline, SSL*& ssl,
                        std::string& error) {
    ssl = SSL_new(ctx);
    auto fail = [&](Io io, std::string why) {
        error = std::move(why);
        if (ssl) SSL_free(ssl);
        ssl = nullptr;
        return io;
    };
    if (!ssl || SSL_set_fd(ssl, fd) != 1) return fail(Io::failed, "cannot create a TLS session: " + openssl_errors());
    // The certificate must name the host we connect to (SAN DNS name or IP address).
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1
              : (X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) != 1 ||
                 SSL_set_tlsext_host_name(ssl, host.c_str()) != 1))
        return fail(Io::failed, "cannot set the expected host name: " + openssl_errors());
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(ssl);
        if (rc == 1) return Io::ok;
        int code = SSL_get_error(ssl, rc);
        if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE)
            return fail(Io::failed, tls_failure(ssl, rc, "TLS handshake failed", "the destination"));
        std::string wait_error;
        Io io = link.wait_fd(fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, wait_error);
        if (io == Io::aborted) return fail(io, "stopping");
        if (io != Io::ok) return fail(io, "TLS handshake: " + wait_error);
    }
}

}  // namespace polymur
