// Knows whether a backend is between transactions: requests forwarded against ReadyForQuery received.
#pragma once

#include <cstdint>

namespace pgmux::protocol {

// Only ReadyForQuery 'I' with nothing outstanding means a backend may serve another client (transaction
// mode). Clients pipeline, so several Query/Sync messages may be in flight; each gets exactly one
// ReadyForQuery.
class TxTracker {
 public:
  // Called for every message the client sends to the backend, by type.
  void on_client_message(char type) {
    switch (type) {
      case 'Q':  // simple query: one ReadyForQuery at the end
      case 'F':  // function call: likewise
        ++outstanding_;
        break;
      case 'S':  // Sync closes an extended-query batch and gets one ReadyForQuery
        ++outstanding_;
        unsynced_ = false;
        break;
      case 'P':
      case 'B':
      case 'D':
      case 'E':
      case 'C':
      case 'H':
        // Extended-query messages without a Sync yet: the backend holds state (an unnamed statement, a
        // portal, results behind a Flush) that only this client may see.
        unsynced_ = true;
        break;
      default:  // CopyData/CopyDone/CopyFail belong to a request already counted
        break;
    }
  }

  // A Sync the server ignored (it arrived during COPY FROM STDIN): no ReadyForQuery will answer it.
  void on_sync_ignored() {
    if (outstanding_ > 0) --outstanding_;
  }

  void on_ready_for_query(char status) {
    if (outstanding_ > 0) --outstanding_;
    status_ = status;
  }

  bool idle() const { return outstanding_ == 0 && !unsynced_ && status_ == 'I'; }
  std::uint32_t outstanding() const { return outstanding_; }
  bool unsynced() const { return unsynced_; }
  char status() const { return status_; }

 private:
  std::uint32_t outstanding_ = 0;
  bool unsynced_ = false;
  char status_ = 'I';
};

}  // namespace pgmux::protocol
