// Moves bytes both ways between a logged-in client and the backends that serve it, borrowing one per
// transaction.
#include "session/relay.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include "log.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/sql_keywords.hpp"

namespace pgmux::session {

using namespace protocol;

namespace {
bool is_frontend_message(char type);
}  // namespace

// Client -> backend: every message updates the transaction tracker; Terminate is not forwarded (the backend
// outlives the client in the pool). In transaction mode the scan stops at messages that name a prepared
// statement, for the relay to rewrite, and notes the requests whose replies it may have to edit.
struct Relay::ClientMessages {
  Relay& relay;
  std::uint64_t queries = 0;  // Query and Execute messages, for the pool's statistics

  bool wants_body(char) const { return false; }
  ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
  void on_body_tail(std::string_view piece) {
    if (relay.scanning_long_statement_) relay.scan_long_statement(piece);
  }
  ScanStep on_header(char type, std::uint32_t length, std::string_view body) {
    relay.scanning_long_statement_ = false;  // the previous message, if long, has passed whole
    if (type == 'X' || !is_frontend_message(type)) return ScanStep::kStop;
    if (relay.track_replies_) {
      ScanStep step = note_for_statements(type, length - 4, body);
      if (step != ScanStep::kForward) return step;
    }
    relay.state_.tracker.on_client_message(type);
    queries += type == 'Q' || type == 'E';
    return ScanStep::kForward;
  }

  ScanStep note_for_statements(char type, std::uint32_t body_size, std::string_view body) {
    // Wait for more of the body only while it can still fit in the buffer.
    bool more_fits = body.size() < body_size && body.size() + kHeaderSize < net::kBufferSize;
    // A message too short to name anything is Postgres's to refuse (08P01); pgmux passes it on untouched.
    bool whole = body.size() == body_size;
    PendingReplies& replies = relay.replies_;
    const bool rewrite =
        relay.settings_.max_prepared_statements > 0;  // else named statements pass as they are
    switch (type) {
      case 'P':
        if (body.empty() && !whole) return ScanStep::kWait;
        if (body.empty()) {
          replies.push({ReplyKind::parse});
          return ScanStep::kForward;
        }
        if (body[0] != '\0' && !rewrite) {
          // A named statement passed as it is stays on this backend and may run any time later: what it
          // would leave behind pins now.
          if (more_fits) return ScanStep::kWait;
          const std::size_t name_end = body.find('\0');
          if (name_end != std::string_view::npos) {
            SessionEffect effect = session_effect(body.substr(name_end + 1));
            if (effect.kind != SessionEffect::Kind::pins && effect.kind != SessionEffect::Kind::none)
              effect = {SessionEffect::Kind::pins, "a named statement that changes search_path", {}};
            if (effect.kind == SessionEffect::Kind::pins) relay.pin(effect);
          }
          if (!whole) relay.start_long_statement(body);
          replies.push({ReplyKind::parse});
          return ScanStep::kForward;
        }
        if (body[0] != '\0') return ScanStep::kStop;  // named
        // Unnamed: drivers send their DEALLOCATE ALL this way too (psycopg after an error in a transaction).
        if (more_fits) return ScanStep::kWait;
        {
          std::string_view sql = body.substr(1);
          SessionEffect effect = session_effect(sql);
          if (!relay.admit(effect)) return ScanStep::kStop;
          if (effect.kind == SessionEffect::Kind::pins) relay.pin_at_sync_ = effect.what.data();
          if (!whole) relay.start_long_statement(body);
          relay.note_search_path(effect, relay.search_path_at_sync_);
          note_statement_reset(sql, body.size() == body_size, relay.drops_all_at_sync_);
        }
        replies.push({ReplyKind::parse});
        return ScanStep::kForward;
      case 'B': {
        std::size_t portal_end = body.find('\0');
        std::size_t name_end = portal_end == body.npos ? body.npos : body.find('\0', portal_end + 1);
        if (name_end == body.npos && !whole) return more_fits ? ScanStep::kWait : ScanStep::kStop;
        if (name_end != body.npos && name_end > portal_end + 1 && rewrite) return ScanStep::kStop;  // named
        replies.push({ReplyKind::bind});
        return ScanStep::kForward;
      }
      case 'D':
      case 'C':
        if (body.size() < 2 && !whole) return ScanStep::kWait;
        if (body.size() >= 2 && body[0] == 'S' && body[1] != '\0' && rewrite) return ScanStep::kStop;
        if (type == 'C') replies.push({ReplyKind::close});
        return ScanStep::kForward;
      case 'S': {
        PendingReply reply{ReplyKind::sync};
        reply.clears_client_statements = std::exchange(relay.drops_all_at_sync_, false);
        reply.search_path = std::exchange(relay.search_path_at_sync_, PendingReply::SearchPath::unchanged);
        reply.pins = std::exchange(relay.pin_at_sync_, nullptr);
        // Several statements may run before one Sync, and one that failed does not undo one before it that
        // committed: a pipeline's session state pins whatever happened to it.
        reply.survives_failure = true;
        reply.drops_server_statements = std::exchange(relay.drops_at_sync_, false);
        replies.push(reply);
        relay.lease_->statements.tick();
        return ScanStep::kForward;
      }
      case 'F': {
        // A function called by its OID (libpq's PQfn, the large-object calls) could be pg_advisory_lock or
        // set_config, and pgmux does not know functions by OID: the client keeps its backend.
        PendingReply reply{ReplyKind::query};
        reply.pins = "a FunctionCall message (a function called by OID)";
        reply.survives_failure = true;
        replies.push(reply);
        relay.lease_->statements.tick();
        return ScanStep::kForward;
      }
      case 'Q': {
        if (more_fits) return ScanStep::kWait;  // a query is small, and runs only once whole anyway
        // DEALLOCATE of a statement the client prepared through the protocol: the server knows it by
        // another name. (In a failed transaction it is refused by the server as it would be anyway.)
        if (rewrite && relay.extras_ && body.size() == body_size && relay.state_.tracker.status() != 'E') {
          std::string target = deallocate_target(body);
          if (!target.empty() && relay.extras_->statements.find(target)) return ScanStep::kStop;
        }
        PendingReply reply{ReplyKind::query};
        SessionEffect effect = session_effect(body);
        if (!relay.admit(effect)) {
          if (body.size() == body_size) return ScanStep::kStop;
          relay.pin(effect);  // too large to hold back and refuse whole: pinning is the safe side
        } else if (effect.kind == SessionEffect::Kind::pins) {
          reply.pins = effect.what.data();  // once its answer is complete
        }
        reply.survives_failure = effect.survives_failure;
        if (body.size() != body_size) relay.start_long_statement(body);
        relay.note_search_path(effect, reply.search_path);
        note_statement_reset(body, body.size() == body_size, reply.clears_client_statements);
        reply.drops_server_statements = std::exchange(relay.drops_at_sync_, false);
        replies.push(reply);
        relay.lease_->statements.tick();
        return ScanStep::kForward;
      }
      default:
        return ScanStep::kForward;
    }
  }

