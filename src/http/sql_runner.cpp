// Runs one HTTP request's queries on a leased backend in a single round trip and writes the JSON answer.
#include "http/sql_runner.hpp"

#include <algorithm>
#include <cstring>

#include "http/extended_query.hpp"
#include "http/result_json.hpp"
#include "log.hpp"
#include "net/message_io.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/sql_keywords.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::http {

namespace {

using protocol::kHeaderSize;
using protocol::read_u32;

constexpr std::size_t kInitialBuffer = 16 * 1024;
// After a cancel, how long the backend may take to stop sending before it is closed instead.
constexpr auto kDrainLimit = std::chrono::seconds(10);

// Whole backend messages out of one growing buffer: reads only headers to cut, hands out views of bodies.
class MessageReader {
 public:
  explicit MessageReader(std::size_t max_message) : max_message_(max_message) {
    buffer_.resize(kInitialBuffer);
  }

  // The next whole message, if the buffer holds one. A message longer than max_message is skipped as it
  // arrives and reported once as type 0 so the caller can treat the answer as too large.
  bool next(char& type, std::string_view& body) {
    while (skip_ > 0 && end_ > begin_) {
      std::size_t n = std::min(skip_, end_ - begin_);
      begin_ += n;
      skip_ -= n;
    }
    if (skip_ > 0 || end_ - begin_ < kHeaderSize) return false;
    std::uint32_t length = read_u32(buffer_.data() + begin_ + 1);
    if (length < 4) {
      malformed_ = true;
      return false;
    }
    if (length - 4 > max_message_) {
      skip_ = kHeaderSize + length - 4;
      type = 0;
      body = {};
      return true;
    }
    std::size_t total = kHeaderSize + length - 4;
    if (end_ - begin_ < total) {
      if (buffer_.size() < total) make_room(total);
      return false;
    }
    type = buffer_[begin_];
    body = std::string_view(buffer_.data() + begin_ + kHeaderSize, total - kHeaderSize);
    begin_ += total;
    return true;
  }

  bool malformed() const { return malformed_; }

  // Where the next read goes; compacts first so that the free space is at the end.
  asio::mutable_buffer free_space() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == buffer_.size() && begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return asio::buffer(buffer_.data() + end_, buffer_.size() - end_);
  }
  void filled(std::size_t n) { end_ += n; }

 private:
  void make_room(std::size_t total) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    buffer_.resize(std::max(total, buffer_.size() * 2));
  }

  std::string buffer_;
  std::size_t begin_ = 0, end_ = 0, skip_ = 0;
  const std::size_t max_message_;
  bool malformed_ = false;
};

// The settings an HTTP answer is written in: the server's defaults for this pool, in UTF-8 (JSON text).
// A wire client may have left the backend with its own DateStyle or TimeZone; those are put back first.
protocol::ParamSet http_settings(pool::Pool& pool) {
  protocol::ParamSet wanted = pool.server_settings();
  wanted.set(protocol::TrackedParam::client_encoding, "UTF8");
  return wanted;
}

void record_parameter(pool::Backend& backend, std::string_view body) {
  std::string_view name, value;
  if (protocol::parse_parameter_status(body, name, value)) backend.params.set(name, value);
}

}  // namespace

