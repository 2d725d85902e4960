// Pure parts of the process's life: which reloaded keys need a restart, and how many descriptors a config
// needs.
#include <sys/resource.h>

#include <catch2/catch.hpp>

#include "lifecycle/fd_limit.hpp"
#include "lifecycle/reload.hpp"

using namespace pgmux;

namespace {

config::Config parse(const std::string& yaml) {
  return config::parse_config(yaml, [](const std::string&) { return std::nullopt; });
}

const char* kBase =
    "listen:\n  postgres: \"127.0.0.1:6432\"\nworkers: 2\npool:\n  default_pool_size: 10\n  max_client_conn: "
    "500\n"
    "databases:\n  app: {}\n  forced:\n    user: owner\n    password: x\n    pool_size: 3\n"
    "users:\n  - name: a\n    password: x\n  - name: b\n    password: y\n";

}  // namespace

TEST_CASE("a reload names the listener, worker and tcp_defer_accept keys it cannot apply, and nothing else",
          "[lifecycle]") {
  config::Config running = parse(kBase);
  CHECK(lifecycle::keys_needing_restart(running, parse(kBase)).empty());
  std::string changed = kBase;
  changed.replace(changed.find("6432"), 4, "7432");
  changed.replace(changed.find("workers: 2"), 10, "workers: 3");
  changed.replace(changed.find("default_pool_size: 10"), 21, "default_pool_size: 30");
  changed += "  - name: c\n    password: z\n";
  CHECK(lifecycle::keys_needing_restart(running, parse(changed)) ==
        std::vector<std::string>{"listen.postgres", "workers"});
  CHECK(lifecycle::keys_needing_restart(running, parse(std::string(kBase) + "\n")).empty());
  std::string with_http = kBase;
  with_http.insert(with_http.find("workers"), "  http: \"127.0.0.1:8080\"\n");
  CHECK(lifecycle::keys_needing_restart(running, parse(with_http)) ==
        std::vector<std::string>{"listen.http"});
  CHECK(lifecycle::keys_needing_restart(running, parse(std::string(kBase) + "tcp_defer_accept: false\n")) ==
        std::vector<std::string>{"tcp_defer_accept"});
}

TEST_CASE("the descriptors a config needs count clients, every possible backend and the listeners",
          "[lifecycle]") {
  config::Config config = parse(kBase);
  // 500 clients + app: 2 users x 10 + forced: 1 x 3 + listeners 2x2+2 + margin 64
  CHECK(lifecycle::descriptors_needed(config, 2) == 500 + 20 + 3 + 6 + 64);
  // A TLS connection is three: its TCP socket and its tunnel's socketpair.
  config.tls.mode = config::TlsMode::allow;
  config.databases.at("forced").sslmode = config::SslMode::require;
  CHECK(lifecycle::descriptors_needed(config, 2) == 3 * 500 + 20 + 3 * 3 + 6 + 64);
  // Counting clients as plaintext (the least tls.mode allow needs).
  CHECK(lifecycle::descriptors_needed(config, 2, true) == 500 + 20 + 3 * 3 + 6 + 64);
}

TEST_CASE("a hard limit between what plaintext and TLS clients need is taken with a warning", "[lifecycle]") {
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
  if (before.rlim_max == RLIM_INFINITY) return;  // nothing to be short of
  lifecycle::raise_fd_limit(before.rlim_max + 100, before.rlim_max - 1);
  rlimit now{};
  getrlimit(RLIMIT_NOFILE, &now);
  CHECK(now.rlim_cur == before.rlim_max);
  CHECK_THROWS(lifecycle::raise_fd_limit(before.rlim_max + 100, before.rlim_max + 1));
  setrlimit(RLIMIT_NOFILE, &before);
}

TEST_CASE("the open files limit is raised to what is needed, or start is refused saying what to set",
          "[lifecycle]") {
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
  if (before.rlim_max == RLIM_INFINITY || before.rlim_max < 64) return;  // nothing to learn here
  rlimit lowered = before;
  lowered.rlim_cur = 32;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  lifecycle::raise_fd_limit(before.rlim_max);
  rlimit now{};
  getrlimit(RLIMIT_NOFILE, &now);
  CHECK(now.rlim_cur == before.rlim_max);
  try {
    lifecycle::raise_fd_limit(before.rlim_max + 1);
    FAIL("a need over the hard limit was accepted");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("LimitNOFILE=" + std::to_string(before.rlim_max + 1)) !=
          std::string::npos);
    CHECK(std::string(e.what()).find("max_client_conn") != std::string::npos);
  }
  setrlimit(RLIMIT_NOFILE, &before);
}
