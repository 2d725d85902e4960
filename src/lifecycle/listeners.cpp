// The listening sockets each worker accepts on: opened here, or inherited from an older pgmux.
#include "lifecycle/listeners.hpp"

#include "net/listener.hpp"

namespace pgmux::lifecycle {

namespace {

void open_for(const config::Endpoint& where, const std::vector<int>* inherited, Contexts& contexts,
              std::vector<WorkerListeners>& out, std::vector<net::Acceptor> WorkerListeners::*which,
              int workers, bool defer_accept) {
  const auto protocol = tcp::endpoint(asio::ip::make_address(where.host), where.port).protocol();
  int adopted = 0;
  if (inherited) {
    // The older process's sockets keep their accept queues: whatever waits in them is served here.
    for (int fd : *inherited) {
      int worker = adopted++ % workers;
      (out[worker].*which).emplace_back(*contexts[worker], protocol, fd);
      net::set_defer_accept((out[worker].*which).back(), defer_accept);  // the config may have changed
    }
  } else {
    net::check_address_free(*contexts[0], where);
  }
  // Joining the inherited sockets' SO_REUSEPORT group needs no check: the port is ours already.
  for (int worker = adopted; worker < workers; ++worker)
    (out[worker].*which).push_back(net::open_listener(*contexts[worker], where, defer_accept));
}

}  // namespace

std::vector<WorkerListeners> open_listeners(const config::Config& config, Contexts& contexts,
                                            const InheritedSockets* inherited) {
  std::vector<WorkerListeners> out(contexts.size());
  const int workers = static_cast<int>(contexts.size());
  open_for(config.listen.postgres, inherited ? &inherited->postgres : nullptr, contexts, out,
           &WorkerListeners::postgres, workers, config.tcp_defer_accept);
  if (config.listen.http)
    open_for(*config.listen.http, inherited ? &inherited->http : nullptr, contexts, out,
             &WorkerListeners::http, workers, config.tcp_defer_accept);
  if (config.listen.metrics)
    open_for(*config.listen.metrics, inherited ? &inherited->metrics : nullptr, contexts, out,
             &WorkerListeners::metrics, 1, config.tcp_defer_accept);
  return out;
}

}  // namespace pgmux::lifecycle
