// Moves bytes both ways between a logged-in client and the backends that serve it, borrowing one per
// transaction.
#include "session/relay.hpp"

#include "log.hpp"
#include "pgmux/protocol/builders.hpp"

#include <utility>

namespace pgmux::session {

using namespace protocol;

namespace {

// Client -> backend: every message updates the transaction tracker; Terminate is not forwarded (the backend
// outlives the client in the pool).
struct ClientMessages {
  TxTracker& tracker;
  std::uint64_t queries = 0;  // Query and Execute messages, for the pool's statistics
  bool wants_body(char) const { return false; }
  ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
  ScanStep on_header(char type, std::uint32_t) {
    if (type == 'X') return ScanStep::kStop;
    tracker.on_client_message(type);
    queries += type == 'Q' || type == 'E';
    return ScanStep::kForward;
  }
};

// Backend -> client: ReadyForQuery is read for the transaction status it carries, ParameterStatus for the
// settings it reports. While `hiding`, the bytes are the reply to pgmux's own SET: the scan stops right after
// its ReadyForQuery so that they can be dropped.
struct BackendMessages {
  TxTracker& tracker;
  ParamSet& backend_params;
  ParamSet& client_params;
  bool hiding;
  bool saw_ready = false;
  bool hidden_done = false;
  bool hidden_error = false;
  std::uint64_t transactions = 0;

