// The session settings pgmux carries for each client across backends in transaction mode.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmux::protocol {

// The settings Postgres reports in ParameterStatus that a client can change and expects to keep: pgmux
// follows them on both sides and re-applies a client's values to whichever backend serves it.
enum class TrackedParam : std::uint8_t {
  client_encoding,
  DateStyle,
  TimeZone,
  IntervalStyle,
  standard_conforming_strings,
  application_name,
  // Not reported by Postgres 15: pgmux reads it from the client's SET and startup packet, and keeps it as the
  // SQL list the client wrote ("" is the default, restored with RESET).
  search_path,
};
inline constexpr std::size_t kTrackedParamCount = 7;

// Case-insensitive, as Postgres matches setting names.
std::optional<TrackedParam> tracked_param(std::string_view name);
std::string_view param_name(TrackedParam param);

// The values of the tracked settings on one side: a client's own, or a backend's current ones.
class ParamSet {
 public:
  void set(TrackedParam param, std::string_view value);
  // For a ParameterStatus name: records it if tracked, ignores it otherwise.
  void set(std::string_view name, std::string_view value);
  const std::string& get(TrackedParam param) const { return values_[static_cast<std::size_t>(param)]; }
  // Equal fingerprints mean equal values (up to a 64-bit hash collision): the per-transaction check is one
  // compare.
  std::uint64_t fingerprint() const { return fingerprint_; }

 private:
  std::array<std::string, kTrackedParamCount> values_;
  std::uint64_t fingerprint_ = 0;
};

// The simple-query text that makes a backend's settings match a client's ("" when they match). Values are
// sent as quoted literals, never spliced as SQL.
std::string statements_to_match(const ParamSet& client, const ParamSet& backend);
// The same, one statement per setting, so that each can be sent as a query of its own: an invalid value then
// fails alone instead of rolling back the others with it.
std::vector<std::pair<TrackedParam, std::string>> settings_to_match(const ParamSet& client,
                                                                    const ParamSet& backend);

}  // namespace pgmux::protocol
