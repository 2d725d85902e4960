// Cold-path client in C for bench/coldpath.sh: times one kind of login (libpq or a pipelined raw TLS login).
//
//   coldpath_login --path PATH --conninfo CONNINFO --reps N [--relays PORT0 PORTD --delay-ms D]
//
// PATH is libpq-scram, libpq-scram-tls, libpq-scram-tls-cb, pipelined-tls, pipelined-direct-tls or
// pipelined-tls-new-ctx (pipelined-tls with a new SSL_CTX per login, as libpq 15 has). CONNINFO
// is a libpq connection string with host (the name the certificate is checked against), hostaddr, port, user,
// password, dbname and sslrootcert; the libpq paths add sslmode (and channel_binding) to it, the raw paths
// take their fields from it. Every login is a new connection that ends after the first row of SELECT 1 and
// its ReadyForQuery. Prints the line coldpath_client.py prints (tab-separated):
//     status  t0_ms  tdelay_ms  round_trips  cpu_ms  wall_ms  note
// cpu_ms is this process's CPU time (CLOCK_PROCESS_CPUTIME_ID: user + system) per login without the relays,
// median of N; t0/tdelay the fastest of N logins through the relays (delay 0 and D, coldpath_client.py
// --relay-only, in a process of its own); without --relays the three are NA. Build:
//     cc -O2 -o coldpath_login coldpath_login.c $(pkg-config --cflags libpq) -lpq -lssl -lcrypto
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum outcome { LOGIN_OK, LOGIN_UNSUPPORTED, LOGIN_ERROR };

// Why the last login was not LOGIN_OK, for the note column.
static char failure[512];

static enum outcome fail(enum outcome kind, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(failure, sizeof failure, fmt, ap);
  va_end(ap);
  // The note is one TSV field.
  for (char* c = failure; *c; ++c)
    if (*c == '\t' || *c == '\n' || *c == '\r') *c = ' ';
  return kind;
}

// ---- libpq
// ----------------------------------------------------------------------------------------------------

struct libpq_login {
  const char* conninfo;
  const char* sslmode;
  const char* channel_binding;  // NULL: libpq's default (prefer)
};

// PQconnectdbParams with the connection string first, so the port (a relay's) and the TLS settings after it
// override what the string says (libpq keeps the last value of a repeated keyword).
static enum outcome libpq_once(const struct libpq_login* how, const char* port) {
  const char* keys[5] = {"dbname", "sslmode"};
  const char* values[5] = {how->conninfo, how->sslmode};
  int n = 2;
  if (how->channel_binding) keys[n] = "channel_binding", values[n++] = how->channel_binding;
  if (port) keys[n] = "port", values[n++] = port;
  keys[n] = NULL, values[n] = NULL;
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  enum outcome result = LOGIN_OK;
  if (PQstatus(conn) != CONNECTION_OK) {
    const char* msg = PQerrorMessage(conn);
    int refused =
        strstr(msg, "does not support SSL") || (how->channel_binding && strstr(msg, "channel binding"));
    result = fail(refused ? LOGIN_UNSUPPORTED : LOGIN_ERROR, "%s", msg);
  } else {
    PGresult* res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "1") != 0)
      result = fail(LOGIN_ERROR, "SELECT 1: %s", PQerrorMessage(conn));
    PQclear(res);
  }
  PQfinish(conn);
  return result;
}

// ---- the pipelined raw login
// ------------------------------------------------------------------------------------

struct raw_login {
  SSL_CTX* tls;           // one for every login, as one client process keeps one; no session is ever resumed
  int direct;             // 1: ClientHello first (direct TLS); 0: SSLRequest, then TLS
  int context_per_login;  // 1: a new SSL_CTX (CA file loaded) for each login instead, as libpq 15 makes one
  const char* cafile;
  const char* host;
  const char* hostaddr;
  const char* user;
  const char* password;
  const char* dbname;
};

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
// Terminate follows once the answer is in, as libpq's PQfinish sends it: pgmux (this branch's main) ends a
// session as soon as it reads a Terminate, without relaying the replies to what came before it in the same
// read, where Postgres answers them first. Returns the flight's length, or 0 when it does not fit.
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

static const char* tls_error(void) {
  unsigned long e = ERR_get_error();
  static char text[256];
  if (!e) return errno ? strerror(errno) : "the server closed the connection";
  ERR_error_string_n(e, text, sizeof text);
  ERR_clear_error();
  return text;
}

