// coldpath_login's pipelined raw login: TLS, then StartupMessage, cleartext password and Query in one write.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "coldpath_login.h"

static void put_u32(unsigned char* at, uint32_t v) {
  v = htonl(v);
  memcpy(at, &v, 4);
}

static uint32_t get_u32(const unsigned char* at) {
  uint32_t v;
  memcpy(&v, at, 4);
  return ntohl(v);
}

// Appends `len` bytes; returns the new end, or NULL when `cap` would be exceeded.
static unsigned char* append(unsigned char* at, const unsigned char* end, const void* bytes, size_t len) {
  if (!at || (size_t)(end - at) < len) return NULL;
  memcpy(at, bytes, len);
  return at + len;
}

// StartupMessage + PasswordMessage (cleartext) + Query, to go out in one write before any answer is read.
// Terminate follows once the answer is in, as libpq's PQfinish sends it: pgmux ends a session as soon as it
// reads a Terminate, without relaying the replies to what came before it in the same read (seen on main,
// 2026-12-06), where Postgres answers them first. Returns the flight's length, or 0 when it does not fit.
static size_t pipelined_flight(const struct raw_login* how, unsigned char* buf, size_t cap) {
  const unsigned char* end = buf + cap;
  unsigned char* at = buf + 8;  // length and protocol version, filled in below
  at = append(at, end, "user", 5);
  at = append(at, end, how->user, strlen(how->user) + 1);
  at = append(at, end, "database", 9);
  at = append(at, end, how->dbname, strlen(how->dbname) + 1);
  at = append(at, end, "", 1);
  if (!at) return 0;
  put_u32(buf, (uint32_t)(at - buf));
  put_u32(buf + 4, 196608);  // protocol 3.0

  const char* bodies[] = {how->password, "SELECT 1"};
  const char kinds[] = {'p', 'Q'};
  for (int i = 0; i < 2; ++i) {
    unsigned char header[5] = {(unsigned char)kinds[i]};
    put_u32(header + 1, (uint32_t)(4 + strlen(bodies[i]) + 1));
    at = append(at, end, header, 5);
    at = append(at, end, bodies[i], strlen(bodies[i]) + 1);
  }
  return at ? (size_t)(at - buf) : 0;
}

