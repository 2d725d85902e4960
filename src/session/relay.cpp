// Moves bytes both ways between a client and the backend serving it, until the transaction (or session) ends.
#include "session/relay.hpp"

namespace pgmux::session {

using namespace protocol;

namespace {

// Client -> backend: every message updates the transaction tracker; Terminate is not forwarded (the backend
// outlives the client in the pool).
struct ClientMessages {
  TxTracker& tracker;
  bool wants_body(char) const { return false; }
  ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
  ScanStep on_header(char type, std::uint32_t) {
    if (type == 'X') return ScanStep::kStop;
    tracker.on_client_message(type);
    return ScanStep::kForward;
  }
};

// Backend -> client: only ReadyForQuery is read, for the transaction status it carries.
struct BackendMessages {
  TxTracker& tracker;
  bool& saw_ready;
  bool wants_body(char type) const { return type == 'Z'; }
  ScanStep on_message(char, std::string_view body) {
    tracker.on_ready_for_query(body.empty() ? 'E' : body[0]);
    saw_ready = true;
    return ScanStep::kForward;
  }
  ScanStep on_header(char, std::uint32_t) { return ScanStep::kForward; }
};

}  // namespace

// A backend's socket may belong to another worker's io_context (it was opened by a session there); its
// handlers would run on that thread. Every handler is bound to the client's executor so that all of a
// session's state is touched by one thread only.
template <class Handler>
auto Relay::on_client_thread(Handler&& handler) {
  return asio::bind_executor(client_.get_executor(), std::forward<Handler>(handler));
}

Relay::Relay(tcp::socket& client, std::uint32_t max_client_message)
    : client_(client),
      client_scanner_(max_client_message),
      // The server is trusted to frame its messages; the limit only guards against a corrupt stream.
      backend_scanner_(0x7fffffff) {}

void Relay::start(pool::Backend& backend, asio::steady_timer& done, bool release_at_idle) {
  backend_ = &backend;
  release_at_idle_ = release_at_idle;
  done_ = &done;
  ended_ = false;
  pending_ = 0;
  client_stop_ = false;
  client_in_.emplace();
  backend_in_.emplace();
  pump_client();
  if (!ended_) pump_backend();
}

void Relay::pump_client() {
  for (int turn = 0; !ended_; ++turn) {
    if (turn == kReadsPerTurn) {
      ++pending_;
      asio::post(client_.get_executor(), [this] {
        --pending_;
        if (ended_) return maybe_done();
        pump_client();
      });
      return;
    }
    net::IoBuffer& in = *client_in_;
    error_code ec;
    std::size_t n = client_.read_some(asio::buffer(in.space(), in.space_size()), ec);
    if (ec == asio::error::would_block) {
      ++pending_;
      client_.async_wait(tcp::socket::wait_read, [this](error_code ec) {
        --pending_;
        if (ended_) return maybe_done();
        if (ec) return finish(End::client_gone);
        pump_client();
      });
      return;
    }
    if (ec || n == 0) return finish(End::client_gone);
    in.received(n);
    ClientMessages messages{state_.tracker};
    ScanResult scanned = client_scanner_.scan(in.data(), messages);
    if (scanned.bad_length) return finish(End::client_protocol_violation);
    client_stop_ = scanned.stopped;
    if (scanned.forward > 0 && !forward_to_backend(scanned.forward)) return;  // resumes when written
    if (client_stop_) return finish(End::client_gone);
    in.compact();
    state_.client_partial = !in.empty() || !client_scanner_.at_boundary();
  }
}

bool Relay::forward_to_backend(std::size_t n) {
  net::IoBuffer& in = *client_in_;
  error_code ec;
  std::size_t written = backend_->socket.write_some(asio::buffer(in.data().data(), n), ec);
  if (ec && ec != asio::error::would_block) {
    finish(End::backend_gone);
    return false;
  }
  in.consume(written);
  if (written == n) return true;
  // The backend is not keeping up: finish the write asynchronously, then go on reading.
  state_.client_writing = true;
  ++pending_;
  asio::async_write(backend_->socket, asio::buffer(in.data().data(), n - written),
                    on_client_thread([this, rest = n - written](error_code ec, std::size_t) {
                      --pending_;
                      state_.client_writing = false;
                      if (ended_) return maybe_done();
                      if (ec) return finish(End::backend_gone);
                      client_in_->consume(rest);
                      if (client_stop_) return finish(End::client_gone);
                      client_in_->compact();
                      state_.client_partial = !client_in_->empty() || !client_scanner_.at_boundary();
                      pump_client();
                    }));
  return false;
}

void Relay::pump_backend() {
  for (int turn = 0; !ended_; ++turn) {
    if (turn == kReadsPerTurn) {
      ++pending_;
      asio::post(client_.get_executor(), [this] {
        --pending_;
        if (ended_) return maybe_done();
        pump_backend();
      });
      return;
    }
    net::IoBuffer& in = *backend_in_;
    error_code ec;
    std::size_t n = backend_->socket.read_some(asio::buffer(in.space(), in.space_size()), ec);
    if (ec == asio::error::would_block) {
      ++pending_;
      backend_->socket.async_wait(tcp::socket::wait_read, on_client_thread([this](error_code ec) {
                                    --pending_;
                                    if (ended_) return maybe_done();
                                    if (ec) return finish(End::backend_gone);
                                    pump_backend();
                                  }));
      return;
    }
    if (ec || n == 0) return finish(End::backend_gone);
    in.received(n);
    backend_saw_ready_ = false;
    BackendMessages messages{state_.tracker, backend_saw_ready_};
    ScanResult scanned = backend_scanner_.scan(in.data(), messages);
    if (scanned.bad_length) return finish(End::backend_gone);
    if (scanned.forward > 0 && !forward_to_client(scanned.forward)) return;
    after_backend_forward();
  }
}

bool Relay::forward_to_client(std::size_t n) {
  net::IoBuffer& in = *backend_in_;
  error_code ec;
  std::size_t written = client_.write_some(asio::buffer(in.data().data(), n), ec);
  if (ec && ec != asio::error::would_block) {
    finish(End::client_gone);
    return false;
  }
  in.consume(written);
  if (written == n) return true;
  ++pending_;
  asio::async_write(client_, asio::buffer(in.data().data(), n - written),
                    [this, rest = n - written](error_code ec, std::size_t) {
                      --pending_;
                      if (ended_) return maybe_done();
                      if (ec) return finish(End::client_gone);
                      backend_in_->consume(rest);
                      after_backend_forward();
                      if (!ended_) pump_backend();
                    });
  return false;
}

void Relay::after_backend_forward() {
  backend_in_->compact();
  // Transaction mode hands the backend back at the ReadyForQuery that leaves nothing outstanding.
  if (backend_saw_ready_ && release_at_idle_ && state_.releasable() && backend_at_rest())
    finish(End::released);
}

bool Relay::backend_at_rest() const {
  return backend_in_->empty() && backend_scanner_.at_boundary();
}

void Relay::finish(End end) {
  if (!ended_) {
    ended_ = true;
    end_ = end;
    // Wake the other pump: only waits can be pending on a clean release, so nothing is cut mid-message.
    error_code ignored;
    client_.cancel(ignored);
    backend_->socket.cancel(ignored);
  }
  maybe_done();
}

void Relay::maybe_done() {
  if (!ended_ || pending_ > 0) return;
  backend_stream_intact_ = backend_at_rest();
  client_in_.reset();
  backend_in_.reset();
  done_->cancel();
}

}  // namespace pgmux::session
