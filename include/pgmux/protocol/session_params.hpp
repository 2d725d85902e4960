// The session settings pgmux carries for each client across backends in transaction mode.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
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
//
// Thousands of clients usually share a handful of distinct settings, so the values are interned: equal sets
// share one immutable copy, a ParamSet is one pointer, and comparing two is a pointer compare. Changing a
// value (a SET, a ParameterStatus) finds or makes the shared copy under a process-wide lock, which is off the
// hot path: it happens at login and when settings actually change.
class ParamSet {
 public:
  struct Values;

  void set(TrackedParam param, std::string_view value);
  // For a ParameterStatus name: records it if tracked, ignores it otherwise.
  void set(std::string_view name, std::string_view value);
  // Every value at once, indexed by TrackedParam: one interning where a set() per value would intern each
  // intermediate set (a login sets six or seven).
  void set_all(const std::array<std::string_view, kTrackedParamCount>& values);
  const std::string& get(TrackedParam param) const;
  // The same values (the per-transaction check).
  bool operator==(const ParamSet& other) const { return values_ == other.values_; }

 private:
  std::shared_ptr<const Values> values_;  // null: every value empty
};

// How many distinct settings sets are alive (interned), for tests.
std::size_t interned_param_sets();

// The simple-query text that makes a backend's settings match a client's ("" when they match). Values are
// sent as quoted literals, never spliced as SQL.
std::string statements_to_match(const ParamSet& client, const ParamSet& backend);
// The same, one statement per setting, so that each can be sent as a query of its own: an invalid value then
// fails alone instead of rolling back the others with it.
std::vector<std::pair<TrackedParam, std::string>> settings_to_match(const ParamSet& client,
                                                                    const ParamSet& backend);

}  // namespace pgmux::protocol