  // SQL that may drop prepared statements on the server: the backend's list is forgotten now (what the server
  // still holds is closed again before it is prepared), the client's own if it all goes and succeeds.
  void note_statement_reset(std::string_view sql, bool whole, bool& drops_all) {
    if (whole && !may_drop_statements(sql)) return;
    relay.note_statements_dropped();
    drops_all = whole && drops_all_statements(sql);
  }
};

// Backend -> client: ReadyForQuery is read for the transaction status it carries, ParameterStatus for the
// settings it reports. While `hiding`, the bytes are the reply to pgmux's own SET: the scan stops right after
// its ReadyForQuery so that they can be dropped.
struct Relay::BackendMessages {
  Relay& relay;
  bool hiding;
  bool saw_ready = false;
  bool hidden_done = false;
  bool hidden_error = false;
  std::uint64_t transactions = 0;
  std::uint32_t answered = 0;  // ReadyForQuery messages for the client's own requests

  bool wants_body(char type) const { return type == 'Z' || type == 'S'; }
  ScanStep on_message(char type, std::string_view body) {
    if (hidden_done) return ScanStep::kStop;
    if (type == 'S') {
      std::string_view name, value;
      if (parse_parameter_status(body, name, value)) {
        // Either the client changed it, or pgmux's own SET applied the client's value and Postgres reports it
        // normalised ("SQL,DMY" becomes "SQL, DMY"): both sides hold it now.
        relay.lease_->params.set(name, value);
        relay.client_params_.set(name, value);
      }
      return ScanStep::kForward;
    }
    char status = body.empty() ? 'E' : body[0];
    relay.state_.tracker.on_ready_for_query(status);
    if (hiding) {
      hidden_done = true;
      return ScanStep::kForward;
    }
    saw_ready = true;
    ++answered;
    transactions += status == 'I';  // a transaction (block or single statement) has ended
    if (relay.track_replies_) relay.on_backend_ready();
    return relay.reply_mismatch_ ? ScanStep::kStop : ScanStep::kForward;
  }
  ScanStep on_header(char type, std::uint32_t length, std::string_view body) {
    if (hidden_done) return ScanStep::kStop;
    if (hiding) {
      hidden_error |= type == 'E';
      return ScanStep::kForward;
    }
    if (type == 'E') relay.count_error(body);
    // COPY FROM STDIN runs from CopyInResponse until the server ends it (CommandComplete or ErrorResponse).
    if (type == 'G') relay.copy_in_ = true;
    if (type == 'C' || type == 'E') relay.copy_in_ = false;
    return relay.track_replies_ ? relay.on_backend_reply(type, length, body) : ScanStep::kForward;
  }
};

namespace {

// What a logged-in client may send (PasswordMessage and the startup packets belong to the login).
bool is_frontend_message(char type) {
  switch (type) {
    case 'Q':
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'H':
    case 'S':
    case 'F':
    case 'd':
    case 'c':
    case 'f':
    case 'X':
      return true;
    default:
      return false;
  }
}

// A name no statement has: closing it is a no-op whose one-message reply can stand in for another.
constexpr std::string_view kNoStatement = "pgmux_none";
// pgmux's own statement that raises an error on request.
constexpr std::string_view kRaiseStatement = "pgmux_raise";

// A client's statement name, fit to quote inside pgmux's own SQL and messages.
std::string printable(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 63))
    out += (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\' && c != '$') ? c : '?';
  return out;
}

}  // namespace

// A backend's socket is moved to the client's worker when leased, so its handlers already run on the client's
// thread; binding them says so explicitly and keeps it true should a socket ever stay behind.
template <class Handler>
auto Relay::on_client_thread(Handler&& handler) {
  return asio::bind_executor(client_.get_executor(), std::forward<Handler>(handler));
}

Relay::Relay(net::Socket& client, pool::Pool& pool, CancelTarget& cancel_target, ParamSet& client_params,
             RelaySettings settings)
    : client_(client),
      pool_(pool),
      cancel_target_(cancel_target),
      client_params_(client_params),
      settings_(settings.pool),
      client_scanner_(settings.pool.max_packet_size),
      // The server is trusted to frame its messages; the limit only guards against a corrupt stream.
      backend_scanner_(0x7fffffff),
      release_at_idle_(settings.release_at_idle),
      count_traffic_(settings.count_traffic),
      websocket_(settings.websocket),
      track_replies_(settings.release_at_idle) {}

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

void Relay::drain_all_on_this_thread(bool spare_new_clients) {
  for (Relay* r = t_running; r;) {
    Relay* next = r->next_;  // drain() may end r and take it off the list
    r->drain(spare_new_clients);
    r = next;
  }
}

Relay* Relay::running_on_this_thread() {
  return t_running;
}

void Relay::kill() {
  if (!ended_) finish(End::killed);
}

ClientSnapshot Relay::snapshot() const {
  ClientSnapshot out;
  out.id = this;
  if (owner_) owner_->describe(out);
  out.database = pool_.name();
  out.waiting = acquiring_;
  out.waiting_since = backend_since_;
  out.last_request = last_client_activity_;
  out.application_name = client_params_.get(TrackedParam::application_name);
  if (lease_) {
    ServerSnapshot& server = out.server.emplace();
    server.id = &*lease_;
    server.link = this;
    server.database = out.database;
    server.user = out.user;
    server.active = true;
    server.pid = lease_->pid;
    server.connected_at = lease_->created;
    server.last_used = backend_since_;
    server.application_name = lease_->params.get(TrackedParam::application_name);
    fill_endpoints(lease_->socket, server.addr, server.port, server.local_addr, server.local_port);
  }
  return out;
}

void Relay::expire_queries_on_this_thread(pool::Clock::time_point now) {
  for (Relay* r = t_running; r;) {
    Relay* next = r->next_;  // expire_query() may end r and take it off the list
    r->expire_query(now);
    r = next;
  }
}

void Relay::drain_retired_on_this_thread() {
  for (Relay* r = t_running; r;) {
    Relay* next = r->next_;
    if (r->pool_.retired()) r->drain();
    r = next;
  }
}

