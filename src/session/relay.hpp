// Moves bytes both ways between a logged-in client and the backends that serve it, borrowing one per
// transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/asio.hpp"
#include "net/buffer_pool.hpp"
#include "net/readiness.hpp"
#include "pgmux/config/config.hpp"
#include "pgmux/protocol/message_scanner.hpp"
#include "pgmux/protocol/relay_state.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/sql_keywords.hpp"
#include "pool/pool.hpp"
#include "pool/prepared_statements.hpp"
#include "session/cancel_registry.hpp"
#include "session/client_snapshot.hpp"
#include "session/pending_replies.hpp"
#include "session/queue_ticket.hpp"

namespace pgmux::session {

// Told once, when the relay has stopped for good and none of its handlers is pending any more.
class RelayOwner {
 public:
  virtual void relay_finished() = 0;
  // Who the client is (user, database, addresses, connect time), for the admin console.
  virtual void describe(ClientSnapshot& out) const = 0;

 protected:
  ~RelayOwner() = default;
};

// What a relay is told beyond its pool's settings.
struct RelaySettings {
  // pool.*: in the config snapshot the session keeps for its whole life, so every client shares one copy
  // instead of holding its own (idle clients are many).
  const config::PoolConfig& pool;
  // transaction mode: the backend goes back at the ReadyForQuery that ends the transaction
  bool release_at_idle = true;
  // metrics.enabled: count bytes, queries, transactions and their durations. Off, the relay reads no clock
  // and touches no counter per message (bench/ measures the difference).
  bool count_traffic = true;
  bool websocket = false;  // the client came over WebSocket (for the metrics' protocol label)
};

// The hot path, as a callback-driven state machine that lives as long as the client's session:
//  - between transactions it holds no backend and no buffer, only a wait for the client to be readable;
//  - the client's first bytes borrow a backend (an idle one without any coroutine; the pool's queue only when
//    none is idle), then both directions are pumped: read what the socket has, forward whole runs of messages
//    with one write, wait only when there is nothing;
//  - the ReadyForQuery that leaves nothing outstanding gives the backend back, and the wait on the client
//  that
//    was armed during the transaction simply carries on.
// No coroutine frame and no cancellation per transaction: handlers are small and come from Asio's per-thread
// recycling allocator, so the steady state does not allocate.
class Relay {
 public:
  enum class End : std::uint8_t {
    client_gone,                // EOF, error or Terminate
    backend_gone,               // the backend's connection broke mid-transaction
    client_protocol_violation,  // a message length that cannot be right
    no_backend,                 // query_wait_timeout, or the server could not be reached
    client_idle_timeout,
    shutting_down,  // SIGTERM: at a transaction boundary, or at once if it held no backend
    killed,         // KILL of its database in the admin console: at once, whatever it was doing
    query_timeout,  // a request went unanswered for longer than query_timeout: the backend cannot be trusted
  };

  // `client_params`: the client's own session settings, applied to each backend it borrows (and updated as
  // the client changes them).
  Relay(net::Socket& client, pool::Pool& pool, CancelTarget& cancel_target, protocol::ParamSet& client_params,
        RelaySettings settings);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Runs until the session ends, then calls owner.relay_finished() (possibly before start() returns).
  void start(RelayOwner& owner);
  // SIGTERM: end at the next transaction boundary, or now if the client is idle. A client with a request
  // in flight (queued for a backend, or bytes waiting to be read) is idle only once it is served. With
  // `spare_new_clients`, one that has not sent its first request since it logged in is left a moment to do
  // so.
  void drain(bool spare_new_clients = false);
  // For a client that logged in while a drain was under way: it may run one transaction, then it ends.
  void drain_after_next_transaction() { draining_ = !ended_; }
  // drain() for every relay running on the calling worker thread.
  static void drain_all_on_this_thread(bool spare_new_clients = false);
  // drain() for the relays on this thread whose pool was retired by a reload (their database was removed).
  static void drain_retired_on_this_thread();
  // Ends, with End::query_timeout, every relay on the calling worker thread whose backend has owed an answer
  // for longer than its query_timeout. Called periodically on each worker (session/query_timeout_sweep).
  static void expire_queries_on_this_thread(pool::Clock::time_point now);
  // KILL: ends the session now; its backend, if any, is closed.
  void kill();
  // Calls `visit(relay)` for every relay running on the calling worker thread (which may kill() it).
  template <class Visit>
  static void for_each_on_this_thread(Visit&& visit) {
    for (Relay* r = running_on_this_thread(); r;) {
      Relay* next = r->next_;
      visit(*r);
      r = next;
    }
  }
  // The client and the backend it holds as they are now, for SHOW CLIENTS and SHOW SERVERS.
  ClientSnapshot snapshot() const;
  const pool::Pool& pool() const { return pool_; }
  bool holds_backend() const { return static_cast<bool>(lease_); }
  bool waiting_for_backend() const { return acquiring_; }
  bool websocket() const { return websocket_; }
  End end() const { return end_; }
  // The client created session state (pool.session_state: pin): its backend must be reset before reuse.
  bool pinned() const { return pinned_; }

