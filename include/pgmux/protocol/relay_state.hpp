// What both directions of a relay know together: where the transaction is, and whether a backend may go.
#pragma once

#include "pgmux/protocol/tx_tracker.hpp"

namespace pgmux::protocol {

struct RelayState {
  TxTracker tracker;
  bool client_writing = false;  // a client->backend write is under way
  bool client_partial = false;  // client bytes buffered or half-forwarded: more of a message is coming

  // Transaction mode may hand the backend back now: nothing in flight either way, and no partial message that
  // a cancelled write could cut.
  bool releasable() const { return tracker.idle() && !client_writing && !client_partial; }
};

}  // namespace pgmux::protocol