asio::awaitable<void> run_sql(pool::BackendLease lease, pool::Pool& pool, const SqlRequest& request,
                              std::size_t max_response_size, SqlAnswer& answer) {
  pool::Backend& backend = *lease;
  auto backend_failed = [&](std::string_view why) {
    log::warning("HTTP /sql: server connection to ", pool.name(), " failed: ", why);
    answer.status = 503;
    answer.body = error_json(protocol::sqlstate::kConnectionFailure,
                             "the server connection failed: " + std::string(why));
    lease.close(pool::CloseReason::broken);
  };

  // State that outlives the request (a temporary table, a session advisory lock, a set_config of the
  // session: what a wire client would be pinned for) must not reach the next borrower, and the command tags
  // show only some of it: such a server session is closed afterwards rather than reset, as it is rare here.
  const bool leaves_session_state =
      std::any_of(request.queries.begin(), request.queries.end(), [](const SqlQuery& query) {
        return protocol::session_effect(query.text).kind != protocol::SessionEffect::Kind::none;
      });
  std::string out;
  const std::string settings = protocol::statements_to_match(http_settings(pool), backend.params);
  if (!settings.empty()) protocol::append_query(out, settings);
  int hidden_before = 0;
  if (request.batch) {
    append_extended_query(out, begin_statement(request), {}, false);
    ++hidden_before;
  }
  if (request.statement_timeout.count() > 0) {
    // Local to this transaction (the implicit one of the pipeline, or the batch's), so nothing outlives it.
    append_extended_query(out, "SELECT pg_catalog.set_config('statement_timeout', $1, true)",
                          {std::to_string(request.statement_timeout.count())}, false);
    ++hidden_before;
  }
  for (const SqlQuery& query : request.queries) append_extended_query(out, query.text, query.params, true);
  if (request.batch) append_extended_query(out, "COMMIT", {}, false);
  protocol::append_sync(out);
  if (auto ec = co_await net::write_all(backend.socket, out)) {
    backend_failed(ec.message());
    co_return;
  }

  answer.body.clear();
  if (request.batch) answer.body = "{\"results\":[";
  ResultJsonWriter writer(answer.body, request.array_mode, hidden_before,
                          static_cast<int>(request.queries.size()), max_response_size);
  MessageReader reader(max_response_size);
  bool settings_pending = !settings.empty(), close_after = false;
  bool cancelled = false, rolling_back = false;
  asio::steady_timer drain_deadline(backend.socket.get_executor());
  char type;
  std::string_view body;
  for (;;) {
    bool finished = false;
    while (!finished && reader.next(type, body)) {
      if (type == 'S') record_parameter(backend, body);
      if (settings_pending) {  // the simple-query SETs answer first, up to their own ReadyForQuery
        if (type == 'E') close_after = true;
        if (type == 'Z') settings_pending = false;
        continue;
      }
      if (rolling_back) {
        if (type == 'Z' && body.size() == 1) {
          finished = true;
          if (body[0] != 'I') close_after = true;  // not idle after ROLLBACK: never reuse it
        }
        continue;
      }
      if (type == 'G' || type == 'H' || type == 'W') {
        // COPY wants a data stream the JSON protocol cannot carry; the backend is mid-COPY, so it goes.
        lease.close();
        answer.status = 400;
        answer.body = error_json(protocol::sqlstate::kFeatureNotSupported,
                                 "COPY to or from the client is not supported over HTTP");
        co_return;
      }
      if (type == 0) {
        writer.mark_too_large();  // a message too big to hold: the answer is over the limit whatever it was
      } else if (!writer.on_message(type, body)) {
        backend_failed(std::string("unexpected message '") + type + "' in an HTTP query's answer");
        co_return;
      }
      if (writer.ready()) finished = true;
    }
    if (reader.malformed()) {
      backend_failed("malformed message");
      co_return;
    }
    if (finished && !rolling_back && writer.ready_status() != 'I') {
      // A failed batch (status 'E'), or a caller's own BEGIN ('T'): roll back so the backend is clean.
      out.clear();
      protocol::append_query(out, "ROLLBACK");
      if (auto ec = co_await net::write_all(backend.socket, out)) {
        backend_failed(ec.message());
        co_return;
      }
      rolling_back = true;
      finished = false;
    }
    if (finished) break;
    if (writer.too_large() && !cancelled) {
      // Stop the query rather than read the rest of a huge result; drain what is already on its way.
      cancelled = true;
      co_await pool::send_cancel_request(pool.database(), backend.pid, backend.secret_key);
      drain_deadline.expires_after(kDrainLimit);
      drain_deadline.async_wait([&socket = backend.socket](error_code ec) {
        if (!ec) socket.cancel();
      });
    }
    auto [ec, n] = co_await backend.socket.async_read_some(reader.free_space(), use_nothrow);
    if (ec) {
      backend_failed(ec.message());
      co_return;
    }
    reader.filled(n);
  }
  drain_deadline.cancel();

  // A cancel sent for an oversized result may land after the query ended, on the next borrower's query:
  // that backend is not lent again.
  if (close_after || cancelled || leaves_session_state || writer.left_session_state()) {
    lease.close();
  } else {
    lease.release_clean();
  }
  if (writer.too_large()) {
    answer.status = 400;
    answer.body = error_json("54000", "the result is larger than http.max_response_size (" +
                                          std::to_string(max_response_size) + " bytes)");
  } else if (writer.failed()) {
    answer.status = 400;
    answer.body = writer.error_json();
  } else {
    answer.status = 200;
    if (request.batch) answer.body += "]}";
  }
}

}  // namespace pgmux::http