// The clock starts at the client's last bytes (as PgBouncer's does) or, if later, when the backend was lent:
// the wait for a backend is query_wait_timeout's to bound.
void Relay::expire_query(pool::Clock::time_point now) {
  auto limit = settings_.query_timeout;
  if (ended_ || !lease_ || limit.count() == 0) return;
  const TxTracker& tracker = state_.tracker;
  bool owed = tracker.outstanding() > 0 || tracker.unsynced() || state_.client_writing;
  if (!owed || now - std::max(last_client_activity_, backend_since_) < limit) return;
  log::warning("query_timeout: closing a server connection that has not answered for ", limit.count(),
               " ms (backend pid ", lease_->pid, ")");
  extras().error_sqlstate = sqlstate::kQueryCanceled;
  extras().error_message = "query_timeout: the server did not answer within " +
                           std::to_string(limit.count()) +
                           " ms; the server connection was closed and the transaction is lost";
  finish(End::query_timeout);
}

void Relay::drain(bool spare_new_clients) {
  if (ended_) return;
  draining_ = true;
  if (lease_ || acquiring_) return;  // ends when the backend goes back
  // A request that arrived but is not read yet is in flight too: the pending wait reads it and borrows.
  error_code ec;
  if (client_.available(ec) > 0 && !ec) return;
  // A client that just logged in (a serverless function connects per invocation) sends its first request
  // a round trip later; ending it before it could would fail a transaction that never started.
  if (spare_new_clients && !served_) return;
  finish(End::shutting_down);
}

void Relay::start(RelayOwner& owner) {
  owner_ = &owner;
  list();
  client_watch_ =
      net::ReadinessSet::of_this_thread()->watch(client_.native_handle(), &Relay::client_readable, this);
  if (client_watch_ == net::ReadinessSet::kNone) {
    log::error("a client's socket could not be watched (", std::strerror(errno), "); closing it");
    return finish(End::client_gone);
  }
  last_client_activity_ = pool::Clock::now();
  if (settings_.client_idle_timeout.count() > 0) {
    idle_timer_ = std::make_unique<asio::steady_timer>(client_.get_executor());
    arm_idle_timer(settings_.client_idle_timeout);
  }
  pump_client();  // the client may have sent its first query together with its login
}

// ---- client -> backend ----

void Relay::wait_client() {
  net::ReadinessSet& set = *net::ReadinessSet::of_this_thread();
  if (set.armed(client_watch_)) return;  // armed already: it stays armed across transactions
  set.arm(client_watch_);
}

void Relay::client_readable(void* relay) {
  Relay& self = *static_cast<Relay*>(relay);
  if (self.client_stop_) return;  // read nothing after Terminate, EOF included
  // The unsent rest of the client's bytes is still at the front of its buffer: reading now would scan it
  // again. The write's completion reads on.
  if (self.state_.client_writing) return;
  self.pump_client();  // errors and EOF show up as readable: the read finds them
}

// The joint of two pieces, this long on each side, is scanned too: no name looked for is longer.
constexpr std::size_t kPieceOverlap = 32;

void Relay::start_long_statement(std::string_view start) {
  scanning_long_statement_ = true;
  extras().long_statement_end.assign(start.substr(start.size() - std::min(start.size(), kPieceOverlap)));
}

void Relay::scan_long_statement(std::string_view piece) {
  std::string& end = extras().long_statement_end;
  end.append(piece.substr(0, kPieceOverlap));  // the joint
  SessionEffect effect = session_effect_of_later_text(end);
  if (effect.kind == SessionEffect::Kind::none && piece.size() > kPieceOverlap)
    effect = session_effect_of_later_text(piece);
  if (effect.kind != SessionEffect::Kind::none) {
    // Part of it has gone to the server already: too late to refuse, so it pins, failed or not.
    pin(effect);
    scanning_long_statement_ = false;
    return;
  }
  if (piece.size() >= kPieceOverlap)
    end.assign(piece.substr(piece.size() - kPieceOverlap));
  else if (end.size() > kPieceOverlap)
    end.erase(0, end.size() - kPieceOverlap);
}

// Terminate came after requests still unanswered. Postgres answers them before it closes (a serverless
// client may send its last query and Terminate in one write, then read): the replies are relayed, and the
// session ends at the last one (maybe_release).
void Relay::end_after_replies() {
  // A server in COPY FROM STDIN answers nothing until it has the data's end, which a client that said
  // goodbye will not send: it ends now (its backend, busy, is closed rather than reused).
  if (!lease_ || copy_in_ || state_.tracker.outstanding() <= static_cast<std::uint32_t>(hidden_replies_))
    return finish(End::client_gone);
}

void Relay::pump_client() {
  for (int turn = 0; !ended_; ++turn) {
    if (turn == kReadsPerTurn) return yield_to_others(&Relay::pump_client);
    if (!client_in_) client_in_.emplace();
    net::IoBuffer& in = *client_in_;
    std::size_t asked = in.space_size();
    if (acquiring_) return watch_queued_client();
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
    if (!lease_ && !take_backend()) {
      if (!acquiring_) return;
      // Queued: watched meanwhile for its end (or more bytes), once its socket is drained.
      return n < asked ? wait_client() : watch_queued_client();
    }
    if (!forward_client_bytes()) return;
    if (n < asked) return wait_client();  // the socket is drained: its next bytes will wake us
  }
}

// After the wait for a backend. A client watched all along had its socket drained when it was armed, and any
// byte since would have called it back (and been read into its buffer): reading now would find nothing.
void Relay::read_client_if_due() {
  if (!net::ReadinessSet::of_this_thread()->armed(client_watch_)) pump_client();
}

// Waiting for a backend: more of the client's bytes are buffered for later (as far as the buffer holds them),
// and its EOF ends the session now, before its query can run for nobody.
void Relay::watch_queued_client() {
  net::IoBuffer& in = *client_in_;
  if (in.space_size() == 0) return;  // full: the rest waits in the socket
  error_code ec;
  const std::size_t asked = in.space_size();
  std::size_t n = client_.read_some(asio::buffer(in.space(), asked), ec);
  if (ec == asio::error::would_block) return wait_client();
  if (ec || n == 0) {
    log::info("a client waiting for a server connection left; its request is dropped");
    return finish(End::client_gone);
  }
  in.received(n);
  last_client_activity_ = pool::Clock::now();
  if (n < asked) wait_client();
}

