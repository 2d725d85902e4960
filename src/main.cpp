// pgmux: flags, signals, worker threads, and the wiring between them.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>
#include <vector>

#include "admin/metrics.hpp"
#include "http/http_server.hpp"
#include "lifecycle/fd_limit.hpp"
#include "lifecycle/lifecycle.hpp"
#include "lifecycle/takeover.hpp"
#include "log.hpp"
#include "net/asio.hpp"
#include "net/listener.hpp"
#include "net/readiness.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"
#include "pool/traffic.hpp"
#include "session/client_session.hpp"
#include "session/proxy.hpp"
#include "session/query_timeout_sweep.hpp"
#include "session/queue_ticket.hpp"

namespace {

using namespace pgmux;

constexpr const char* kUsage =
    "usage: pgmux --config FILE [--takeover]  run the pooler; with --takeover, take the listening sockets\n"
    "                                        over from a pgmux already serving these addresses, which\n"
    "                                        then drains (a restart that loses no connection)\n"
    "       pgmux --check-config FILE         validate FILE and exit (non-zero, naming the key, if it is "
    "wrong)\n"
    "       pgmux --hash-password USER [--scram-iterations N]\n"
    "                                        print a users: entry with a SCRAM verifier of the password\n"
    "                                        read from standard input (N: PBKDF2 rounds, default 4096)\n"
    "       pgmux --version\n"
    "       pgmux --help\n";

// The users: entry for USER, its password read from standard input (one line; a trailing newline is not
// part of it). The salt is random, so two runs print different verifiers for the same password.
int hash_password(const std::vector<std::string>& args) {
  const std::string& user = args[1];
  long iterations = 4096;
  if (args.size() == 4) {
    char* end = nullptr;
    iterations = std::strtol(args[3].c_str(), &end, 10);
    if (args[2] != "--scram-iterations" || *end != '\0' || iterations < 1 || iterations > 10'000'000) {
      std::cerr << "pgmux: --scram-iterations takes a number from 1 to 10000000\n";
      return 2;
    }
  }
  std::string password((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (password.ends_with('\n')) password.pop_back();
  if (password.ends_with('\r')) password.pop_back();
  if (password.empty() || user.empty()) {
    std::cerr << "pgmux: --hash-password needs a user name and a password on standard input\n";
    return 2;
  }
  auto quoted = [](std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  };
  std::cout << "- name: " << quoted(user) << "\n  password: "
            << quoted(auth::format_scram_verifier(auth::new_scram_verifier(password, int(iterations))))
            << "\n";
  return 0;
}

int run(const std::string& config_path, const config::Config& cfg, bool takeover) {
  log::Level level;
  if (log::parse_level(cfg.log_level, level)) log::set_level(level);
  log::Format format;
  if (log::parse_format(cfg.log_format, format)) log::set_format(format);
  // Before the proxy: backends leave their worker's set when they close, the last ones with the proxy.
  std::vector<std::unique_ptr<net::ReadinessSet>> readiness;
  session::Proxy proxy(cfg);
  const int workers = proxy.workers();
  lifecycle::raise_fd_limit_for(cfg, workers);

  // One io_context per worker: a session, its lease and its timers stay on one thread.
  lifecycle::Contexts contexts;
  for (int i = 0; i < workers; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
  std::optional<lifecycle::Handover> handover;
  if (takeover) {
    handover = lifecycle::request_takeover(cfg);
    if (handover)
      log::info("takeover: received ",
                handover->sockets.postgres.size() + handover->sockets.http.size() +
                    handover->sockets.metrics.size(),
                " listening socket(s) from pid ", handover->old_pid);
    else
      log::info("takeover: no pgmux serves these addresses; starting on free ports");
  }
  std::vector<asio::any_io_executor> executors;
  for (auto& io : contexts) executors.push_back(io->get_executor());
  proxy.set_worker_executors(std::move(executors));
  // Before anything runs on a worker: its relays watch their clients through it. Closed before the contexts
  // go, however this function ends.
  for (auto& io : contexts) readiness.push_back(net::ReadinessSet::start_on(*io));
  struct CloseSets {
    std::vector<std::unique_ptr<net::ReadinessSet>>& sets;
    ~CloseSets() {
      for (auto& set : sets) set->close();
    }
  } close_sets{readiness};
  std::vector<lifecycle::WorkerListeners> listeners =
      lifecycle::open_listeners(cfg, contexts, handover ? &handover->sockets : nullptr);
  for (int i = 0; i < workers; ++i) {
    asio::io_context& io = *contexts[i];
    auto on_client = [&proxy, &io](net::Socket socket) {
      asio::co_spawn(io, session::ClientSession::serve(proxy, std::move(socket)),
                     session::log_session_failure);
    };
    for (auto& acceptor : listeners[i].postgres)
      asio::co_spawn(io, net::accept_loop(acceptor, on_client), asio::detached);
    session::start_query_timeout_sweep(io, cfg.pool.query_timeout);
    session::start_queue_deadline_watch(io);
  }

  // HTTP (POST /sql, metrics, health) on every worker, like the Postgres port: /sql is a workload, and the
  // kernel spreads its connections across the SO_REUSEPORT listeners.
  admin::Metrics metrics(proxy);
  auto sql_endpoint = std::make_shared<http::SqlEndpoint>(proxy);
  for (int i = 0; i < workers; ++i)
    for (auto& acceptor : listeners[i].http)
      asio::co_spawn(*contexts[i], http::serve_http(acceptor, proxy, metrics, sql_endpoint), asio::detached);

  // listen.metrics: Prometheus and probes on a port of their own, apart from client traffic; one worker
  // (lifecycle::open_listeners puts it on worker 0) is plenty for them.
  for (auto& acceptor : listeners[0].metrics)
    asio::co_spawn(*contexts[0], http::serve_http(acceptor, proxy, metrics, nullptr), asio::detached);

  // The janitor closes idle backends past server_idle_timeout / server_lifetime, once a second.
  asio::steady_timer janitor(*contexts[0]);
  std::function<void()> sweep = [&] {
    janitor.expires_after(std::chrono::seconds(1));
    janitor.async_wait([&](error_code ec) {
      if (ec) return;
      proxy.sweep_pools();
      sweep();
    });
  };
  sweep();

  lifecycle::Lifecycle life(proxy, config_path, contexts, listeners);
  proxy.set_control(&life);
  life.watch_signals();
  life.offer_takeover();
  // The old process stops accepting once told; the sockets' queues are served from here on.
  if (handover) lifecycle::confirm_takeover(*handover);

  log::info(
      "pgmux ", PGMUX_VERSION, " listening on ", cfg.listen.postgres.host, ":", cfg.listen.postgres.port,
      cfg.listen.http ? " and HTTP on " + cfg.listen.http->host + ":" + std::to_string(cfg.listen.http->port)
                      : std::string(),
      " with ", workers, " workers, ", cfg.databases.size(), " database(s)");
  std::vector<std::thread> threads;
  for (int i = 1; i < workers; ++i) {
    threads.emplace_back([&io = *contexts[i], i] {
      pool::set_current_worker(i);
      io.run();
    });
  }
  contexts[0]->run();
  for (auto& io : contexts) io->stop();
  for (auto& t : threads) t.join();
  proxy.set_control(nullptr);
  log::info("pgmux stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kUsage;
    return 0;
  }
  if (args.size() == 1 && (args[0] == "--version" || args[0] == "-V")) {
    std::cout << "pgmux " << PGMUX_VERSION << "\n";
    return 0;
  }
  if (!args.empty() && args[0] == "--hash-password" && (args.size() == 2 || args.size() == 4))
    return hash_password(args);
  bool takeover = args.size() == 3 && args[0] == "--config" && args[2] == "--takeover";
  if (!(args.size() == 2 || takeover) || (args[0] != "--config" && args[0] != "--check-config")) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    config::Config cfg = config::load_config_file(args[1]);
    if (args[0] == "--check-config") {
      session::Proxy check(cfg);  // also parses every secret
      std::cout << args[1] << ": OK\n";
      return 0;
    }
    return run(args[1], cfg, takeover);
  } catch (const config::ConfigError& e) {
    std::cerr << "pgmux: " << args[1] << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    log::error(e.what());
    return 1;
  }
}
