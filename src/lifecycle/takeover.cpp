// Zero-downtime restart: a new pgmux receives the running one's listening sockets, then the old one drains.
//
// Why hand sockets over rather than only open new SO_REUSEPORT listeners beside the old ones: when a listener
// closes, Linux resets the connections still waiting in its accept queue (unless net.ipv4.tcp_migrate_req is
// set, Linux 5.14+), so a client connecting during the switch could fail. A socket handed over keeps its
// queue: nothing in it is lost, whichever process accepts it.
#include "lifecycle/takeover.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "log.hpp"

namespace pgmux::lifecycle {

namespace {

using local_stream = asio::local::stream_protocol;

constexpr char kConfirm = 'K';
constexpr int kMaxSockets = 200;  // SCM_RIGHTS carries up to 253 descriptors in one message

struct Greeting {  // what the old process sends along with its descriptors
  char magic[8] = {'p', 'g', 'm', 'u', 'x', 'T', 'O', '2'};
  std::int32_t pid = 0;
  std::int32_t postgres = 0, http = 0, metrics = 0;  // how many of the descriptors are of each kind, in order
};

sockaddr_un abstract_address(const std::string& name, socklen_t& length) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // A leading NUL makes the name abstract: it vanishes with the socket, so a crashed pgmux leaves nothing.
  std::size_t n = std::min(name.size(), sizeof(address.sun_path) - 1);
  std::memcpy(address.sun_path + 1, name.data(), n);
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return address;
}

std::string errno_text() {
  return std::strerror(errno);
}

// Sends the greeting and the descriptors in one message.
bool send_sockets(int connection, const InheritedSockets& sockets) {
  Greeting greeting;
  greeting.pid = static_cast<std::int32_t>(getpid());
  greeting.postgres = static_cast<std::int32_t>(sockets.postgres.size());
  greeting.http = static_cast<std::int32_t>(sockets.http.size());
  greeting.metrics = static_cast<std::int32_t>(sockets.metrics.size());
  std::vector<int> fds = sockets.postgres;
  fds.insert(fds.end(), sockets.http.begin(), sockets.http.end());
  fds.insert(fds.end(), sockets.metrics.begin(), sockets.metrics.end());
  if (fds.empty() || fds.size() > kMaxSockets) return false;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec part{&greeting, sizeof greeting};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  return sendmsg(connection, &message, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof greeting);
}

// recvmsg of the greeting and its descriptors, given up at `deadline`. A receive timeout makes Linux end the
// call with EINTR when the process is stopped and continued (signal(7)), as a SIGSTOP or a container freeze
// during a restart does: nothing was read then, so ask again for the time left.
ssize_t receive_before(int connection, msghdr& message, std::chrono::steady_clock::time_point deadline) {
  const auto control_size = message.msg_controllen;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      errno = EAGAIN;
      return -1;
    }
    timeval timeout{static_cast<time_t>(left.count() / 1'000'000),
                    static_cast<suseconds_t>(left.count() % 1'000'000)};
    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    message.msg_controllen = control_size;
    ssize_t n = recvmsg(connection, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n >= 0 || errno != EINTR) return n;
  }
}

}  // namespace

std::string takeover_address(const config::Endpoint& postgres) {
  return "pgmux-takeover:" + postgres.host + ":" + std::to_string(postgres.port);
}

namespace {

// Whether something listens on `where`: a plain bind (no SO_REUSEPORT) fails then, as in
// net::check_address_free.
bool address_in_use(const config::Endpoint& where) {
  asio::io_context io;
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(where.host), where.port);
  asio::ip::tcp::acceptor probe(io);
  error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  return ec == asio::error::address_in_use;
}

// One request on the abstract name. nullopt when nobody listens there, or the one listening closed without a
// word (it was letting go of the name: handing over, or draining).
std::optional<Handover> ask_once(const config::Config& config, const std::string& name,
                                 std::chrono::steady_clock::time_point deadline) {
  int connection = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connection < 0) throw std::runtime_error("takeover: socket: " + errno_text());
  socklen_t length;
  sockaddr_un address = abstract_address(name, length);
  if (connect(connection, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    close(connection);
    return std::nullopt;  // nobody offers sockets on this name now
  }
  Greeting greeting;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxSockets));
  iovec part{&greeting, sizeof greeting};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  // An old process that does not answer must not hang this one's start.
  ssize_t n = receive_before(connection, message, deadline);
  const bool reset = n < 0 && errno == ECONNRESET;
  Handover handover;
  handover.connection = connection;
  std::vector<int> fds;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    fds.resize(count);
    std::memcpy(fds.data(), CMSG_DATA(header), sizeof(int) * count);
  }
  auto fail = [&](const std::string& why) -> std::optional<Handover> {
    for (int fd : fds) close(fd);
    close(connection);
    throw std::runtime_error("takeover from the pgmux on " + name + " failed: " + why);
  };
  if ((n == 0 || reset) && fds.empty()) {
    // It closed the name with this request still queued: it has handed its sockets over already, or drains.
    close(connection);
    return std::nullopt;
  }
  if (n != static_cast<ssize_t>(sizeof greeting) || std::memcmp(greeting.magic, Greeting{}.magic, 8) != 0)
    return fail(n < 0 ? errno_text() : "unexpected answer");
  if (greeting.postgres < 1 || greeting.http < 0 || greeting.metrics < 0 ||
      static_cast<std::size_t>(greeting.postgres + greeting.http + greeting.metrics) != fds.size())
    return fail("the descriptors do not match the greeting");
  // The old process's HTTP listener is reused only if this config listens on HTTP too.
  bool http_wanted = config.listen.http.has_value();
  if (http_wanted != (greeting.http > 0)) return fail("listen.http differs from the running pgmux's");
  bool metrics_wanted = config.listen.metrics.has_value();
  if (metrics_wanted != (greeting.metrics > 0))
    return fail("listen.metrics differs from the running pgmux's");
  auto http_end = fds.begin() + greeting.postgres + greeting.http;
  handover.sockets.postgres.assign(fds.begin(), fds.begin() + greeting.postgres);
  handover.sockets.http.assign(fds.begin() + greeting.postgres, http_end);
  handover.sockets.metrics.assign(http_end, fds.end());
  handover.old_pid = greeting.pid;
  return handover;
}

}  // namespace

