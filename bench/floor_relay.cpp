// The cheapest relay there is, as a benchmark target: what any proxy on this machine pays at the least.
//
// One thread, one level-triggered epoll set, a server connection of its own per client (no pooling, no
// parsing, no authentication of its own: logins pass through to Postgres). Every readable socket gets one
// recv into a buffer and one send of it to the peer. That is the system-call pattern of every user-space TCP
// proxy, PgBouncer's and pgmux's included, with nothing else around it: the CPU it uses per transaction is
// the floor under any pooler's, and bench/run.sh reports the poolers' CPU against it.
//
// With THREADS > 1, each thread has its own listener on the port (SO_REUSEPORT, the kernel spreading clients)
// and its own epoll set, as pgmux's workers do: what using several cores costs, by itself.
//
//   floor_relay LISTEN_PORT SERVER_PORT [THREADS]   (127.0.0.1; stops on SIGINT or SIGTERM)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

// One end of a relayed pair, indexed by its descriptor.
struct End {
  int peer = -1;        // -1: this descriptor is not a relayed socket
  std::string pending;  // bytes read from the peer that this socket's send buffer had no room for
  bool paused = false;  // not read while its peer holds bytes from it: the peer's backlog stays one read long
};

// Shared by the threads, but each entry belongs to the one thread that accepted its pair.
std::vector<End> ends(1 << 16);
thread_local int epoll_fd = -1;

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

void watch(int op, int fd, std::uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  epoll_ctl(epoll_fd, op, fd, &event);
}

// What a socket waits for, from its state: only the rare full send buffer changes it.
void rewatch(int fd) {
  const End& end = ends[fd];
  watch(EPOLL_CTL_MOD, fd, (end.paused ? 0u : EPOLLIN) | (end.pending.empty() ? 0u : EPOLLOUT));
}

void close_pair(int fd) {
  const int peer = ends[fd].peer;
  for (int end : {fd, peer}) {
    if (end < 0 || ends[end].peer < 0) continue;
    close(end);  // also leaves the epoll set
    ends[end] = End{};
  }
}

// A client: its own server connection, both non-blocking and without Nagle's delay, as a proxy's would be.
void accept_client(int listener, int server_port) {
  const int client = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
  if (client < 0) return;
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  const sockaddr_in to = loopback(server_port);
  // A blocking connect: loopback answers at once, and logins are outside what this target measures.
  if (server < 0 || connect(server, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 ||
      client >= static_cast<int>(ends.size()) || server >= static_cast<int>(ends.size())) {
    close(client);
    if (server >= 0) close(server);
    return;
  }
  const int one = 1;
  for (int fd : {client, server}) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ends[client].peer = server;
  ends[server].peer = client;
  watch(EPOLL_CTL_ADD, client, EPOLLIN);
  watch(EPOLL_CTL_ADD, server, EPOLLIN);
}

void relay_from(int fd) {
  thread_local char buffer[64 * 1024];
  const ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (got <= 0) return close_pair(fd);
  const int peer = ends[fd].peer;
  ssize_t sent = send(peer, buffer, static_cast<std::size_t>(got), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN) return close_pair(fd);
  if (sent < 0) sent = 0;
  if (sent < got) {  // the peer is full: it keeps the rest, and this side is not read until that has gone out
    ends[peer].pending.assign(buffer + sent, buffer + got);
    ends[fd].paused = true;
    rewatch(peer);
    rewatch(fd);
  }
}

void flush_pending(int fd) {
  End& end = ends[fd];
  const ssize_t sent = send(fd, end.pending.data(), end.pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN) return close_pair(fd);
  if (sent > 0) end.pending.erase(0, static_cast<std::size_t>(sent));
  if (!end.pending.empty()) return;
  ends[end.peer].paused = false;
  rewatch(fd);
  rewatch(end.peer);
}

int open_listener(int port) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  const sockaddr_in at = loopback(port);
  if (bind(listener, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 || listen(listener, 4096) != 0) {
    std::perror("floor_relay: listen");
    std::exit(1);
  }
  return listener;
}

[[noreturn]] void run_loop(int listener, int server_port) {
  epoll_fd = epoll_create1(0);
  watch(EPOLL_CTL_ADD, listener, EPOLLIN);
  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(epoll_fd, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        accept_client(listener, server_port);
        continue;
      }
      if (ends[fd].peer >= 0 && (events[i].events & EPOLLOUT)) flush_pending(fd);
      // Still open (neither this nor a flush closed it), and readable, or reporting an error or hang-up.
      if (ends[fd].peer >= 0 && !ends[fd].paused && (events[i].events & ~EPOLLOUT)) relay_from(fd);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s LISTEN_PORT SERVER_PORT [THREADS]\n", argv[0]);
    return 2;
  }
  // Stopped by SIGINT too: a shell starts background jobs with SIGINT ignored, and the scripts stop pgmux so.
  for (int stop : {SIGINT, SIGTERM}) std::signal(stop, [](int) { std::_Exit(0); });
  const int listen_port = std::atoi(argv[1]), server_port = std::atoi(argv[2]);
  const int threads = argc == 4 ? std::atoi(argv[3]) : 1;
  std::vector<int> listeners;  // all bound before any thread accepts, so no client is refused at start
  for (int i = 0; i < threads; ++i) listeners.push_back(open_listener(listen_port));
  for (int i = 1; i < threads; ++i) std::thread(run_loop, listeners[i], server_port).detach();
  run_loop(listeners[0], server_port);
}
