// Cold-path client in C for bench/coldpath.sh: times libpq logins and pipelined raw TLS logins, one process.
//
//   coldpath_login --conninfo CONNINFO [--pipelined-user USER] [--reps N] [--cpu-reps M]
//                  [--relays PORT0 PORTD --delay-ms D] PATH...
//
// PATH: libpq-scram, libpq-scram-tls, libpq-scram-tls-cb (libpq: SCRAM with sslmode disable / verify-full /
// verify-full and channel_binding=require), pipelined-tls, pipelined-direct-tls, pipelined-tls-new-ctx (raw:
// SSLRequest or not, then TLS and the login in one write; -new-ctx builds a new SSL_CTX per login, as libpq
// 15 does). CONNINFO is a libpq connection string with host (the name the certificate must carry), hostaddr,
// port, user, password, dbname and sslrootcert: the libpq paths add sslmode (and channel_binding) to it, the
// raw ones read their fields from it (user: --pipelined-user if given). Every login is a new connection that
// ends after the ReadyForQuery that follows the row of SELECT 1. For each path, in the order given, one line
// (tab-separated) like coldpath_client.py's with the path in front:
//     path  status  t0_ms  tdelay_ms  round_trips  cpu_ms  wall_ms  note
// cpu_ms and wall_ms: medians over max(N, M) logins without a relay, cpu_ms this process's CPU time
// (CLOCK_PROCESS_CPUTIME_ID: user + system); t0/tdelay: the fastest of N logins through the relays of delay
// 0 and D (coldpath_client.py --relay-only, a process of its own); NA without --relays. Build:
//     cc -O2 -o coldpath_login coldpath_login.c $(pkg-config --cflags libpq) -lpq -lssl -lcrypto
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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

// ---- libpq -----------------------------------------------------------------------------------------------

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

// ---- the pipelined raw login -----------------------------------------------------------------------------

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

// ---- measuring -------------------------------------------------------------------------------------------

struct path {
  const char* name;
  struct libpq_login libpq;  // libpq.sslmode NULL: a raw login
  struct raw_login raw;
  enum outcome state;  // LOGIN_OK while it is measured, else why it stopped (and note says how)
  char note[sizeof failure];
  double *t0, *td, *cpu, *wall;  // per login: through relay 0, relay D, and without a relay (wall and CPU)
};

static double ms(const struct timespec* a, const struct timespec* b) {
  return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

// One login of path p to `port`: its wall and CPU milliseconds. A failure stops the path's measuring.
static void timed(struct path* p, int port, double* wall_ms, double* cpu_ms) {
  struct timespec w0, c0, w1, c1;
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port);
  clock_gettime(CLOCK_MONOTONIC, &w0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  p->state = p->libpq.sslmode ? libpq_once(&p->libpq, port_text) : raw_once(&p->raw, port);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_MONOTONIC, &w1);
  *wall_ms = ms(&w0, &w1);
  *cpu_ms = ms(&c0, &c1);
  if (p->state != LOGIN_OK) memcpy(p->note, failure, sizeof failure);
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

// Sets p up as path `name`; 0 when that name is known and the connection string has what it needs.
static int set_up(struct path* p, const char* name, const char* conninfo, const PQconninfoOption* opts,
                  const char* pipelined_user, int logins) {
  *p = (struct path){.name = name, .libpq = {.conninfo = conninfo}};
  p->t0 = calloc((size_t)logins, sizeof(double)), p->td = calloc((size_t)logins, sizeof(double));
  p->cpu = calloc((size_t)logins, sizeof(double)), p->wall = calloc((size_t)logins, sizeof(double));
  if (!p->t0 || !p->td || !p->cpu || !p->wall) return -1;
  if (!strcmp(name, "libpq-scram")) {
    p->libpq.sslmode = "disable";
  } else if (!strcmp(name, "libpq-scram-tls")) {
    p->libpq.sslmode = "verify-full";
  } else if (!strcmp(name, "libpq-scram-tls-cb")) {
    p->libpq.sslmode = "verify-full", p->libpq.channel_binding = "require";
  } else if (!strcmp(name, "pipelined-tls") || !strcmp(name, "pipelined-direct-tls") ||
             !strcmp(name, "pipelined-tls-new-ctx")) {
    p->raw = (struct raw_login){.direct = !strcmp(name, "pipelined-direct-tls"),
                                .context_per_login = !strcmp(name, "pipelined-tls-new-ctx"),
                                .cafile = option(opts, "sslrootcert"),
                                .host = option(opts, "host"),
                                .hostaddr = option(opts, "hostaddr"),
                                .user = pipelined_user ? pipelined_user : option(opts, "user"),
                                .password = option(opts, "password"),
                                .dbname = option(opts, "dbname")};
    const struct raw_login* r = &p->raw;
    if (!r->host || !r->hostaddr || !r->user || !r->password || !r->dbname || !r->cafile) {
      fprintf(stderr,
              "coldpath_login: --conninfo needs host, hostaddr, user, password, dbname, sslrootcert\n");
      return -1;
    }
    if (!(p->raw.tls = raw_tls_context(r->cafile))) {
      fprintf(stderr, "coldpath_login: TLS context with CA %s: %s\n", r->cafile, tls_error());
      return -1;
    }
  } else {
    fprintf(stderr, "coldpath_login: no path %s\n", name);
    return -1;
  }
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: coldpath_login --conninfo CONNINFO [--pipelined-user USER] [--reps N] [--cpu-reps M]\n"
          "                      [--relays PORT0 PORTD --delay-ms D] PATH...\n");
  return 2;
}

