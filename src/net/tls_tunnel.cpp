// TLS driven with OpenSSL on a TCP socket, and a tunnel handing its plaintext to a socketpair.
#include "net/tls_tunnel.hpp"

#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "log.hpp"
#include "net/buffer_pool.hpp"
#include "net/socket_pair.hpp"

namespace pgmux::net {
namespace {

using namespace asio::experimental::awaitable_operators;
using PlainEnd = asio::basic_stream_socket<asio::local::stream_protocol, Executor>;

// One TLS connection and its plaintext end. Both pumps share the SSL: OpenSSL allows a read and a write in
// progress at once on a non-blocking connection, and the two never run at the same time (one thread).
// OpenSSL reads and writes the TCP socket's descriptor itself; the socket is only waited on.
struct Tunnel {
  Socket tcp;
  SslPtr ssl;
  PlainEnd plain;
};

// What to wait for after an SSL call returned `result`, or nullopt when the connection is over.
std::optional<Socket::wait_type> wait_for(SSL* ssl, int result) {
  switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ:
      return Socket::wait_read;
    case SSL_ERROR_WANT_WRITE:
      return Socket::wait_write;
    default:
      ERR_clear_error();  // this thread's queue must not carry the error to another connection's check
      return std::nullopt;
  }
}

// TLS records to plaintext. SSL_read is tried before waiting: the handshake may have read the first
// application data already (a TLS 1.3 client sends its startup packet right behind its Finished). An idle
// tunnel waits for readability and holds no buffer.
asio::awaitable<void> tls_to_plain(Tunnel& t) {
  std::optional<IoBuffer> buffer;
  for (;;) {
    if (!buffer) buffer.emplace();
    const int n = SSL_read(t.ssl.get(), buffer->space(), static_cast<int>(buffer->space_size()));
    if (n > 0) {
      auto [ec, written] =
          co_await asio::async_write(t.plain, asio::buffer(buffer->space(), std::size_t(n)), use_nothrow);
      if (ec) break;  // the session has ended
      continue;
    }
    auto wait = wait_for(t.ssl.get(), n);
    if (!wait) break;  // close_notify, end-of-file, reset or a TLS error
    buffer.reset();
    auto [ec] = co_await t.tcp.async_wait(*wait, use_nothrow);
    if (ec) break;
  }
  // The session reads end-of-file, as from a TCP peer that left, and ends the same way.
  error_code ignored;
  t.plain.shutdown(PlainEnd::shutdown_send, ignored);
}

// Writes all of `bytes` as TLS records; false if the connection failed.
asio::awaitable<bool> write_tls(Tunnel& t, const char* bytes, std::size_t size) {
  while (size > 0) {
    const int n = SSL_write(t.ssl.get(), bytes, static_cast<int>(size));
    if (n > 0) {
      bytes += n;
      size -= static_cast<std::size_t>(n);
      continue;
    }
    auto wait = wait_for(t.ssl.get(), n);
    if (!wait) co_return false;
    auto [ec] = co_await t.tcp.async_wait(*wait, use_nothrow);
    if (ec) co_return false;
  }
  co_return true;
}

// Plaintext to TLS records; once the session closes its end, close_notify and the TCP connection closed.
asio::awaitable<void> plain_to_tls(Tunnel& t) {
  for (;;) {
    auto [wec] = co_await t.plain.async_wait(PlainEnd::wait_read, use_nothrow);
    if (wec) break;
    IoBuffer buffer;
    error_code ec;
    const std::size_t n = t.plain.read_some(asio::buffer(buffer.space(), buffer.space_size()), ec);
    if (ec == asio::error::would_block) continue;
    if (ec) break;  // end-of-file: the session has ended
    if (!co_await write_tls(t, buffer.space(), n)) break;
  }
  SSL_shutdown(t.ssl.get());  // one try: close_notify if the socket takes it now
  ERR_clear_error();
  // Shutting the socket down (rather than closing it) wakes the other pump; the descriptor closes only when
  // both pumps are done, so OpenSSL never touches a number the kernel gave to another connection.
  error_code ignored;
  t.tcp.shutdown(Socket::shutdown_both, ignored);
}

asio::awaitable<void> run_tunnel(std::unique_ptr<Tunnel> t) {
  co_await (tls_to_plain(*t) && plain_to_tls(*t));
}

}  // namespace

asio::awaitable<std::string> tls_handshake(Socket& tcp, SSL* ssl) {
  error_code ec;
  tcp.non_blocking(true, ec);
  if (ec || SSL_set_fd(ssl, static_cast<int>(tcp.native_handle())) != 1) co_return "cannot attach TLS";
  ERR_clear_error();
  for (;;) {
    const int result = SSL_do_handshake(ssl);
    if (result == 1) co_return std::string();
    const int error = SSL_get_error(ssl, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      const Socket::wait_type wait = error == SSL_ERROR_WANT_READ ? Socket::wait_read : Socket::wait_write;
      auto [wec] = co_await tcp.async_wait(wait, use_nothrow);
      if (wec) co_return wec.message();
      continue;
    }
    std::string reason;
    if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      reason = errno ? std::strerror(errno) : "connection closed during the TLS handshake";
    else
      reason = take_ssl_error();
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    ERR_clear_error();
    co_return reason;
  }
}

Socket start_tls_tunnel(Socket tcp, SslPtr ssl, error_code& ec) {
  const Executor executor = tcp.get_executor();
  Socket plaintext(executor);
  auto tunnel = std::unique_ptr<Tunnel>(new Tunnel{std::move(tcp), std::move(ssl), PlainEnd(executor)});
  open_socket_pair(plaintext, tunnel->plain, ec);
  if (ec) return plaintext;
  tunnel->plain.non_blocking(true, ec);
  plaintext.non_blocking(true, ec);
  ec = {};
  asio::co_spawn(executor, run_tunnel(std::move(tunnel)), asio::detached);
  return plaintext;
}

}  // namespace pgmux::net