  // After the end: the backend still on loan, if any, for the session to clean up, return or close.
  pool::BackendLease& lease() { return lease_; }
  const protocol::RelayState& state() const { return state_; }
  // The backend can take new requests: no request running, nothing cut mid-message either way. Only the
  // client's transaction (or session state) may still be open.
  bool backend_reusable() const {
    return backend_stream_intact_ && state_.tracker.outstanding() == 0 && !state_.client_writing &&
           !state_.client_partial;
  }
  // For End::no_backend, End::client_protocol_violation and End::query_timeout: what to tell the client.
  const std::string& error_sqlstate() const { return extras_ ? extras_->error_sqlstate : kNoError; }
  const std::string& error_message() const { return extras_ ? extras_->error_message : kNoError; }

 private:
  void wait_client();  // only once the socket is drained (EAGAIN or a short read): see ReadinessSet
  void read_client_if_due();
  static void client_readable(void* relay);  // net::ReadinessSet's call back
  void end_after_replies();
  void pump_client();
  // Borrows a backend for the bytes just read. False when the pump must stop here (asynchronous acquire, or
  // the client is leaving).
  bool take_backend();
  // Waits for a backend in the pool's coroutine: a new connection (in a slot already granted with
  // `holds_slot`), retries, PAUSE. The queue alone goes by QueueTicket.
  void acquire_in_coroutine(bool holds_slot);
  void done_acquiring();                        // the wait for a backend is over, whichever way
  void no_backend(pool::AcquireResult failed);  // ends with End::no_backend, telling the client why
  // From QueueTicket, on this relay's thread: its turn came (a backend, a slot, KILL or RESUME), or
  // query_wait_timeout passed first.
  friend class QueueTicket;
  friend struct TicketList;
  void queue_served(QueueTicket& ticket);
  void queue_wait_expired(QueueTicket& ticket);
  bool drop_stray_copy_messages();
  // A Query or Parse longer than the buffer is scanned for session state in pieces as it passes:
  // start_long_statement with what was buffered, then scan_long_statement with each later piece.
  void start_long_statement(std::string_view start);
  void scan_long_statement(std::string_view piece);
  void watch_queued_client();
  // Takes the lease and brings the backend's settings in line with the client's. False if that failed.
  bool adopt(pool::BackendLease lease);
  // Scans and forwards buffered client bytes. False when the pump must stop here.
  bool forward_client_bytes();
  bool write_to_backend(std::size_t n);
  // After bytes of the client's went into out_ (rewritten): writes out_ whole. False when the pump must stop.
  bool write_rewritten_to_backend();

  // Named prepared statements (transaction mode). Each takes the client message at the start of `message`
  // (whole, or for Bind its names at least), appends what the backend must receive instead to out_, and says
  // how many input bytes it consumed; 0 means more input is needed.
  std::size_t rewrite_parse(std::string_view message);
  std::size_t rewrite_bind(std::string_view message);
  std::size_t rewrite_describe_or_close(std::string_view message);
  // Makes sure the backend holds `statement`, preparing it first if not, with the replies hidden.
  void place_on_backend(const pool::PreparedStatement& statement);
  // Records the statement as held by the backend, closing the least recently used one if over the limit and
  // any stale copy of this one.
  void make_room_for(const pool::PreparedStatement& statement);
  void send_hidden_close(std::string_view server_name);
  // Makes the backend itself report an error at this point of the stream, so that it skips to the next Sync
  // and rolls back exactly as it would for an error of its own.
  void raise_error_in_stream(std::string_view sqlstate, std::string_view message);
  pool::ClientStatements& client_statements();