// CopyData, CopyDone and CopyFail with no backend on loan are the tail of a COPY that already ended (Postgres
// drops what a client sends after a COPY fails). Postgres would ignore them too, but borrowing a backend for
// them would hold it forever: they get no ReadyForQuery. Returns whether other bytes are left to relay.
bool Relay::drop_stray_copy_messages() {
  struct StrayCopy {
    bool wants_body(char) const { return false; }
    ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
    ScanStep on_header(char type, std::uint32_t, std::string_view) {
      return type == 'd' || type == 'c' || type == 'f' ? ScanStep::kForward : ScanStep::kStop;
    }
  } stray;
  net::IoBuffer& in = *client_in_;
  ScanResult scanned = client_scanner_.scan(in.data(), stray);
  if (scanned.bad_length) {
    violation("invalid message length from the client");
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
  const net::Executor here = client_.get_executor();
  if (pool::BackendLease idle = pool_.try_acquire_idle(&here)) return adopt(std::move(idle));
  // None idle: wait in the pool's queue (a ticket: nothing allocated, no coroutine), or connect a new one (a
  // coroutine). Meanwhile the client is watched, so that one that leaves is not served later.
  acquiring_ = true;
  backend_since_ = pool::Clock::now();
  ++pending_;
  if (!QueueTicket::join(*this, pool_, here, settings_.query_wait_timeout)) acquire_in_coroutine(false);
  return false;
}

void Relay::acquire_in_coroutine(bool holds_slot) {
  // The wait so far counts against query_wait_timeout (a ticket may have been given a slot to connect in).
  config::Duration timeout = settings_.query_wait_timeout;
  if (timeout.count() > 0) {
    auto waited = std::chrono::duration_cast<config::Duration>(pool::Clock::now() - backend_since_);
    timeout = std::max(config::Duration(1), timeout - waited);
  }
  asio::co_spawn(
      client_.get_executor(), pool_.acquire(timeout, holds_slot),
      [this](std::exception_ptr failure, pool::AcquireResult acquired) {
        done_acquiring();
        if (ended_) {
          if (acquired.lease) acquired.lease.release_clean();  // fresh and unused
          return maybe_done();
        }
        if (failure)
          return no_backend({{}, std::string(sqlstate::kConnectionFailure), "no server connection"});
        if (!acquired.lease) return no_backend(std::move(acquired));
        if (adopt(std::move(acquired.lease)) && forward_client_bytes()) read_client_if_due();
      });
}

void Relay::done_acquiring() {
  --pending_;
  acquiring_ = false;
  pool_.traffic().add_wait_time(
      std::chrono::duration_cast<std::chrono::microseconds>(pool::Clock::now() - backend_since_).count());
}

void Relay::queue_served(QueueTicket& ticket) {
  pool::BackendLease lease = std::move(ticket.lease);
  const bool may_connect = ticket.may_connect, killed = ticket.killed;
  ticket.recycle();
  if (!ended_ && !killed && !lease) {
    // A free slot to connect in, or RESUME after a PAUSE (try everything again): the coroutine does both, and
    // the wait goes on (still pending, still counted from when it began).
    return acquire_in_coroutine(may_connect);
  }
  done_acquiring();
  if (ended_) {
    if (lease) lease.release_clean();  // it finished a transaction just now
    if (may_connect) pool_.return_slot();
    return maybe_done();
  }
  if (killed) return no_backend(pool::AcquireResult::killed());
  if (adopt(std::move(lease)) && forward_client_bytes()) read_client_if_due();
}

void Relay::queue_wait_expired(QueueTicket& ticket) {
  ticket.recycle();
  done_acquiring();
  if (ended_) return maybe_done();
  no_backend(pool::AcquireResult::wait_timed_out(pool_.paused()));
}

void Relay::no_backend(pool::AcquireResult failed) {
  extras().error_sqlstate = std::move(failed.sqlstate);
  extras().error_message = std::move(failed.message);
  finish(End::no_backend);
}

bool Relay::adopt(pool::BackendLease lease) {
  served_ = true;
  lease_ = std::move(lease);
  backend_since_ = pool::Clock::now();
  request_sent_ = backend_since_;
  pool::move_to(*lease_, client_.get_executor());
  if (!watch_backend()) {
    finish(End::backend_gone);
    return false;
  }
  cancel_target_.set(lease_->pid, lease_->secret_key);
  backend_in_.emplace();
  // Another client may have left other settings on this backend (a SET outside a transaction, or its own
  // startup values): put the client's back first, in the same write order as its request, replies hidden.
  if (!(client_params_ == lease_->params)) {
    auto settings = settings_to_match(client_params_, lease_->params);
    if (!settings.empty()) {
      std::string queries;
      extras().hidden_params.clear();
      for (auto& [param, sql] : settings) {
        append_query(queries, sql);
        state_.tracker.on_client_message('Q');
        ++hidden_replies_;
        extras().hidden_params.push_back(param);
        log::debug("restoring a client's session setting on a server connection: ", sql);
      }
      // An idle backend's socket buffer is empty: messages this small go out whole or the connection is
      // broken.
      error_code ec;
      if (lease_->socket.write_some(asio::buffer(queries), ec) != queries.size() || ec) {
        finish(End::backend_gone);
        return false;
      }
      // Postgres reports the other settings back as it applies them; search_path it does not.
      lease_->params.set(TrackedParam::search_path, client_params_.get(TrackedParam::search_path));
    }
  }
  wait_backend();  // nothing to read yet: the request is about to go out
  return true;
}

bool Relay::forward_client_bytes() {
  net::IoBuffer& in = *client_in_;
  const std::uint32_t outstanding_before = state_.tracker.outstanding();
  ClientMessages messages{*this};
  std::size_t pos = 0;         // bytes of `in` dealt with
  bool rewritten = false;      // from the first rewrite on, everything to send is gathered in extras().out
  std::size_t need_whole = 0;  // a message that must be seen whole before it can be rewritten
  for (;;) {
    ScanResult scanned = client_scanner_.scan(in.data().substr(pos), messages);
    if (scanned.bad_length) {
      violation("invalid message length from the client");
      return false;
    }
    if (rewritten) extras().out.append(in.data().substr(pos, scanned.forward));
    pos += scanned.forward;
    if (!scanned.stopped) break;
    std::string_view rest = in.data().substr(pos);
    if (rest[0] == 'X') {
      client_stop_ = true;
      break;
    }
    if (!is_frontend_message(rest[0])) {
      // Postgres would end the session on it too, but taking the backend down with it: pgmux ends the client.
      violation("invalid frontend message type");
      return false;
    }
    if (!rewritten) {
      extras().out.assign(in.data().substr(0, pos));
      rewritten = true;
    }
    std::size_t used = rest[0] == 'Q' ? rewrite_query(rest)
                       : rest[0] == 'P' && rest.size() > kHeaderSize && rest[kHeaderSize] == '\0'
                           ? refuse_statement(rest)
                       : rest[0] == 'P' ? rewrite_parse(rest)
                       : rest[0] == 'B' ? rewrite_bind(rest)
                                        : rewrite_describe_or_close(rest);
    if (ended_) return false;
    if (used == 0) {
      need_whole = 1 + std::size_t(read_u32(rest.data() + 1));
      break;
    }
    pos += used;
  }
  if (count_traffic_) {
    pool::TrafficCounters& traffic = pool_.traffic();
    traffic.add_received(pos);
    if (messages.queries) traffic.add_queries(messages.queries);
    note_requests_sent(outstanding_before);
  }
  if (rewritten) {
    in.consume(pos);
    if (!extras().out.empty() && !write_rewritten_to_backend()) return false;
  } else if (pos > 0 && !write_to_backend(pos)) {
    return false;
  }
  if (client_stop_) {
    end_after_replies();
    return false;
  }
  in.compact();
  if (need_whole) in.ensure_capacity(need_whole);
  state_.client_partial = !in.empty() || !client_scanner_.at_boundary();
  return true;
}

bool Relay::write_rewritten_to_backend() {
  error_code ec;
  std::size_t written = lease_->socket.write_some(asio::buffer(extras().out), ec);
  if (ec && ec != asio::error::would_block) {
    finish(End::backend_gone);
    return false;
  }
  if (written == extras().out.size()) return true;
  state_.client_writing = true;
  ++pending_;
  asio::async_write(lease_->socket,
                    asio::buffer(extras().out.data() + written, extras().out.size() - written),
                    on_client_thread([this](error_code ec, std::size_t) {
                      --pending_;
                      state_.client_writing = false;
                      if (ended_) return maybe_done();
                      if (ec) return finish(End::backend_gone);
                      if (client_stop_) return end_after_replies();
                      client_in_->compact();
                      state_.client_partial = !client_in_->empty() || !client_scanner_.at_boundary();
                      pump_client();
                    }));
  return false;
}

// ---- named prepared statements ----

Relay::Extras& Relay::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

pool::ClientStatements& Relay::client_statements() {
  return extras().statements;
}

std::size_t Relay::rewrite_parse(std::string_view message) {
  std::uint32_t length = read_u32(message.data() + 1);
  if (message.size() < 1 + std::size_t(length)) return 0;
  std::string_view body = message.substr(kHeaderSize, length - 4);
  std::size_t name_end = body.find('\0');
  if (name_end == body.npos) {
    violation("invalid Parse message: the statement name is not terminated");
    return 0;
  }
  std::string_view name = body.substr(0, name_end);
  std::string_view definition = body.substr(name_end + 1);
  state_.tracker.on_client_message('P');
  SessionEffect effect = session_effect(definition);
  if (effect.kind == SessionEffect::Kind::sets_search_path ||
      effect.kind == SessionEffect::Kind::resets_search_path)
    effect = {SessionEffect::Kind::pins, "a prepared statement that changes search_path", {}};
  if (!admit(effect)) {
    raise_error_in_stream(sqlstate::kFeatureNotSupported, refusal_message(effect));
    return 1 + length;
  }
  if (effect.kind == SessionEffect::Kind::pins) pin(effect);  // a named statement may run any time later
  pool::ClientStatements& mine = client_statements();
  if (const auto* existing = mine.find(name); existing && existing->confirmed) {
    raise_error_in_stream("42P05", "prepared statement \"" + printable(name) + "\" already exists");
    return 1 + length;
  }
  std::shared_ptr<const pool::PreparedStatement> statement = pool::make_statement(definition);
  PendingReply reply{ReplyKind::parse};
  reply.statement = statement->id;
  reply.defines_client_name = true;
  reply.client_name_slot = static_cast<std::uint32_t>(extras().pending_names.size());
  extras().pending_names.emplace_back(name);
  pool::BackendStatements& held = lease_->statements;
  if (held.touch(statement->id)) {
    // The backend has it already: a Close of nothing gets the one-message reply that becomes ParseComplete.
    append_close(extras().out, 'S', kNoStatement);
    reply.kind = ReplyKind::parse_faked;
  } else {
    make_room_for(*statement);
    append_parse(extras().out, statement->server_name, definition);
    reply.prepares = true;
  }
  replies_.push(reply);
  mine.add(name, std::move(statement));
  return 1 + length;
}

std::size_t Relay::rewrite_bind(std::string_view message) {
  std::uint32_t length = read_u32(message.data() + 1);
  std::string_view body =
      message.substr(kHeaderSize, std::min<std::size_t>(length - 4, message.size() - kHeaderSize));
  std::size_t portal_end = body.find('\0');
  std::size_t name_end = portal_end == body.npos ? body.npos : body.find('\0', portal_end + 1);
  if (name_end == body.npos) {  // names longer than a buffer: no driver does that
    violation("invalid Bind message: portal and statement names must end within the first 16 KiB");
    return 0;
  }
  std::string_view portal = body.substr(0, portal_end);
  std::string_view name = body.substr(portal_end + 1, name_end - portal_end - 1);
  state_.tracker.on_client_message('B');
  std::string_view server_name;
  if (const auto* known = extras_ ? extras_->statements.find(name) : nullptr) {
    const pool::PreparedStatement& statement = *known->statement;
    place_on_backend(statement);
    server_name = statement.server_name;
    if (statement.drops_statements) note_statements_dropped();
  } else {
    // A client's own name never reaches the server, where it could name another client's statement: the
    // error Postgres would give comes from pgmux, and the Bind that follows it is skipped by the server.
    raise_error_in_stream("26000", "prepared statement \"" + printable(name) + "\" does not exist");
    server_name = kNoStatement;
  }
  replies_.push({ReplyKind::bind});
  std::uint32_t new_length = length - name.size() + server_name.size();
  MessageBuilder(extras().out, 'B').cstr(portal).cstr(server_name);  // the header, fixed below
  write_u32(extras().out.data() + extras().out.size() - (4 + portal.size() + 1 + server_name.size() + 1),
            new_length);
  // The parameters follow unseen, however large.
  std::size_t consumed = kHeaderSize + name_end + 1;
  client_scanner_.pass_through(length - 4 - (name_end + 1));
  return consumed;
}

std::size_t Relay::rewrite_describe_or_close(std::string_view message) {
  char type = message[0];
  std::uint32_t length = read_u32(message.data() + 1);
  if (message.size() < 1 + std::size_t(length)) return 0;
  std::string_view name = message.substr(kHeaderSize + 1, length - 4 - 1);
  if (name.empty() || name.back() != '\0') {
    violation("invalid Describe or Close message: the name is not terminated");
    return 0;
  }
  name.remove_suffix(1);
  state_.tracker.on_client_message(type);
  const auto* known = extras_ ? extras_->statements.find(name) : nullptr;
  if (type == 'C') {
    // The client's name goes; the backend keeps the statement for whoever prepares it next. A Close of a
    // name nobody has gets the CloseComplete the client expects.
    if (known) extras_->statements.remove(name);
    append_close(extras().out, 'S', kNoStatement);
    replies_.push({ReplyKind::close});
  } else if (known) {
    place_on_backend(*known->statement);
    MessageBuilder(extras().out, 'D').u8('S').cstr(known->statement->server_name);
  } else {
    raise_error_in_stream("26000", "prepared statement \"" + printable(name) + "\" does not exist");
    MessageBuilder(extras().out, 'D').u8('S').cstr(kNoStatement);  // skipped by the server after the error
  }
  return 1 + length;
}

void Relay::make_room_for(const pool::PreparedStatement& statement) {
  pool::BackendStatements& held = lease_->statements;
  pool::StatementId evicted;
  if (held.add(statement.id, settings_.max_prepared_statements, evicted)) {
    send_hidden_close(pool::server_statement_name(evicted));
    pool_.traffic().add_statement_eviction();
  }
  // The server may still hold it from a request whose outcome pgmux never saw.
  send_hidden_close(statement.server_name);
}

void Relay::place_on_backend(const pool::PreparedStatement& statement) {
  if (lease_->statements.touch(statement.id)) return;
  make_room_for(statement);
  append_parse(extras().out, statement.server_name, statement.definition);
  state_.tracker.on_client_message('P');
  PendingReply reply{ReplyKind::parse_hidden};
  reply.prepares = true;
  reply.statement = statement.id;
  replies_.push(reply);
  pool_.traffic().add_lazy_prepare();
}

void Relay::send_hidden_close(std::string_view server_name) {
  append_close(extras().out, 'S', server_name);
  state_.tracker.on_client_message('C');
  replies_.push({ReplyKind::close_hidden});
}

void Relay::raise_error_in_stream(std::string_view sqlstate, std::string_view message) {
  send_hidden_close(kRaiseStatement);
  std::string sql = "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '";
  sql += sqlstate;
  sql += "', MESSAGE = '";
  sql += message;  // printable: no quote, backslash or dollar
  sql += "'; END$pgmux$";
  std::string definition = sql;
  definition += '\0';
  definition.append(2, '\0');  // no parameter types
  append_parse(extras().out, kRaiseStatement, definition);
  replies_.push({ReplyKind::parse_hidden});
  append_bind(extras().out, "", kRaiseStatement);
  replies_.push({ReplyKind::bind_hidden});
  append_execute(extras().out, "");
  for (char type : {'P', 'B', 'E'}) state_.tracker.on_client_message(type);
}

// ---- session state ----

bool Relay::admit(const SessionEffect& effect) const {
  return effect.kind != SessionEffect::Kind::pins || pinned_ || settings_.pin_session_state;
}

void Relay::pin(const SessionEffect& effect) {
  if (pinned_) return;
  pinned_ = true;
  log::info("pinning a client to its server connection until it disconnects: ", effect.what);
  pool_.traffic().add_pinned_session();
}

void Relay::note_search_path(const SessionEffect& effect, PendingReply::SearchPath& change) {
  if (effect.kind == SessionEffect::Kind::sets_search_path) {
    if (!extras().pending_search_path.empty() || change != PendingReply::SearchPath::unchanged) {
      // Two changes in flight at once: following both is not worth it.
      pin({SessionEffect::Kind::pins, "pipelined changes of search_path", {}});
      return;
    }
    extras().pending_search_path = effect.value;
    change = PendingReply::SearchPath::set;
  } else if (effect.kind == SessionEffect::Kind::resets_search_path) {
    change = PendingReply::SearchPath::reset;
  }
}

void Relay::apply_search_path(const PendingReply& done, char status) {
  std::string value =
      done.search_path == PendingReply::SearchPath::set ? std::move(extras().pending_search_path) : "";
  extras().pending_search_path.clear();
  if (status != 'I') {
    // Inside a transaction block the change may still be rolled back, and Postgres would not say so.
    pin({SessionEffect::Kind::pins, "search_path changed inside a transaction block", {}});
    return;
  }
  client_params_.set(TrackedParam::search_path, value);
  lease_->params.set(TrackedParam::search_path, value);
}

std::string Relay::refusal_message(const SessionEffect& effect) {
  std::string message = "pgmux: ";
  message += effect.what;
  message +=
      " would outlive the transaction, and this pool refuses session state (pool.session_state: error)";
  return message;
}

std::size_t Relay::rewrite_query(std::string_view message) {
  std::uint32_t length = read_u32(message.data() + 1);
  if (message.size() < 1 + std::size_t(length)) return 0;
  std::string target = deallocate_target(message.substr(kHeaderSize, length - 4));
  if (target.empty() || !extras_ || !extras_->statements.find(target)) return refuse_statement(message);
  // The name goes for this client only. A Close of nothing and a Sync get the two replies the Query's would
  // be: the CloseComplete becomes CommandComplete "DEALLOCATE", the Sync's ReadyForQuery carries the status.
  extras_->statements.remove(target);
  append_close(extras().out, 'S', kNoStatement);
  replies_.push({ReplyKind::close_as_deallocate});
  append_sync(extras().out);
  state_.tracker.on_client_message('C');
  state_.tracker.on_client_message('S');
  replies_.push({ReplyKind::query});
  lease_->statements.tick();
  return 1 + length;
}

std::size_t Relay::refuse_statement(std::string_view message) {
  std::uint32_t length = read_u32(message.data() + 1);
  if (message.size() < 1 + std::size_t(length)) return 0;
  std::string_view body = message.substr(kHeaderSize, length - 4);
  bool simple = message[0] == 'Q';
  SessionEffect effect = session_effect(simple ? body : body.substr(1));
  raise_error_in_stream(sqlstate::kFeatureNotSupported, refusal_message(effect));
  if (simple) {
    // A Query gets one ReadyForQuery: the Sync's, after the error.
    append_sync(extras().out);
    state_.tracker.on_client_message('S');
    replies_.push({ReplyKind::query});
    lease_->statements.tick();
  } else {
    state_.tracker.on_client_message('P');
  }
  return 1 + length;
}

// The SQLSTATE is the 'C' field, near the start of the body (after severity); a body cut before it counts as
// "other".
void Relay::count_error(std::string_view body) {
  std::string_view sqlstate;
  for (std::size_t pos = 0; pos < body.size() && body[pos] != '\0';) {
    std::size_t end = body.find('\0', pos);
    if (end == std::string_view::npos) break;
    if (body[pos] == 'C') {
      sqlstate = body.substr(pos + 1, end - pos - 1);
      break;
    }
    pos = end + 1;
  }
  pool_.traffic().add_error(pool::error_class_index(sqlstate));
}

void Relay::confirm(const PendingReply& reply) {
  if (reply.prepares) lease_->statements.confirm(reply.statement);
  if (reply.defines_client_name && extras_)
    extras_->statements.confirm(extras_->pending_names[reply.client_name_slot], reply.statement);
}

void Relay::note_statements_dropped() {
  lease_->statements.clear();
  drops_at_sync_ = true;
}

ScanStep Relay::on_backend_reply(char type, std::uint32_t length, std::string_view body) {
  auto mismatch = [this] {
    reply_mismatch_ = true;
    return ScanStep::kStop;
  };
  switch (type) {
    case '1':
    case '2':
    case '3': {
      if (replies_.empty()) return mismatch();
      ReplyKind kind = replies_.front().kind;
      bool fits = type == '1' ? kind == ReplyKind::parse || kind == ReplyKind::parse_hidden
                  : type == '2'
                      ? kind == ReplyKind::bind || kind == ReplyKind::bind_hidden
                      : kind == ReplyKind::close || kind == ReplyKind::close_hidden ||
                            kind == ReplyKind::parse_faked || kind == ReplyKind::close_as_deallocate;
      if (!fits || length != 4) return mismatch();
      confirm(replies_.front());
      replies_.pop();
      if (kind == ReplyKind::parse || kind == ReplyKind::bind || kind == ReplyKind::close)
        return ScanStep::kForward;
      edit_ = kind == ReplyKind::parse_faked           ? Edit::to_parse_complete
              : kind == ReplyKind::close_as_deallocate ? Edit::to_deallocate_complete
                                                       : Edit::drop;
      return ScanStep::kStop;
    }
    case 'E':
      // Inside a simple query the error ends that query only; in an extended batch it skips to the Sync.
      if (replies_.empty() || replies_.front().kind != ReplyKind::query) abandon_until_sync();
      if (!replies_.empty()) replies_.front().failed = true;
      // "prepared statement does not exist" can only name one of pgmux's: something the client ran (a
      // function doing DEALLOCATE ALL, say) dropped statements behind pgmux's back. Forget them all.
      if (body.find("C26000") != std::string_view::npos) lease_->statements.clear();
      return ScanStep::kForward;
    case 'G':
      // COPY FROM STDIN through the extended protocol: the server ignores a Sync that arrives during the
      // copy, so the batch's Sync, already sent, gets no ReadyForQuery (the one after CopyDone does).
      if (!replies_.empty() && replies_.front().kind == ReplyKind::sync) {
        replies_.pop();
        state_.tracker.on_sync_ignored();
      }
      return ScanStep::kForward;
    default:
      return ScanStep::kForward;
  }
}

void Relay::on_backend_ready() {
  if (replies_.empty() || !ends_at_ready(replies_.front().kind)) {
    reply_mismatch_ = true;
    return;
  }
  const PendingReply& done = replies_.front();
  if (done.clears_client_statements && !done.failed && extras_) extras_->statements.clear();
  // What was prepared after the drop was sent went too when it ran.
  if (done.drops_server_statements) lease_->statements.clear();
  // A failed request changed nothing, unless another of its statements committed before the failure or its
  // state is a session advisory lock, which no rollback releases (survives_failure): then it pins.
  if (done.search_path != PendingReply::SearchPath::unchanged) {
    if (!done.failed) {
      apply_search_path(done, state_.tracker.status());
    } else if (done.survives_failure) {
      extras().pending_search_path.clear();
      pin({SessionEffect::Kind::pins, "a change of search_path in a request that failed", {}});
    }
  }
  if (done.pins && (!done.failed || done.survives_failure)) pin({SessionEffect::Kind::pins, done.pins, {}});
  replies_.pop();
  if (replies_.empty() && extras_) extras_->pending_names.clear();
}

void Relay::abandon_until_sync() {
  while (!replies_.empty() && !ends_at_ready(replies_.front().kind)) {
    abandon(replies_.front());
    replies_.pop();
  }
}

void Relay::abandon(const PendingReply& reply) {
  if (reply.prepares && lease_) lease_->statements.remove(reply.statement);
  if (reply.defines_client_name && extras_) {
    const std::string& name = extras_->pending_names[reply.client_name_slot];
    if (const auto* known = extras_->statements.find(name); known && known->statement->id == reply.statement)
      extras_->statements.remove(name);
  }
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
                      if (client_stop_) return end_after_replies();
                      client_in_->compact();
                      state_.client_partial = !client_in_->empty() || !client_scanner_.at_boundary();
                      pump_client();
                    }));
  return false;
}