// Reads backend messages until the ReadyForQuery after the first DataRow. An ErrorResponse or an
// authentication request other than cleartext (already answered) or OK ends the login as unsupported.
static enum outcome read_until_ready(SSL* ssl) {
  static unsigned char buf[16384];
  size_t have = 0;
  int seen_row = 0;
  for (;;) {
    size_t at = 0;
    while (have - at >= 5) {
      unsigned char kind = buf[at];
      uint32_t len = get_u32(buf + at + 1);
      if (len < 4 || len > sizeof buf - 1) return fail(LOGIN_ERROR, "message '%c' of %u bytes", kind, len);
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
        return fail(LOGIN_UNSUPPORTED, "ErrorResponse %s: %s", code, text);
      }
      if (kind == 'R' && len >= 8) {
        uint32_t method = get_u32(body);
        if (method == 10)
          return fail(LOGIN_UNSUPPORTED,
                      "the server asks for SCRAM, a pipelined cleartext password cannot answer");
        if (method != 0 && method != 3)
          return fail(LOGIN_UNSUPPORTED, "the server asks for authentication method %u", method);
      }
      at += 1 + (size_t)len;
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    int n = SSL_read(ssl, buf + have, (int)(sizeof buf - have));
    if (n <= 0) return fail(LOGIN_UNSUPPORTED, "no ReadyForQuery after the row: %s", tls_error());
    have += (size_t)n;
  }
}

static SSL_CTX* raw_tls_context(const char* cafile) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) return NULL;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  // libpq 15 resumes no TLS session (a new SSL_CTX per connection), so neither does this client.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char alpn[] = "\x0apostgresql";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  return ctx;
}

static enum outcome raw_once(const struct raw_login* how, int port) {
  errno = 0;
  int fd = tcp_connect(how->hostaddr, port);
  if (fd < 0) return fail(LOGIN_ERROR, "connect to %s:%d: %s", how->hostaddr, port, strerror(errno));
  SSL* ssl = NULL;
  SSL_CTX* own = NULL;  // this login's context, when it has one of its own
  enum outcome result;
  if (!how->direct) {
    unsigned char request[8], answer = 0;
    put_u32(request, 8);
    put_u32(request + 4, 80877103);  // SSLRequest
    if (write(fd, request, 8) != 8 || read(fd, &answer, 1) != 1 || answer != 'S') {
      result = fail(LOGIN_UNSUPPORTED, "SSLRequest answered '%c'", answer ? answer : '?');
      goto done;
    }
  }
  if (how->context_per_login && !(own = raw_tls_context(how->cafile))) {
    result = fail(LOGIN_ERROR, "TLS context with CA %s: %s", how->cafile, tls_error());
    goto done;
  }
  ssl = SSL_new(own ? own : how->tls);
  SSL_set_fd(ssl, fd);
  // The same checks as libpq's sslmode=verify-full with host=localhost: chain to the CA, name in the
  // certificate; SNI as libpq 15 sends it.
  SSL_set_tlsext_host_name(ssl, how->host);
  SSL_set1_host(ssl, how->host);
  if (SSL_connect(ssl) != 1) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
      result = fail(LOGIN_ERROR, "certificate not verified: %s", X509_verify_cert_error_string(verify));
    else
      result = fail(LOGIN_UNSUPPORTED, "TLS handshake refused: %s", tls_error());
    goto done;
  }
  if (how->direct) {
    const unsigned char* alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len != 10 || memcmp(alpn, "postgresql", 10) != 0) {
      result = fail(LOGIN_UNSUPPORTED, "the server did not select ALPN postgresql");
      goto done;
    }
  }
  unsigned char flight[1024];
  size_t flight_len = pipelined_flight(how, flight, sizeof flight);
  if (!flight_len) {
    result = fail(LOGIN_ERROR, "user, database and password take more than %zu bytes", sizeof flight);
    goto done;
  }
  if (SSL_write(ssl, flight, (int)flight_len) != (int)flight_len) {
    result = fail(LOGIN_ERROR, "write: %s", tls_error());
    goto done;
  }
  result = read_until_ready(ssl);
  if (result == LOGIN_OK) {
    // Terminate and close_notify, as libpq's PQfinish sends them; the server's close_notify is not waited
    // for (libpq does not wait either).
    static const unsigned char terminate[5] = {'X', 0, 0, 0, 4};
    if (SSL_write(ssl, terminate, 5) != 5) result = fail(LOGIN_ERROR, "write Terminate: %s", tls_error());
    SSL_shutdown(ssl);
  }
done:
  SSL_free(ssl);
  SSL_CTX_free(own);
  close(fd);
  ERR_clear_error();
  return result;
}

// ---- measuring
// --------------------------------------------------------------------------------------------------

struct path {
  const char* name;
  struct libpq_login libpq;  // libpq.sslmode NULL: a raw login
  struct raw_login raw;
};

static enum outcome login_once(const struct path* p, int port) {
  if (p->libpq.sslmode) {
    char text[16];
    snprintf(text, sizeof text, "%d", port);
    return libpq_once(&p->libpq, port ? text : NULL);
  }
  return raw_once(&p->raw, port);
}

