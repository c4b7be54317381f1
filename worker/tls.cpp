#include "worker/tls.hpp"

#include <openssl/err.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace polymur {
namespace {

std::string reason() {
    std::string text = openssl_errors();
    return text.empty() ? "unknown OpenSSL error" : text;
}

}  // namespace

bool cpu_has_aes() {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
    return getauxval(AT_HWCAP) & HWCAP_AES;
#else
    return false;
#endif
}

std::string openssl_errors() {
    std::string text;
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!text.empty()) text += "; ";
        text += buf;
    }
    return text;
}

SSL_CTX* new_tls_context_base(const SSL_METHOD* method, std::string& error) {
    SSL_CTX* ctx = SSL_CTX_new(method);
    if (!ctx) {
        error = "cannot create the TLS context: " + reason();
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
        error = "cannot set the TLS 1.2 cipher list: " + reason();
        SSL_CTX_free(ctx);
        return nullptr;
    }
    return ctx;
}

bool use_tls_certificate(SSL_CTX* ctx, const std::string& cert_option, const std::string& cert,
                         const std::string& key_option, const std::string& key, std::string& error) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
        error = "--" + cert_option + " " + cert + ": " + reason();
    else if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
        error = "--" + key_option + " " + key + ": " + reason();
    else if (SSL_CTX_check_private_key(ctx) != 1)
        error = "--" + key_option + " " + key + " does not match --" + cert_option + " " + cert + ": " + reason();
    else return true;
    return false;
}

SSL_CTX* new_tls_server_context(const std::string& cert_option, const std::string& cert, const std::string& key_option,
                                const std::string& key, const std::string& ca_option, const std::string& ca_file,
                                std::string& error) {
    SSL_CTX* ctx = new_tls_context_base(TLS_server_method(), error);
    if (!ctx) return nullptr;
    if (!use_tls_certificate(ctx, cert_option, cert, key_option, key, error)) {
        SSL_CTX_free(ctx);
        return nullptr;
    }
    if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
        error = "--" + ca_option + " " + ca_file + ": " + reason();
        SSL_CTX_free(ctx);
        return nullptr;
    }
    return ctx;
}

SSL_CTX* new_line_listener_tls_context(const std::string& cert, const std::string& key, const std::string& client_ca,
                                       std::string& error) {
    SSL_CTX* ctx = new_tls_server_context("tls-cert", cert, "tls-key", key, "tls-client-ca", client_ca, error);
    if (!ctx) return nullptr;
    // Clients close without close_notify (carbon-c-relay among them): that is the end of the stream.
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    // Thousands of mostly idle connections: no read and write buffers held between records.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!client_ca.empty()) {
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca.c_str());
        if (!names) {
            error = "--tls-client-ca " + client_ca + ": no CA certificate in it";
            SSL_CTX_free(ctx);
            return nullptr;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
}

}  // namespace polymur