  // Session state the client's SQL creates. Pins the client (once, logged and counted), or returns false when
  // the statement must be refused (pool.session_state: error).
  bool admit(const protocol::SessionEffect& effect) const;
  void pin(const protocol::SessionEffect& effect);
  static std::string refusal_message(const protocol::SessionEffect& effect);
  // A search_path change the client sent, applied when its ReadyForQuery shows it took effect.
  void note_search_path(const protocol::SessionEffect& effect, PendingReply::SearchPath& change);
  void apply_search_path(const PendingReply& done, char status);
  // In place of a statement refused by pool.session_state: error; `simple`: it was a Query, which gets its
  // ReadyForQuery from a Sync sent with the error.
  std::size_t refuse_statement(std::string_view message);
  // A Query stopped by the scan: DEALLOCATE of the client's own statement, or a statement to refuse.
  std::size_t rewrite_query(std::string_view message);

  // Matches a reply the backend sent to the request it answers. kStop with edit_ set: edit the message first.
  protocol::ScanStep on_backend_reply(char type, std::uint32_t length, std::string_view body);
  // A reply came: what its request prepared is there now.
  void confirm(const PendingReply& reply);
  void count_error(std::string_view error_body);
  // A request may drop prepared statements on the server: the backend's list is forgotten now, and again at
  // the batch's ReadyForQuery.
  void note_statements_dropped();
  void on_backend_ready();
  // The replies still owed until the next Sync will never come (an error skips to the Sync): undo what their
  // requests were assumed to do.
  void abandon_until_sync();
  void abandon(const PendingReply& reply);

  bool watch_backend();    // in this worker's readiness set, calling this relay back; false if it cannot be
  void unwatch_backend();  // calls back nobody, before the lease is given up
  void wait_backend();
  static void backend_readable(void* relay);  // net::ReadinessSet's call back
  void pump_backend();
  // Drops the replies to pgmux's own SET, then forwards the rest. False when the pump must stop here.
  bool process_backend_bytes();
  bool forward_backend_bytes();
  bool write_to_client(std::size_t n);
  // After backend bytes went out: gives the backend back if the transaction is over. True if it did.
  bool maybe_release();

  void arm_idle_timer(pool::Clock::duration after);
  void expire_query(pool::Clock::time_point now);
  void finish(End end);
  void violation(const char* what);  // End::client_protocol_violation, saying what was wrong
  void list();  // on this thread's list of running relays, for drain_all_on_this_thread()
  void unlist();
  void maybe_done();
  static Relay* running_on_this_thread();
  // Times the requests being answered (metrics): from when the backend got one to its ReadyForQuery.
  void note_requests_sent(std::uint32_t outstanding_before);
  void note_requests_answered(std::uint32_t answered);
  template <class Handler>
  auto on_client_thread(Handler&& handler);
  // Lets other sessions on this thread run after this many reads in a row (a long COPY must not starve them).
  static constexpr int kReadsPerTurn = 16;
  void yield_to_others(void (Relay::*pump)());

  struct ClientMessages;
  struct BackendMessages;

  // Ordered by size, so that no padding is wasted: an idle client's whole session is one heap block, and
  // every 16 bytes off it count at 10,000 clients (bench/: idle memory).
  net::Socket& client_;
  pool::Pool& pool_;
  CancelTarget& cancel_target_;
  protocol::ParamSet& client_params_;
  // pool.max_prepared_statements, pin_session_state, query_wait_timeout, client_idle_timeout, query_timeout
  // (pool.max_packet_size is in client_scanner_).
  const config::PoolConfig& settings_;
  RelayOwner* owner_ = nullptr;
  std::unique_ptr<asio::steady_timer> idle_timer_;  // only with client_idle_timeout