static double ms(const struct timespec* a, const struct timespec* b) {
  return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

// One login: its wall and CPU milliseconds. port 0: the conninfo's own.
static enum outcome timed(const struct path* p, int port, double* wall_ms, double* cpu_ms) {
  struct timespec w0, c0, w1, c1;
  clock_gettime(CLOCK_MONOTONIC, &w0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  enum outcome result = login_once(p, port);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_MONOTONIC, &w1);
  *wall_ms = ms(&w0, &w1);
  *cpu_ms = ms(&c0, &c1);
  return result;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof *v, by_value);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minimum(const double* v, int n) {
  double m = v[0];
  for (int i = 1; i < n; ++i)
    if (v[i] < m) m = v[i];
  return m;
}

// The value of `key` in a parsed connection string, or NULL.
static const char* option(const PQconninfoOption* opts, const char* key) {
  for (; opts && opts->keyword; ++opts)
    if (strcmp(opts->keyword, key) == 0) return opts->val;
  return NULL;
}

static int usage(void) {
  fprintf(
      stderr,
      "usage: coldpath_login --path PATH --conninfo CONNINFO --reps N [--relays PORT0 PORTD --delay-ms D]\n");
  return 2;
}

int main(int argc, char** argv) {
  const char *name = NULL, *conninfo = NULL;
  int reps = 5, relay0 = 0, relayd = 0;
  double delay = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--path") && i + 1 < argc)
      name = argv[++i];
    else if (!strcmp(argv[i], "--conninfo") && i + 1 < argc)
      conninfo = argv[++i];
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay = atof(argv[++i]);
    else if (!strcmp(argv[i], "--relays") && i + 2 < argc)
      relay0 = atoi(argv[++i]), relayd = atoi(argv[++i]);
    else
      return usage();
  }
  if (!name || !conninfo || reps < 1 || reps > 10000 || (relay0 && delay <= 0)) return usage();

  char* parse_error = NULL;
  PQconninfoOption* opts = PQconninfoParse(conninfo, &parse_error);
  if (!opts) {
    fprintf(stderr, "coldpath_login: --conninfo: %s", parse_error ? parse_error : "out of memory\n");
    return 2;
  }
  const char *port_text = option(opts, "port"), *cafile = option(opts, "sslrootcert");
  struct path p = {.name = name, .libpq = {.conninfo = conninfo}};
  if (!strcmp(name, "libpq-scram")) {
    p.libpq.sslmode = "disable";
  } else if (!strcmp(name, "libpq-scram-tls")) {
    p.libpq.sslmode = "verify-full";
  } else if (!strcmp(name, "libpq-scram-tls-cb")) {
    p.libpq.sslmode = "verify-full", p.libpq.channel_binding = "require";
  } else if (!strcmp(name, "pipelined-tls") || !strcmp(name, "pipelined-direct-tls") ||
             !strcmp(name, "pipelined-tls-new-ctx")) {
    p.raw = (struct raw_login){.direct = !strcmp(name, "pipelined-direct-tls"),
                               .context_per_login = !strcmp(name, "pipelined-tls-new-ctx"),
                               .cafile = cafile,
                               .host = option(opts, "host"),
                               .hostaddr = option(opts, "hostaddr"),
                               .user = option(opts, "user"),
                               .password = option(opts, "password"),
                               .dbname = option(opts, "dbname")};
    if (!p.raw.host || !p.raw.hostaddr || !p.raw.user || !p.raw.password || !p.raw.dbname || !cafile ||
        !port_text) {
      fprintf(stderr,
              "coldpath_login: --conninfo needs host, hostaddr, port, user, password, dbname, sslrootcert\n");
      return 2;
    }
    p.raw.tls = raw_tls_context(cafile);
    if (!p.raw.tls) {
      fprintf(stderr, "coldpath_login: TLS context with CA %s: %s\n", cafile, tls_error());
      return 2;
    }
  } else {
    return usage();
  }
  int port = port_text ? atoi(port_text) : 0;

  double *t0 = calloc((size_t)reps, sizeof(double)), *td = calloc((size_t)reps, sizeof(double));
  double *cpu = calloc((size_t)reps, sizeof(double)), *wall = calloc((size_t)reps, sizeof(double));
  if (!t0 || !td || !cpu || !wall) return 2;
  double unused;
  // A first login outside every figure: library initialisation, the server's pool and caches warm for all.
  enum outcome result = timed(&p, port, &unused, &unused);
  // Interleaved, so drift on a shared machine lands on both delays and the CPU figure alike.
  for (int i = 0; i < reps && result == LOGIN_OK; ++i) {
    if (relay0) {
      result = timed(&p, relay0, &t0[i], &unused);
      if (result == LOGIN_OK) result = timed(&p, relayd, &td[i], &unused);
    }
    if (result == LOGIN_OK) result = timed(&p, port, &wall[i], &cpu[i]);
  }
  if (result != LOGIN_OK) {
    printf("%s\tNA\tNA\tNA\tNA\tNA\t%s\n", result == LOGIN_UNSUPPORTED ? "unsupported" : "error", failure);
  } else if (relay0) {
    double m0 = minimum(t0, reps), md = minimum(td, reps);
    // +1: the TCP handshake, which the relay completes itself and so never delays.
    printf("ok\t%.2f\t%.2f\t%.2f\t%.3f\t%.2f\t\n", m0, md, (md - m0) / (2 * delay) + 1, median(cpu, reps),
           median(wall, reps));
  } else {
    printf("ok\tNA\tNA\tNA\t%.3f\t%.2f\t\n", median(cpu, reps), median(wall, reps));
  }
  PQconninfoFree(opts);
  if (p.raw.tls) SSL_CTX_free(p.raw.tls);
  free(t0), free(td), free(cpu), free(wall);
  return 0;
}