std::optional<Handover> request_takeover(const config::Config& config) {
  const std::string name = takeover_address(config.listen.postgres);
  // Nobody on the name is not yet nobody on the port: a pgmux offers its sockets only once its workers run,
  // and one that took over only once its predecessor lets go of the name. While the port is held, ask again
  // (a takeover started right after another must not fail), within the same budget as the handover itself.
  const auto budget = std::chrono::seconds(10);
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (bool waiting = false;; waiting = true) {
    if (auto handover = ask_once(config, name, deadline)) return handover;
    if (!address_in_use(config.listen.postgres)) return std::nullopt;  // the ports are free: start as usual
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("takeover: " + config.listen.postgres.host + ":" +
                               std::to_string(config.listen.postgres.port) +
                               " is in use, but no pgmux offered its listening sockets on @" + name +
                               " within " + std::to_string(budget.count()) + " s");
    if (!waiting)
      log::info("takeover: the port is in use and nobody offers sockets on @", name, " yet; waiting up to ",
                budget.count(), " s for the running pgmux to offer them");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // before the workers run: nothing to block
  }
}

void confirm_takeover(Handover& handover) {
  if (handover.connection < 0) return;
  char confirm = kConfirm;
  if (send(handover.connection, &confirm, 1, MSG_NOSIGNAL) != 1)
    log::warning("takeover: could not confirm to pid ", handover.old_pid, ": ", errno_text());
  close(handover.connection);
  handover.connection = -1;
}

asio::awaitable<void> offer_takeover(std::string address, std::function<InheritedSockets()> sockets,
                                     std::function<void(int)> handed_over) {
  auto executor = co_await asio::this_coro::executor;
  local_stream::acceptor acceptor(executor);
  // The process this one took over may hold the name a moment longer: retry until it lets go.
  asio::steady_timer pause(executor);
  for (;;) {
    error_code ec;
    acceptor = local_stream::acceptor(executor);
    acceptor.open(local_stream(), ec);
    if (!ec) acceptor.bind(local_stream::endpoint(std::string(1, '\0') + address), ec);
    if (!ec) acceptor.listen(4, ec);
    if (!ec) break;
    if (ec != boost::system::errc::address_in_use) {
      log::warning("takeover: cannot offer listeners on @", address, ": ", ec.message());
      co_return;
    }
    pause.expires_after(std::chrono::milliseconds(200));
    if (std::get<0>(co_await pause.async_wait(use_nothrow))) co_return;
  }
  log::info("takeover: offering the listening sockets on @", address);
  for (;;) {
    auto [ec, peer] = co_await acceptor.async_accept(use_nothrow);
    if (ec) co_return;
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (getsockopt(peer.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 ||
        credentials.uid != getuid()) {
      log::warning("takeover: refused a request from uid ", credentials.uid, " (pid ", credentials.pid, ")");
      continue;
    }
    log::info("takeover: pid ", credentials.pid, " asks for the listening sockets");
    InheritedSockets offered = sockets();
    if (!send_sockets(peer.native_handle(), offered)) {
      log::warning("takeover: could not send the listening sockets to pid ", credentials.pid);
      continue;
    }
    // From here the sockets wait in the new process's receive queue, shared already: either may accept.
    log::info("takeover: sent ", offered.postgres.size() + offered.http.size() + offered.metrics.size(),
              " listening socket(s) to pid ", credentials.pid, "; serving on until it confirms");
    // Until the new process confirms, this one goes on accepting: if it dies while starting, nothing changes.
    char answer = 0;
    asio::steady_timer deadline(executor, std::chrono::seconds(60));
    using namespace asio::experimental::awaitable_operators;
    auto outcome = co_await (asio::async_read(peer, asio::buffer(&answer, 1), use_nothrow) ||
                             deadline.async_wait(use_nothrow));
    if (outcome.index() != 0 || std::get<0>(std::get<0>(outcome)) || answer != kConfirm) {
      log::warning("takeover: pid ", credentials.pid, " did not confirm; still serving");
      continue;
    }
    acceptor.close(ec);  // free the name for the new process's own offer
    handed_over(credentials.pid);
    co_return;
  }
}

}  // namespace pgmux::lifecycle