  pool::BackendLease lease_;
  // While acquiring_: since when the client waits for a backend. While a backend is leased: since when it was
  // lent (the pool's transaction time). Never both at once, so one field.
  pool::Clock::time_point backend_since_;
  pool::Clock::time_point request_sent_;  // the oldest request the backend is answering, or its last answer
  pool::Clock::time_point last_client_activity_;
  net::IoBufferSlot client_in_;   // borrowed while the client has bytes in flight
  net::IoBufferSlot backend_in_;  // borrowed while a backend is on loan

  // Transaction mode: the replies in flight are followed, for named prepared statements (the client's, and
  // rewritten client bytes) and session state.
  PendingReplies replies_;
  // What only some clients need (named statements, rewritten bytes, settings to restore), allocated on first
  // use: an idle client costs as little as possible.
  struct Extras {
    pool::ClientStatements statements;
    std::vector<std::string> pending_names;  // names defined by Parse messages still unanswered
    std::string out;                         // client bytes rewritten for the backend
    std::string pending_search_path;
    std::vector<protocol::TrackedParam> hidden_params;  // the setting each hidden query sets, in order
    std::string error_sqlstate, error_message;          // see error_sqlstate()
    std::string long_statement_end;  // the last bytes read of a statement too long to scan whole
  };
  std::unique_ptr<Extras> extras_;
  static inline const std::string kNoError;
  Extras& extras();
  const char* pin_at_sync_ = nullptr;  // an unnamed Parse creates session state: pin if its batch succeeds
  Relay* prev_ = nullptr;              // this thread's list of running relays
  Relay* next_ = nullptr;

  protocol::RelayState state_;
  protocol::MessageScanner client_scanner_;
  protocol::MessageScanner backend_scanner_;
  // 16 bits each (there are a few at most), and the flags below in bit-fields, keep the relay at 264 bytes.
  std::int16_t hidden_replies_ = 0;  // replies due to settings pgmux sent itself: the client never sees them
  std::int16_t pending_ = 0;  // asynchronous operations in flight; their handlers must run before we are done
  net::ReadinessSet::Id client_watch_ = net::ReadinessSet::kNone;  // the client's socket in its worker's set
  End end_ = End::client_gone;

  // Fixed for the relay's life, or changed once.
  const bool release_at_idle_ : 1;  // RelaySettings::release_at_idle
  const bool count_traffic_ : 1;    // RelaySettings::count_traffic
  const bool websocket_ : 1;        // RelaySettings::websocket
  const bool track_replies_ : 1;    // transaction mode: see replies_
  bool listed_ : 1 = false;         // on this thread's list (prev_, next_); changes twice in a relay's life
  bool pinned_ : 1 = false;         // session state only this backend holds: it stays until the client leaves
  bool draining_ : 1 = false;
  bool served_ : 1 = false;  // has borrowed a backend at least once
  // Seldom set.
  bool client_stop_ : 1 = false;  // the client sent Terminate: stop after forwarding what came before
  bool copy_in_ : 1 = false;      // the server is in COPY FROM STDIN, waiting for the client's data
  bool scanning_long_statement_ : 1 = false;  // see scan_long_statement
  bool reply_mismatch_ : 1 = false;
  bool backend_stream_intact_ : 1 = false;
  // Changed on every transaction, or bound to a reference.
  bool drops_all_at_sync_ = false;  // an unnamed Parse of DEALLOCATE ALL / DISCARD ALL awaits its Sync
  bool drops_at_sync_ = false;      // a request in the batch may drop statements on the server
  bool backend_saw_ready_ = false;  // a ReadyForQuery went by in the bytes now being forwarded
  bool acquiring_ = false;          // queued in the pool for a backend
  enum class Edit : std::uint8_t { none, drop, to_parse_complete, to_deallocate_complete } edit_ = Edit::none;
  PendingReply::SearchPath search_path_at_sync_ = PendingReply::SearchPath::unchanged;  // like drops_at_sync_
  bool ended_ = false;
};

}  // namespace pgmux::session
