// Turns the backend's answer to an HTTP request's pipeline into the JSON the Neon driver reads, message by
// message, straight into the response buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgmux::http {

// The pipeline is a run of Executes ended by one Sync: `hidden_before` of pgmux's own (BEGIN, set_config),
// then `queries` of the caller's (each with a Describe), then `hidden_after` (COMMIT). Only the caller's ones
// appear in the JSON. Pure: no sockets; fed one whole message at a time.
class ResultJsonWriter {
 public:
  ResultJsonWriter(std::string& out, bool array_mode, int hidden_before, int queries, std::size_t max_size);

  // Feeds one backend message (type and body without the header). False on a message that makes no sense
  // here: the backend cannot be trusted after that.
  bool on_message(char type, std::string_view body);

  bool ready() const { return ready_status_ != 0; }  // ReadyForQuery seen
  char ready_status() const { return ready_status_; }
  bool failed() const { return !error_json_.empty(); }
  // The first ErrorResponse as the driver's error object ({"message":...,"code":...,...}).
  const std::string& error_json() const { return error_json_; }
  // The response grew past max_size; nothing more is written after that.
  bool too_large() const { return too_large_; }
  void mark_too_large() { too_large_ = true; }
  // A caller's statement left session state behind (SET, LISTEN, PREPARE, LOAD): the backend should not be
  // handed to anyone else, since nothing tracks that state for the next borrower.
  bool left_session_state() const { return left_session_state_; }
  int completed_queries() const { return completed_ - hidden_before_ > 0 ? completed_ - hidden_before_ : 0; }

 private:
  bool current_is_callers() const {
    return completed_ >= hidden_before_ && completed_ < hidden_before_ + queries_;
  }
  bool start_result(std::string_view row_description);  // false if malformed
  bool append_row(std::string_view data_row);
  void finish_result(std::string_view command_tag);

  std::string& out_;
  const bool array_mode_;
  const int hidden_before_, queries_;
  const std::size_t max_size_;
  int completed_ = 0;  // Executes answered so far (CommandComplete, EmptyQueryResponse)
  bool in_result_ = false;
  int columns_ = 0;
  std::string keys_;                    // object mode: each column's `"name":`, escaped once per query
  std::vector<std::uint32_t> key_end_;  // where each key ends in keys_
  std::string error_json_;
  bool too_large_ = false;
  bool left_session_state_ = false;
  char ready_status_ = 0;
};

// The JSON error object for an ErrorResponse body: message, code, severity and every other field present.
std::string error_json_from_response(std::string_view body);
// The same shape for an error pgmux itself reports.
std::string error_json(std::string_view sqlstate, std::string_view message);

}  // namespace pgmux::http