// ---- backend -> client ----

void Relay::wait_backend() {
  net::ReadinessSet::of_this_thread()->arm(lease_->watch_id);
}

void Relay::backend_readable(void* relay) {
  static_cast<Relay*>(relay)->pump_backend();
}

// A backend stays in its worker's set between clients: lent again on the same worker, it is only told whom to
// call back.
bool Relay::watch_backend() {
  net::ReadinessSet& set = *net::ReadinessSet::of_this_thread();
  pool::Backend& backend = *lease_;
  if (backend.watched_by == &set) {
    set.retarget(backend.watch_id, &Relay::backend_readable, this);
    return true;
  }
  const net::ReadinessSet::Id id = set.watch(backend.socket.native_handle(), &Relay::backend_readable, this);
  if (id == net::ReadinessSet::kNone) {
    log::error("a server connection's socket could not be watched (", std::strerror(errno), "); closing it");
    return false;
  }
  backend.watched_by = &set;
  backend.watch_id = id;
  return true;
}

void Relay::unwatch_backend() {
  if (lease_ && lease_->watched_by) lease_->watched_by->retarget(lease_->watch_id, nullptr, nullptr);
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
    // A full read may have left bytes behind, with no event to come for them: should the transaction end
    // here, the next borrower must look before trusting the set (looks_healthy).
    if (n == asked) lease_->watched_by->note_edge(lease_->watch_id);
    if (!process_backend_bytes()) return;
    if (n < asked) return wait_backend();
  }
}