int main(int argc, char** argv) {
  const char *conninfo = NULL, *pipelined_user = NULL, *names[16];
  int reps = 5, cpu_reps = 0, relay0 = 0, relayd = 0, n = 0;
  double delay = 0;
  for (int i = 1; i < argc; ++i) {
    int more = argc - 1 - i;
    if (!strcmp(argv[i], "--conninfo") && more)
      conninfo = argv[++i];
    else if (!strcmp(argv[i], "--pipelined-user") && more)
      pipelined_user = argv[++i];
    else if (!strcmp(argv[i], "--reps") && more)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cpu-reps") && more)
      cpu_reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--delay-ms") && more)
      delay = atof(argv[++i]);
    else if (!strcmp(argv[i], "--relays") && more > 1)
      relay0 = atoi(argv[++i]), relayd = atoi(argv[++i]);
    else if (argv[i][0] != '-' && n < 16)
      names[n++] = argv[i];
    else
      return usage();
  }
  int logins = cpu_reps > reps ? cpu_reps : reps;  // without a relay; the first `reps` alternate with relayed
  if (!conninfo || !n || reps < 1 || logins > 100000 || (relay0 && delay <= 0)) return usage();
  char* parse_error = NULL;
  PQconninfoOption* opts = PQconninfoParse(conninfo, &parse_error);
  const char* port_text = opts ? option(opts, "port") : NULL;
  if (!port_text) {
    fprintf(stderr, "coldpath_login: --conninfo: %s\n", parse_error ? parse_error : "no port");
    return 2;
  }
  int port = atoi(port_text);
  struct path paths[16];
  for (int k = 0; k < n; ++k)
    if (set_up(&paths[k], names[k], conninfo, opts, pipelined_user, logins) != 0) return 2;

  double unused;
  // A first login of each path outside every figure: libraries initialised, the server's pool warm.
  for (int k = 0; k < n; ++k) timed(&paths[k], port, &unused, &unused);
  // Round by round, each path in turn, relayed logins between the others: drift on a shared machine lands
  // on every path, both delays and the CPU figures alike, and the CPU ratios compare like with like.
  for (int i = 0; i < logins; ++i) {
    for (int k = 0; k < n; ++k) {
      struct path* p = &paths[k];
      if (p->state == LOGIN_OK && relay0 && i < reps) timed(p, relay0, &p->t0[i], &unused);
      if (p->state == LOGIN_OK && relay0 && i < reps) timed(p, relayd, &p->td[i], &unused);
      if (p->state == LOGIN_OK) timed(p, port, &p->wall[i], &p->cpu[i]);
    }
  }
  for (int k = 0; k < n; ++k) {
    struct path* p = &paths[k];
    if (p->state != LOGIN_OK) {
      printf("%s\t%s\tNA\tNA\tNA\tNA\tNA\t%s\n", p->name,
             p->state == LOGIN_UNSUPPORTED ? "unsupported" : "error", p->note);
    } else if (relay0) {
      double m0 = minimum(p->t0, reps), md = minimum(p->td, reps);
      // +1: the TCP handshake, which the relay completes itself and so never delays.
      printf("%s\tok\t%.2f\t%.2f\t%.2f\t%.3f\t%.2f\t\n", p->name, m0, md, (md - m0) / (2 * delay) + 1,
             median(p->cpu, logins), median(p->wall, logins));
    } else {
      printf("%s\tok\tNA\tNA\tNA\t%.3f\t%.2f\t\n", p->name, median(p->cpu, logins), median(p->wall, logins));
    }
    SSL_CTX_free(p->raw.tls);
    free(p->t0), free(p->td), free(p->cpu), free(p->wall);
  }
  PQconninfoFree(opts);
  return 0;
}
