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
// 0 and D (coldpath_client.py --relay-only, a process of its own); NA without --relays. Build (as
// coldpath.sh does):
//     cc -O2 coldpath_login.c coldpath_pipelined.c $(pkg-config --cflags libpq) -lpq -lssl -lcrypto
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coldpath_login.h"

char login_failure[512];

enum outcome login_failed(enum outcome kind, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(login_failure, sizeof login_failure, fmt, ap);
  va_end(ap);
  // The note is one TSV field.
  for (char* c = login_failure; *c; ++c)
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
    result = login_failed(refused ? LOGIN_UNSUPPORTED : LOGIN_ERROR, "%s", msg);
  } else {
    PGresult* res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "1") != 0)
      result = login_failed(LOGIN_ERROR, "SELECT 1: %s", PQerrorMessage(conn));
    PQclear(res);
  }
  PQfinish(conn);
  return result;
}

// ---- measuring -------------------------------------------------------------------------------------------

struct path {
  const char* name;
  struct libpq_login libpq;  // libpq.sslmode NULL: a raw login
  struct raw_login raw;
  enum outcome state;  // LOGIN_OK while it is measured, else why it stopped (and note says how)
  char note[sizeof login_failure];
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
  if (p->state != LOGIN_OK) memcpy(p->note, login_failure, sizeof login_failure);
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
  const char *conninfo = NULL, *pipelined_user = NULL, *names[16] = {0};
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
  // A write to a connection the server has closed fails with EPIPE instead of ending the process.
  signal(SIGPIPE, SIG_IGN);
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
