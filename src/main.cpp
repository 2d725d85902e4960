// pgmux: flags, signals, worker threads, and the wiring between them.
#include <csignal>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "admin/metrics.hpp"
#include "http/http_server.hpp"
#include "log.hpp"
#include "net/asio.hpp"
#include "net/listener.hpp"
#include "pgmux/config/config.hpp"
#include "pool/traffic.hpp"
#include "session/client_session.hpp"
#include "session/proxy.hpp"

namespace {

using namespace pgmux;

constexpr const char* kUsage =
    "usage: pgmux --config FILE        run the pooler\n"
    "       pgmux --check-config FILE  validate FILE and exit (non-zero, naming the key, if it is wrong)\n"
    "       pgmux --version\n"
    "       pgmux --help\n";

int run(const config::Config& cfg) {
  log::Level level;
  if (log::parse_level(cfg.log_level, level)) log::set_level(level);
  log::Format format;
  if (log::parse_format(cfg.log_format, format)) log::set_format(format);
  session::Proxy proxy(cfg);
  const int workers = proxy.workers();

  // One io_context per worker: a session, its lease and its timers stay on one thread.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<tcp::acceptor> acceptors;
  for (int i = 0; i < workers; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    if (i == 0) net::check_address_free(*contexts.back(), cfg.listen.postgres);
    acceptors.push_back(net::open_listener(*contexts.back(), cfg.listen.postgres));
  }
  std::vector<asio::any_io_executor> executors;
  for (auto& io : contexts) executors.push_back(io->get_executor());
  proxy.set_worker_executors(std::move(executors));
  for (int i = 0; i < workers; ++i) {
    asio::io_context& io = *contexts[i];
    auto on_client = [&proxy, &io](tcp::socket socket) {
      asio::co_spawn(io, session::ClientSession::serve(proxy, std::move(socket)),
                     session::log_session_failure);
    };
    asio::co_spawn(io, net::accept_loop(acceptors[i], on_client), asio::detached);
  }

  // HTTP (POST /sql, metrics, health) on every worker, like the Postgres port: /sql is a workload, and the
  // kernel spreads its connections across the SO_REUSEPORT listeners.
  admin::Metrics metrics(proxy);
  auto sql_endpoint = std::make_shared<http::SqlEndpoint>(proxy);
  std::vector<tcp::acceptor> http_acceptors;
  if (cfg.listen.http) {
    net::check_address_free(*contexts[0], *cfg.listen.http);
    for (int i = 0; i < workers; ++i)
      http_acceptors.push_back(net::open_listener(*contexts[i], *cfg.listen.http));
    for (int i = 0; i < workers; ++i)
      asio::co_spawn(*contexts[i], http::serve_http(http_acceptors[i], proxy, metrics, sql_endpoint),
                     asio::detached);
  }

  // listen.metrics: Prometheus and probes on a port of their own, apart from client traffic; one worker is
  // plenty for them.
  std::optional<tcp::acceptor> metrics_acceptor;
  if (cfg.listen.metrics) {
    net::check_address_free(*contexts[0], *cfg.listen.metrics);
    metrics_acceptor.emplace(net::open_listener(*contexts[0], *cfg.listen.metrics));
    asio::co_spawn(*contexts[0], http::serve_http(*metrics_acceptor, proxy, metrics, nullptr),
                   asio::detached);
  }

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

  // SIGINT stops at once. SIGTERM drains: no new clients, each session ends at its next transaction boundary
  // (idle ones at once) with 57P01, and after shutdown_timeout whoever is left is cut off. Backends get a
  // Terminate either way.
  auto stop_everything = [&] {
    proxy.close_idle_backends();
    for (auto& io : contexts) io->stop();
  };
  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  asio::steady_timer drain_timer(*contexts[0]);
  std::function<void(pool::Clock::time_point)> watch_drain = [&](pool::Clock::time_point deadline) {
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&, deadline](error_code ec) {
      if (ec) return;
      int left = proxy.client_count().load() + proxy.http_requests_in_flight().load();
      if (left == 0 || pool::Clock::now() >= deadline) {
        if (left > 0) log::warning("shutdown_timeout: cutting off ", left, " client(s) still connected");
        log::info("drained; stopping");
        return stop_everything();
      }
      watch_drain(deadline);
    });
  };
  std::function<void()> on_signal = [&] {
    signals.async_wait([&](error_code ec, int signal) {
      if (ec) return;
      if (signal == SIGINT || proxy.draining()) {
        log::info("received ", strsignal(signal), ", stopping now");
        return stop_everything();
      }
      log::info("received ", strsignal(signal), ", draining (shutdown_timeout ", cfg.shutdown_timeout.count(),
                " ms)");
      proxy.start_draining();
      for (int i = 0; i < workers; ++i) {
        asio::post(*contexts[i], [&acceptors, i] {
          error_code ignored;
          acceptors[i].close(ignored);
          session::Relay::drain_all_on_this_thread();
        });
      }
      watch_drain(pool::Clock::now() + cfg.shutdown_timeout);
      on_signal();  // a second signal stops at once
    });
  };
  on_signal();

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
  if (args.size() != 2 || (args[0] != "--config" && args[0] != "--check-config")) {
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
    return run(cfg);
  } catch (const config::ConfigError& e) {
    std::cerr << "pgmux: " << args[1] << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    log::error(e.what());
    return 1;
  }
}
