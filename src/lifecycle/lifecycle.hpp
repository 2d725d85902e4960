// The process's life after start: signals, reload, the drain on SIGTERM or SHUTDOWN, handing over to a
// successor, and the stop.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "lifecycle/listeners.hpp"
#include "net/asio.hpp"
#include "pool/pool.hpp"
#include "session/proxy.hpp"

namespace pgmux::lifecycle {

class Lifecycle final : public session::ProcessControl {
 public:
  Lifecycle(session::Proxy& proxy, std::string config_path, Contexts& contexts,
            std::vector<WorkerListeners>& listeners);

  // SIGHUP reloads; SIGTERM drains; SIGINT, or a second SIGTERM, stops at once.
  void watch_signals();
  // Lets a new pgmux started with --takeover receive this one's listening sockets; this one then drains.
  void offer_takeover();

  // ProcessControl (admin console RELOAD / SHUTDOWN); callable from any worker thread.
  std::string reload() override;
  void shut_down() override { drain("admin SHUTDOWN"); }

  // Stops accepting, ends every session at its next transaction boundary (idle ones at once, with 57P01),
  // and stops when none is left or after shutdown_timeout. Any thread.
  void drain(std::string why);

 private:
  // On worker 0. The HTTP listeners stay open, answering /readyz and /sql with 503 so that load balancers
  // see the drain, unless the sockets were handed over: then the successor answers them.
  void begin_drain(const std::string& why, bool handed_over = false);
  void watch_drain(pool::Clock::time_point deadline);
  void stop_now();
  InheritedSockets listening_sockets() const;

  session::Proxy& proxy_;
  const std::string config_path_;
  Contexts& contexts_;
  std::vector<WorkerListeners>& listeners_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;
  std::mutex reload_mutex_;
  // A client that logged in just before the drain gets this long to send its first request.
  static constexpr auto kNewcomerGrace = std::chrono::seconds(1);
  pool::Clock::time_point newcomers_deadline_;
  bool newcomers_ended_ = true;  // one reload at a time (SIGHUP and RELOAD may race)
};

}  // namespace pgmux::lifecycle
