// What coldpath_login.c and coldpath_pipelined.c share: a login's outcome and the pipelined raw login.
#ifndef COLDPATH_LOGIN_H
#define COLDPATH_LOGIN_H

#include <openssl/ssl.h>

enum outcome { LOGIN_OK, LOGIN_UNSUPPORTED, LOGIN_ERROR };

// Why the last login was not LOGIN_OK, for the note column.
extern char login_failure[512];

// Sets login_failure from the format (tabs and newlines made spaces) and returns `kind`.
enum outcome login_failed(enum outcome kind, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

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

// A client context that checks the server's certificate against `cafile`, offers ALPN postgresql and
// resumes no session; NULL if the CA file does not load.
SSL_CTX* raw_tls_context(const char* cafile);

// One pipelined login to hostaddr:port: TCP, TLS (after SSLRequest unless direct), the login and query in one
// write, the answer to the ReadyForQuery after the row, Terminate.
enum outcome raw_once(const struct raw_login* how, int port);

// OpenSSL's last error, or errno's, as text.
const char* tls_error(void);

#endif