static int tcp_connect(const char* hostaddr, int port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, hostaddr, &addr.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  // Every read and write gives up after 10 s, so a server that never answers cannot hang the bench.
  struct timeval limit = {.tv_sec = 10};
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The last socket call gave up after tcp_connect's 10 s: a broken bench or server, never a "not supported".
static enum outcome unless_timed_out(enum outcome otherwise) {
  return errno == EAGAIN || errno == EWOULDBLOCK ? LOGIN_ERROR : otherwise;
}

const char* tls_error(void) {
  unsigned long e = ERR_get_error();
  static char text[256];
  if (!e) return errno ? strerror(errno) : "the server closed the connection";
  ERR_error_string_n(e, text, sizeof text);
  ERR_clear_error();
  return text;
}

// Reads backend messages until the ReadyForQuery after the first DataRow. An ErrorResponse or an
// authentication request other than cleartext (already answered) or OK ends the login.
static enum outcome read_until_ready(SSL* ssl) {
  static unsigned char buf[16384];
  size_t have = 0;
  int seen_row = 0;
  for (;;) {
    size_t at = 0;
    while (have - at >= 5) {
      unsigned char kind = buf[at];
      uint32_t len = get_u32(buf + at + 1);
      if (len < 4 || len > sizeof buf - 1)
        return login_failed(LOGIN_ERROR, "message '%c' of %u bytes", kind, len);
      if (have - at < 1 + (size_t)len) break;
      const unsigned char* body = buf + at + 5;
      if (kind == 'D') seen_row = 1;
      if (kind == 'Z' && seen_row) return LOGIN_OK;
      if (kind == 'E') {
        const char *code = "?", *text = "";
        for (const unsigned char* f = body; f < body + len - 4 && *f; f += strlen((const char*)f) + 1) {
          if (*f == 'C') code = (const char*)f + 1;
          if (*f == 'M') text = (const char*)f + 1;
        }
        // A wrong password is a broken bench; any other refusal (cleartext not accepted, say) is the
        // target's answer to this way of logging in.
        return login_failed(strcmp(code, "28P01") ? LOGIN_UNSUPPORTED : LOGIN_ERROR, "ErrorResponse %s: %s",
                            code, text);
      }
      if (kind == 'R' && len >= 8) {
        uint32_t method = get_u32(body);
        if (method == 10)
          return login_failed(LOGIN_UNSUPPORTED,
                              "the server asks for SCRAM, a pipelined cleartext password cannot answer");
        if (method != 0 && method != 3)
          return login_failed(LOGIN_UNSUPPORTED, "the server asks for authentication method %u", method);
      }
      at += 1 + (size_t)len;
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    errno = 0;
    int n = SSL_read(ssl, buf + have, (int)(sizeof buf - have));
    if (n <= 0)
      return login_failed(unless_timed_out(LOGIN_UNSUPPORTED), "no ReadyForQuery after the row: %s",
                          tls_error());
    have += (size_t)n;
  }
}

SSL_CTX* raw_tls_context(const char* cafile) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx && SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (!ctx) return NULL;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  // libpq 15 resumes no TLS session (a new SSL_CTX per connection), so neither does this client.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char alpn[] = "\x0apostgresql";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  return ctx;
}

enum outcome raw_once(const struct raw_login* how, int port) {
  errno = 0;
  int fd = tcp_connect(how->hostaddr, port);
  if (fd < 0) return login_failed(LOGIN_ERROR, "connect to %s:%d: %s", how->hostaddr, port, strerror(errno));
  SSL* ssl = NULL;
  SSL_CTX* own = NULL;  // this login's context, when it has one of its own
  enum outcome result;
  if (!how->direct) {
    unsigned char request[8], answer = 0;
    put_u32(request, 8);
    put_u32(request + 4, 80877103);  // SSLRequest
    ssize_t got = write(fd, request, 8) == 8 ? read(fd, &answer, 1) : -1;
    if (got != 1) {
      result = login_failed(unless_timed_out(LOGIN_UNSUPPORTED), "no answer to SSLRequest: %s",
                            got ? strerror(errno) : "the server closed the connection");
      goto done;
    }
    if (answer != 'S') {
      result = login_failed(LOGIN_UNSUPPORTED, "SSLRequest answered '%c'", answer);
      goto done;
    }
  }
  if (how->context_per_login && !(own = raw_tls_context(how->cafile))) {
    result = login_failed(LOGIN_ERROR, "TLS context with CA %s: %s", how->cafile, tls_error());
    goto done;
  }
  ssl = SSL_new(own ? own : how->tls);
  SSL_set_fd(ssl, fd);
  // The same checks as libpq's sslmode=verify-full with host=localhost: chain to the CA, name in the
  // certificate; SNI as libpq 15 sends it.
  SSL_set_tlsext_host_name(ssl, how->host);
  SSL_set1_host(ssl, how->host);
  errno = 0;
  if (SSL_connect(ssl) != 1) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
      result =
          login_failed(LOGIN_ERROR, "certificate not verified: %s", X509_verify_cert_error_string(verify));
    else if (unless_timed_out(LOGIN_UNSUPPORTED) == LOGIN_ERROR)
      result = login_failed(LOGIN_ERROR, "TLS handshake timed out");
    else
      result = login_failed(LOGIN_UNSUPPORTED, "TLS handshake refused: %s", tls_error());
    goto done;
  }
  if (how->direct) {
    const unsigned char* alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len != 10 || memcmp(alpn, "postgresql", 10) != 0) {
      result = login_failed(LOGIN_UNSUPPORTED, "the server did not select ALPN postgresql");
      goto done;
    }
  }
  unsigned char flight[1024];
  size_t flight_len = pipelined_flight(how, flight, sizeof flight);
  if (!flight_len) {
    result = login_failed(LOGIN_ERROR, "user, database and password take more than %zu bytes", sizeof flight);
    goto done;
  }
  if (SSL_write(ssl, flight, (int)flight_len) != (int)flight_len) {
    result = login_failed(LOGIN_ERROR, "write: %s", tls_error());
    goto done;
  }
  result = read_until_ready(ssl);
  if (result == LOGIN_OK) {
    // Terminate and close_notify, as libpq's PQfinish sends them; the server's close_notify is not waited
    // for (libpq does not wait either).
    static const unsigned char terminate[5] = {'X', 0, 0, 0, 4};
    if (SSL_write(ssl, terminate, 5) != 5)
      result = login_failed(LOGIN_ERROR, "write Terminate: %s", tls_error());
    SSL_shutdown(ssl);
  }
done:
  SSL_free(ssl);
  SSL_CTX_free(own);
  close(fd);
  ERR_clear_error();
  return result;
}