bool Relay::process_backend_bytes() {
  net::IoBuffer& in = *backend_in_;
  while (hidden_replies_ > 0 && !in.empty()) {
    BackendMessages hidden{*this, true};
    ScanResult scanned = backend_scanner_.scan(in.data(), hidden);
    if (scanned.bad_length) {
      finish(End::backend_gone);
      return false;
    }
    in.consume(scanned.forward);  // the client never asked for these
    if (hidden.hidden_error) {
      // An invalid value from the client's startup packet (Postgres would have refused the login): it is
      // dropped, and the client keeps the server's value instead of failing the same way every transaction.
      TrackedParam param = extras().hidden_params[extras().hidden_params.size() - hidden_replies_];
      log::warning("a client's ", param_name(param),
                   " could not be set on a server connection; it is ignored");
      if (param == TrackedParam::search_path) {
        client_params_.set(param, "");
        lease_->params.set(param, "\x01unknown");  // a value no client has: the next borrower sets its own
      } else {
        client_params_.set(param, lease_->params.get(param));
      }
    }
    if (hidden.hidden_done) --hidden_replies_;
    if (!hidden.hidden_done) {
      in.compact();
      return true;  // the rest of the hidden reply is still to come
    }
  }
  if (in.empty()) return true;
  return forward_backend_bytes();
}