  bool wants_body(char type) const { return type == 'Z' || type == 'S'; }
  ScanStep on_message(char type, std::string_view body) {
    if (hidden_done) return ScanStep::kStop;
    if (type == 'S') {
      std::string_view name, value;
      if (parse_parameter_status(body, name, value)) {
        // Either the client changed it, or pgmux's own SET applied the client's value and Postgres reports it
        // normalised ("SQL,DMY" becomes "SQL, DMY"): both sides hold it now.
        backend_params.set(name, value);
        client_params.set(name, value);
      }
      return ScanStep::kForward;
    }
    char status = body.empty() ? 'E' : body[0];
    tracker.on_ready_for_query(status);
    if (hiding) {
      hidden_done = true;
    } else {
      saw_ready = true;
      transactions += status == 'I';  // a transaction (block or single statement) has ended
    }
    return ScanStep::kForward;
  }
  ScanStep on_header(char type, std::uint32_t) {
    if (hidden_done) return ScanStep::kStop;
    if (hiding && type == 'E') hidden_error = true;
    return ScanStep::kForward;
  }
};

}  // namespace

// A backend's socket is moved to the client's worker when leased, so its handlers already run on the client's
// thread; binding them says so explicitly and keeps it true should a socket ever stay behind.
template <class Handler>
auto Relay::on_client_thread(Handler&& handler) {
  return asio::bind_executor(client_.get_executor(), std::forward<Handler>(handler));
}

Relay::Relay(tcp::socket& client, pool::Pool& pool, CancelTarget& cancel_target, ParamSet& client_params,
             RelaySettings settings)
    : client_(client),
      pool_(pool),
      cancel_target_(cancel_target),
      client_params_(client_params),
      settings_(settings),
      client_scanner_(settings.max_client_message),
      // The server is trusted to frame its messages; the limit only guards against a corrupt stream.
      backend_scanner_(0x7fffffff) {}

namespace {
thread_local Relay* t_running = nullptr;  // head of this worker's list of running relays
}

void Relay::list() {
  next_ = t_running;
  if (next_) next_->prev_ = this;
  t_running = this;
  listed_ = true;
}

void Relay::unlist() {
  if (!listed_) return;
  (prev_ ? prev_->next_ : t_running) = next_;
  if (next_) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
  listed_ = false;
}

void Relay::drain_all_on_this_thread() {
  for (Relay* r = t_running; r;) {
    Relay* next = r->next_;  // drain() may end r and take it off the list
    r->drain();
    r = next;
  }
}

void Relay::drain() {
  if (ended_) return;
  draining_ = true;
  if (!lease_) finish(End::shutting_down);
}

void Relay::start(RelayOwner& owner) {
  owner_ = &owner;
  list();
  last_client_activity_ = pool::Clock::now();
  if (settings_.client_idle_timeout.count() > 0) {
    idle_timer_ = std::make_unique<asio::steady_timer>(client_.get_executor());
    arm_idle_timer(settings_.client_idle_timeout);
  }
  pump_client();  // the client may have sent its first query together with its login
}

// ---- client -> backend ----

void Relay::wait_client() {
  if (client_waiting_) return;  // armed already: it stays armed across transactions
  client_waiting_ = true;
  ++pending_;
  client_.async_wait(tcp::socket::wait_read, [this](error_code ec) {
    --pending_;
    client_waiting_ = false;
    if (ended_) return maybe_done();
    if (ec) return finish(End::client_gone);
    pump_client();
  });
}

void Relay::pump_client() {
  for (int turn = 0; !ended_; ++turn) {
    if (turn == kReadsPerTurn) return yield_to_others(&Relay::pump_client);
    if (!client_in_) client_in_.emplace();
    net::IoBuffer& in = *client_in_;
    std::size_t asked = in.space_size();
    error_code ec;
    std::size_t n = client_.read_some(asio::buffer(in.space(), asked), ec);
    if (ec == asio::error::would_block) {
      if (!lease_ && in.empty()) client_in_.reset();  // idle clients hold no buffer
      return wait_client();
    }
    if (ec || n == 0) return finish(End::client_gone);
    in.received(n);
    last_client_activity_ = pool::Clock::now();
    if (!lease_ && !drop_stray_copy_messages()) continue;  // all of it was dropped: read on
    if (!lease_ && !take_backend()) return;
    if (!forward_client_bytes()) return;
    if (n < asked) return wait_client();  // the socket is drained: its next bytes will wake us
  }
}

// CopyData, CopyDone and CopyFail with no backend on loan are the tail of a COPY that already ended (Postgres
// drops what a client sends after a COPY fails). Postgres would ignore them too, but borrowing a backend for
// them would hold it forever: they get no ReadyForQuery. Returns whether other bytes are left to relay.
bool Relay::drop_stray_copy_messages() {
  struct StrayCopy {
    bool wants_body(char) const { return false; }
    ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
    ScanStep on_header(char type, std::uint32_t) {
      return type == 'd' || type == 'c' || type == 'f' ? ScanStep::kForward : ScanStep::kStop;
    }
  } stray;
  net::IoBuffer& in = *client_in_;
  ScanResult scanned = client_scanner_.scan(in.data(), stray);
  if (scanned.bad_length) {
    finish(End::client_protocol_violation);
    return false;
  }
  in.consume(scanned.forward);
  in.compact();
  // Relay only once a whole header of something else is here: the rest of a dropped body keeps being dropped,
  // and a partial header could still turn out to be CopyData.
  return in.data().size() >= kHeaderSize && client_scanner_.at_boundary();
}

bool Relay::take_backend() {
  std::string_view data = client_in_->data();
  if (!data.empty() && data[0] == 'X' && client_scanner_.at_boundary()) {
    finish(End::client_gone);  // Terminate: saying goodbye needs no backend
    return false;
  }
  if (pool::BackendLease idle = pool_.try_acquire_idle()) return adopt(std::move(idle));
  // None idle: wait in the pool's queue, or connect a new one. This path may allocate; the common one does
  // not.
  ++pending_;
  asio::co_spawn(
      client_.get_executor(), pool_.acquire(settings_.query_wait_timeout),
      [this, since = pool::Clock::now()](std::exception_ptr failure, pool::AcquireResult acquired) {
        --pending_;
        pool_.traffic().add_wait_time(
            std::chrono::duration_cast<std::chrono::microseconds>(pool::Clock::now() - since).count());
        if (ended_) {
          if (acquired.lease) acquired.lease.release_clean();  // fresh and unused
          return maybe_done();
        }
        if (failure || !acquired.lease) {
          error_sqlstate_ = failure ? std::string(sqlstate::kConnectionFailure) : acquired.sqlstate;
          error_message_ = failure ? "no server connection" : acquired.message;
          return finish(End::no_backend);
        }
        if (adopt(std::move(acquired.lease)) && forward_client_bytes()) pump_client();
      });
  return false;
}

bool Relay::adopt(pool::BackendLease lease) {
  lease_ = std::move(lease);
  leased_at_ = pool::Clock::now();
  pool::move_to(*lease_, client_.get_executor());
  cancel_target_.set(lease_->pid, lease_->secret_key);
  backend_in_.emplace();
  // Another client may have left other settings on this backend (a SET outside a transaction, or its own
  // startup values): put the client's back first, in the same write order as its request, replies hidden.
  if (client_params_.fingerprint() != lease_->params.fingerprint()) {
    std::string sql = statements_to_match(client_params_, lease_->params);
    if (!sql.empty()) {
      std::string query;
      append_query(query, sql);
      // An idle backend's socket buffer is empty: a message this small goes out whole or the connection is
      // broken.
      error_code ec;
      if (lease_->socket.write_some(asio::buffer(query), ec) != query.size() || ec) {
        finish(End::backend_gone);
        return false;
      }
      state_.tracker.on_client_message('Q');
      ++hidden_replies_;
      log::debug("restoring a client's session settings on a server connection: ", sql);
    }
  }
  wait_backend();  // nothing to read yet: the request is about to go out
  return true;
}

bool Relay::forward_client_bytes() {
  net::IoBuffer& in = *client_in_;
  ClientMessages messages{state_.tracker};
  ScanResult scanned = client_scanner_.scan(in.data(), messages);
  if (scanned.bad_length) {
    finish(End::client_protocol_violation);
    return false;
  }
  client_stop_ = scanned.stopped;
  pool::TrafficCounters& traffic = pool_.traffic();
  traffic.add_received(scanned.forward);
  if (messages.queries) traffic.add_queries(messages.queries);
  if (scanned.forward > 0 && !write_to_backend(scanned.forward)) return false;
  if (client_stop_) {
    finish(End::client_gone);
    return false;
  }
  in.compact();
  state_.client_partial = !in.empty() || !client_scanner_.at_boundary();
  return true;
}

bool Relay::write_to_backend(std::size_t n) {
  net::IoBuffer& in = *client_in_;
  error_code ec;
  std::size_t written = lease_->socket.write_some(asio::buffer(in.data().data(), n), ec);
  if (ec && ec != asio::error::would_block) {
    finish(End::backend_gone);
    return false;
  }
  in.consume(written);
  if (written == n) return true;
  // The backend is not keeping up: finish the write asynchronously, then go on reading.
  state_.client_writing = true;
  ++pending_;
  asio::async_write(lease_->socket, asio::buffer(in.data().data(), n - written),
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

// ---- backend -> client ----

void Relay::wait_backend() {
  ++pending_;
  lease_->socket.async_wait(tcp::socket::wait_read, on_client_thread([this](error_code ec) {
                              --pending_;
                              if (ended_) return maybe_done();
                              if (ec) return finish(End::backend_gone);
                              pump_backend();
                            }));
}

void Relay::pump_backend() {
  for (int turn = 0; !ended_; ++turn) {
    if (turn == kReadsPerTurn) return yield_to_others(&Relay::pump_backend);
    net::IoBuffer& in = *backend_in_;
    std::size_t asked = in.space_size();
    error_code ec;
    std::size_t n = lease_->socket.read_some(asio::buffer(in.space(), asked), ec);
    if (ec == asio::error::would_block) return wait_backend();
    if (ec || n == 0) return finish(End::backend_gone);
    in.received(n);
    if (!process_backend_bytes()) return;
    if (n < asked) return wait_backend();
  }
}

bool Relay::process_backend_bytes() {
  net::IoBuffer& in = *backend_in_;
  while (hidden_replies_ > 0 && !in.empty()) {
    BackendMessages hidden{state_.tracker, lease_->params, client_params_, true};
    ScanResult scanned = backend_scanner_.scan(in.data(), hidden);
    if (scanned.bad_length) {
      finish(End::backend_gone);
      return false;
    }
    in.consume(scanned.forward);  // the client never asked for these
    if (hidden.hidden_done) --hidden_replies_;
    if (hidden.hidden_error)
      log::warning("a client's session settings could not be applied to a server connection");
    if (!hidden.hidden_done) {
      in.compact();
      return true;  // the rest of the hidden reply is still to come
    }
  }
  if (in.empty()) return true;
  BackendMessages messages{state_.tracker, lease_->params, client_params_, false};
  ScanResult scanned = backend_scanner_.scan(in.data(), messages);
  if (scanned.bad_length) {
    finish(End::backend_gone);
    return false;
  }
  backend_saw_ready_ = messages.saw_ready;
  pool::TrafficCounters& traffic = pool_.traffic();
  traffic.add_sent(scanned.forward);
  if (messages.transactions) traffic.add_transactions(messages.transactions);
  if (scanned.forward > 0 && !write_to_client(scanned.forward)) return false;
  return !maybe_release();
}

bool Relay::write_to_client(std::size_t n) {
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
                      if (!maybe_release()) pump_backend();
                    });
  return false;
}

bool Relay::maybe_release() {
  backend_in_->compact();
  // Transaction mode hands the backend back at the ReadyForQuery that leaves nothing outstanding.
  bool at_rest = backend_in_->empty() && backend_scanner_.at_boundary();
  if (!backend_saw_ready_ || !state_.releasable() || !at_rest) return false;
  if (!settings_.release_at_idle) {
    // Session mode keeps its backend; when draining, the session ends here and is cleaned up by its owner.
    if (!draining_) return false;
    finish(End::shutting_down);
    return true;
  }
  cancel_target_.clear();
  auto now = pool::Clock::now();
  pool_.traffic().add_transaction_time(
      std::chrono::duration_cast<std::chrono::microseconds>(now - leased_at_).count());
  lease_.release_clean();
  backend_in_.reset();
  if (client_in_ && client_in_->empty()) client_in_.reset();
  last_client_activity_ = now;
  if (draining_) finish(End::shutting_down);
  return true;
}

// ---- the session's life ----

void Relay::yield_to_others(void (Relay::*pump)()) {
  ++pending_;
  asio::post(client_.get_executor(), [this, pump] {
    --pending_;
    if (ended_) return maybe_done();
    (this->*pump)();
  });
}

// One watchdog per session, re-armed only when it fires: activity just moves a timestamp.
void Relay::arm_idle_timer(pool::Clock::duration after) {
  ++pending_;
  idle_timer_->expires_after(after);
  idle_timer_->async_wait([this](error_code ec) {
    --pending_;
    if (ended_) return maybe_done();
    if (ec) return;
    auto limit = settings_.client_idle_timeout;
    auto idle_for = pool::Clock::now() - last_client_activity_;
    if (!lease_ && idle_for >= limit) return finish(End::client_idle_timeout);
    arm_idle_timer(lease_ ? pool::Clock::duration(limit) : limit - idle_for);
  });
}

void Relay::finish(End end) {
  if (!ended_) {
    ended_ = true;
    end_ = end;
    error_code ignored;
    client_.cancel(ignored);
    if (lease_) lease_->socket.cancel(ignored);
    if (idle_timer_) idle_timer_->cancel();
  }
  maybe_done();
}

void Relay::maybe_done() {
  if (!ended_ || pending_ > 0) return;
  backend_stream_intact_ = !backend_in_ || (backend_in_->empty() && backend_scanner_.at_boundary());
  client_in_.reset();
  backend_in_.reset();
  unlist();
  if (RelayOwner* owner = std::exchange(owner_, nullptr))
    owner->relay_finished();  // last: may end the session
}

}  // namespace pgmux::session
