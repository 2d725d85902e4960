// The process's life after start: signals, reload, the drain on SIGTERM or SHUTDOWN, handing over to a
// successor, and the stop.
#include "lifecycle/lifecycle.hpp"

#include <csignal>
#include <cstring>

#include "lifecycle/reload.hpp"
#include "lifecycle/takeover.hpp"
#include "log.hpp"
#include "session/relay.hpp"

namespace pgmux::lifecycle {

Lifecycle::Lifecycle(session::Proxy& proxy, std::string config_path, Contexts& contexts,
                     std::vector<WorkerListeners>& listeners)
    : proxy_(proxy),
      config_path_(std::move(config_path)),
      contexts_(contexts),
      listeners_(listeners),
      signals_(*contexts[0], SIGINT, SIGTERM, SIGHUP),
      drain_timer_(*contexts[0]) {}

void Lifecycle::watch_signals() {
  signals_.async_wait([this](error_code ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      log::info("received SIGHUP, reloading ", config_path_);
      reload();
    } else if (signal == SIGINT) {
      log::info("received ", strsignal(signal), ", stopping now");
      return stop_now();
    } else {
      begin_drain(std::string("received ") + strsignal(signal));  // a second one stops at once
    }
    watch_signals();
  });
}

std::string Lifecycle::reload() {
  std::lock_guard lock(reload_mutex_);
  std::string refused = reload_config(proxy_, config_path_);
  if (!refused.empty()) return refused;
  // Clients of databases the new config no longer has end at their next transaction boundary.
  for (auto& io : contexts_) asio::post(*io, [] { session::Relay::drain_retired_on_this_thread(); });
  return {};
}

void Lifecycle::drain(std::string why) {
  asio::post(*contexts_[0], [this, why = std::move(why)] { begin_drain(why); });
}

void Lifecycle::begin_drain(const std::string& why, bool handed_over) {
  if (proxy_.draining()) {
    log::info(why, " while draining: stopping now");
    return stop_now();
  }
  auto timeout = proxy_.config()->shutdown_timeout;
  log::info(why, ": draining (shutdown_timeout ", timeout.count(), " ms)");
  proxy_.start_draining();  // /readyz says 503 from now on
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    asio::post(*contexts_[i], [this, i, handed_over] {
      error_code ignored;
      for (auto& acceptor : listeners_[i].postgres) acceptor.close(ignored);
      if (handed_over) {
        for (auto& acceptor : listeners_[i].http) acceptor.close(ignored);
        for (auto& acceptor : listeners_[i].metrics) acceptor.close(ignored);
      }
      session::Relay::drain_all_on_this_thread(/*spare_new_clients=*/true);
    });
  }
  newcomers_ended_ = false;
  newcomers_deadline_ = pool::Clock::now() + kNewcomerGrace;
  watch_drain(pool::Clock::now() + timeout);
}

void Lifecycle::watch_drain(pool::Clock::time_point deadline) {
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this, deadline](error_code ec) {
    if (ec) return;
    // Admin console sessions are not waited for: they hold no transaction, and SHUTDOWN comes from one.
    int left = proxy_.client_count().load() - proxy_.admin_client_count().load() +
               proxy_.http_requests_in_flight().load();
    if (!newcomers_ended_ && pool::Clock::now() >= newcomers_deadline_) {
      // Clients spared for having just logged in had their moment: those still idle end now.
      newcomers_ended_ = true;
      for (auto& io : contexts_) asio::post(*io, [] { session::Relay::drain_all_on_this_thread(); });
    }
    if (left > 0 && pool::Clock::now() < deadline) return watch_drain(deadline);
    if (left > 0) log::warning("shutdown_timeout: cutting off ", left, " client(s) still connected");
    log::info("drained; stopping");
    stop_now();
  });
}

void Lifecycle::stop_now() {
  // Backends get a Terminate, so Postgres logs a clean exit rather than an unexpected EOF.
  proxy_.close_idle_backends();
  for (auto& io : contexts_) io->stop();
}

InheritedSockets Lifecycle::listening_sockets() const {
  InheritedSockets sockets;
  for (const WorkerListeners& worker : listeners_) {
    for (const auto& acceptor : worker.postgres)
      if (acceptor.is_open())
        sockets.postgres.push_back(const_cast<net::Acceptor&>(acceptor).native_handle());
    for (const auto& acceptor : worker.http)
      if (acceptor.is_open()) sockets.http.push_back(const_cast<net::Acceptor&>(acceptor).native_handle());
    for (const auto& acceptor : worker.metrics)
      if (acceptor.is_open()) sockets.metrics.push_back(const_cast<net::Acceptor&>(acceptor).native_handle());
  }
  return sockets;
}

void Lifecycle::offer_takeover() {
  asio::co_spawn(
      *contexts_[0],
      lifecycle::offer_takeover(
          takeover_address(proxy_.config()->listen.postgres), [this] { return listening_sockets(); },
          [this](int new_pid) {
            begin_drain("handed the listeners over to pid " + std::to_string(new_pid), /*handed_over=*/true);
          }),
      asio::detached);
}

}  // namespace pgmux::lifecycle