bool Relay::forward_backend_bytes() {
  net::IoBuffer& in = *backend_in_;
  BackendMessages messages{*this, false};
  std::size_t pos = 0;
  for (;;) {
    ScanResult scanned = backend_scanner_.scan(in.data().substr(pos), messages);
    if (scanned.bad_length) {
      finish(End::backend_gone);
      return false;
    }
    pos += scanned.forward;
    if (!scanned.stopped) break;
    if (reply_mismatch_) {
      // pgmux lost track of which reply answers which request: the connection cannot be trusted.
      log::error("a server's replies do not match the requests sent; closing that connection");
      finish(End::backend_gone);
      return false;
    }
    if (edit_ == Edit::drop) {
      in.erase(pos, kHeaderSize);
    } else if (edit_ == Edit::to_deallocate_complete) {
      static const std::string complete = [] {
        std::string out;
        append_command_complete(out, "DEALLOCATE");
        return out;
      }();
      in.replace(pos, kHeaderSize, complete);
      pos += complete.size();
    } else {
      in.mutable_data()[pos] = '1';  // CloseComplete becomes ParseComplete: same length
      pos += kHeaderSize;
    }
    edit_ = Edit::none;
  }
  backend_saw_ready_ = messages.saw_ready;
  if (count_traffic_) {
    pool::TrafficCounters& traffic = pool_.traffic();
    traffic.add_sent(pos);
    if (messages.transactions) traffic.add_transactions(messages.transactions);
    if (messages.answered) note_requests_answered(messages.answered);
  }
  if (pos > 0 && !write_to_client(pos)) return false;
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
  if (client_stop_ && at_rest && state_.tracker.outstanding() == 0) {
    finish(End::client_gone);  // the last reply owed before the client's Terminate went out
    return true;
  }
  if (!backend_saw_ready_ || !state_.releasable() || !at_rest) return false;
  if (!replies_.empty()) {
    log::error("a server connection is idle with replies still expected; closing it");
    finish(End::backend_gone);
    return true;
  }
  if (!release_at_idle_ || pinned_) {
    // Session mode (or a pinned client) keeps its backend; when draining, the session ends here and is
    // cleaned up by its owner.
    if (!draining_) return false;
    finish(End::shutting_down);
    return true;
  }
  bool cancel_pending = cancel_target_.clear();
  unwatch_backend();  // lent to someone else from here on, possibly on another thread
  auto now = pool::Clock::now();
  if (count_traffic_)
    pool_.traffic().add_transaction_time(
        std::chrono::duration_cast<std::chrono::microseconds>(now - backend_since_).count());
  if (cancel_pending) {
    log::info("closing a server connection a cancel request may still reach");
    lease_.close(pool::CloseReason::cancel_pending);
  } else {
    lease_.release_clean();
  }
  replies_.give_back_storage();
  backend_in_.reset();
  if (client_in_ && client_in_->empty()) client_in_.reset();
  last_client_activity_ = now;
  if (draining_) finish(End::shutting_down);
  return true;
}

