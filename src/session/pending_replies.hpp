// The replies a backend still owes, in the order the requests went out, for the requests whose replies pgmux
// may have to edit: its own hidden ones, and the client's that it rewrote.
#pragma once

#include <cstdint>
#include <vector>

#include "pool/prepared_statements.hpp"

namespace pgmux::session {

enum class ReplyKind : std::uint8_t {
  parse,         // the client's Parse: ParseComplete passes
  parse_hidden,  // pgmux's own Parse: ParseComplete dropped
  parse_faked,   // the client's Parse of a statement the backend already holds: a Close of nothing went
                 // instead, and its CloseComplete becomes the ParseComplete the client expects
  bind,
  bind_hidden,
  close,
  close_hidden,
  close_as_deallocate,  // the client's DEALLOCATE name: its CloseComplete becomes CommandComplete
  sync,                 // ends at ReadyForQuery; an error skips every request before it
  query,  // simple Query or FunctionCall: ends at ReadyForQuery, an error inside it skips nothing
};

inline bool ends_at_ready(ReplyKind kind) {
  return kind == ReplyKind::sync || kind == ReplyKind::query;
}

struct PendingReply {
  PendingReply(ReplyKind k = ReplyKind::sync) : kind(k) {}
  ReplyKind kind;
  bool prepares = false;             // parse, parse_hidden: puts `statement` on the backend
  bool defines_client_name = false;  // parse, parse_faked: defines client_name_slot's name for the client
  bool clears_client_statements = false;  // query, sync: DEALLOCATE ALL / DISCARD ALL ran, if none failed
  bool failed = false;                    // query, sync: an ErrorResponse came before the ReadyForQuery
  // query, sync: the client changed search_path (to the relay's pending value) or reset it, if none failed;
  // if one failed and survives_failure, it pins.
  enum class SearchPath : std::uint8_t { unchanged, set, reset } search_path = SearchPath::unchanged;
  // query, sync: the request creates session state (a static description of it); pins if none failed, or
  // whatever happened when survives_failure.
  const char* pins = nullptr;
  // query, sync: `pins` and `search_path` hold even if the request failed (see SessionEffect).
  bool survives_failure = false;
  bool drops_server_statements = false;  // query, sync: a request of the batch may drop server statements
  std::uint32_t client_name_slot = 0;
  pool::StatementId statement;
};

// A FIFO on a ring that grows and never shrinks while a backend is on loan. Between transactions the ring
// goes back to a per-thread free list, so an idle client holds none and a busy one does not allocate.
class PendingReplies {
 public:
  PendingReplies() = default;
  PendingReplies(const PendingReplies&) = delete;
  PendingReplies& operator=(const PendingReplies&) = delete;
  ~PendingReplies() { give_back_storage(); }

  bool empty() const { return count_ == 0; }
  std::size_t size() const { return count_; }
  PendingReply& front() { return ring_[head_]; }
  void push(const PendingReply& reply) {
    if (count_ == ring_.size()) grow();
    ring_[(head_ + count_) & (ring_.size() - 1)] = reply;
    ++count_;
  }
  void pop() {
    head_ = (head_ + 1) & (ring_.size() - 1);
    --count_;
  }
  // Empty: the ring goes back to this thread's free list (a grown one is freed).
  void give_back_storage() {
    if (count_ != 0 || ring_.empty()) return;
    auto& spare = spare_rings();
    if (ring_.size() == kInitialSize && spare.size() < kMaxSpare) spare.push_back(std::move(ring_));
    ring_ = {};
    head_ = 0;
  }

 private:
  static constexpr std::size_t kInitialSize = 8;
  static constexpr std::size_t kMaxSpare = 4096;
  static std::vector<std::vector<PendingReply>>& spare_rings() {
    thread_local std::vector<std::vector<PendingReply>> spare;
    return spare;
  }

  void grow() {
    if (ring_.empty() && !spare_rings().empty()) {
      ring_ = std::move(spare_rings().back());
      spare_rings().pop_back();
      head_ = 0;
      return;
    }
    std::vector<PendingReply> bigger(ring_.empty() ? kInitialSize : ring_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_.swap(bigger);
    head_ = 0;
  }
  std::vector<PendingReply> ring_;  // size a power of two
  std::size_t head_ = 0, count_ = 0;
};

}  // namespace pgmux::session