void Relay::note_requests_sent(std::uint32_t outstanding_before) {
  // The backend was answering none of the client's requests (pgmux's own hidden ones aside): the clock of the
  // first one starts now.
  if (outstanding_before > static_cast<std::uint32_t>(hidden_replies_)) return;
  if (state_.tracker.outstanding() > outstanding_before) request_sent_ = pool::Clock::now();
}

void Relay::note_requests_answered(std::uint32_t answered) {
  // Pipelined requests are timed from the previous answer: the backend worked on them one after the other.
  const auto now = pool::Clock::now();
  pool::TrafficCounters& traffic = pool_.traffic();
  traffic.add_query_time(std::chrono::duration_cast<std::chrono::microseconds>(now - request_sent_).count());
  for (std::uint32_t i = 1; i < answered; ++i) traffic.add_query_time(0);
  request_sent_ = now;
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

void Relay::violation(const char* what) {
  extras().error_sqlstate = sqlstate::kProtocolViolation;
  extras().error_message = what;
  finish(End::client_protocol_violation);
}

void Relay::finish(End end) {
  if (!ended_) {
    ended_ = true;
    end_ = end;
    error_code ignored;
    client_.cancel(ignored);
    if (client_watch_ != net::ReadinessSet::kNone)
      net::ReadinessSet::of_this_thread()->forget(std::exchange(client_watch_, net::ReadinessSet::kNone));
    if (lease_) lease_->socket.cancel(ignored);
    unwatch_backend();
    if (idle_timer_) idle_timer_->cancel();
    // Queued with a ticket: out of the queue now, unless it was just served (then its wake gives the backend
    // back).
    if (acquiring_)
      if (QueueTicket* ticket = QueueTicket::held_by(*this); ticket && pool_.leave_queue(*ticket)) {
        ticket->recycle();
        done_acquiring();
      }
  }
  maybe_done();
}

void Relay::maybe_done() {
  if (!ended_ || pending_ > 0) return;
  backend_stream_intact_ = !backend_in_ || (backend_in_->empty() && backend_scanner_.at_boundary());
  for (; !replies_.empty(); replies_.pop()) abandon(replies_.front());  // never to be answered now
  client_in_.reset();
  backend_in_.reset();
  unlist();
  if (RelayOwner* owner = std::exchange(owner_, nullptr))
    owner->relay_finished();  // last: may end the session
}

}  // namespace pgmux::session
