// The session settings pgmux carries for each client across backends in transaction mode.
#include "pgmux/protocol/session_params.hpp"

#include <strings.h>
#include <functional>

namespace pgmux::protocol {
namespace {

constexpr std::array<std::string_view, kTrackedParamCount> kNames = {
    "client_encoding",  "DateStyle",   "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name", "search_path",
};

// A string literal in standard_conforming_strings form: quotes doubled. E'' is used when a backslash appears,
// so the result means the same whatever the backend's standard_conforming_strings is.
void append_literal(std::string& out, std::string_view value) {
  bool backslash = value.find('\\') != std::string_view::npos;
  if (backslash) out += 'E';
  out += '\'';
  for (char c : value) {
    if (c == '\'' || (backslash && c == '\\')) out += c;
    out += c;
  }
  out += '\'';
}

}  // namespace

std::optional<TrackedParam> tracked_param(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (name.size() == kNames[i].size() && strncasecmp(name.data(), kNames[i].data(), name.size()) == 0)
      return static_cast<TrackedParam>(i);
  }
  return std::nullopt;
}

std::string_view param_name(TrackedParam param) {
  return kNames[static_cast<std::size_t>(param)];
}

void ParamSet::set(TrackedParam param, std::string_view value) {
  std::string& slot = values_[static_cast<std::size_t>(param)];
  if (slot == value) return;
  slot = value;
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < values_.size(); ++i)
    h = (h ^ std::hash<std::string>{}(values_[i])) * 0x100000001b3ull + i;
  fingerprint_ = h;
}

void ParamSet::set(std::string_view name, std::string_view value) {
  if (auto param = tracked_param(name)) set(*param, value);
}

std::vector<std::pair<TrackedParam, std::string>> settings_to_match(const ParamSet& client,
                                                                    const ParamSet& backend) {
  std::vector<std::pair<TrackedParam, std::string>> statements;
  for (std::size_t i = 0; i < kTrackedParamCount; ++i) {
    auto param = static_cast<TrackedParam>(i);
    const std::string& wanted = client.get(param);
    if (wanted == backend.get(param)) continue;
    if (param == TrackedParam::search_path) {
      // A validated list of names and literals (see search_path_list), so it can be sent as written.
      statements.emplace_back(param,
                              wanted.empty() ? "RESET search_path;" : "SET search_path TO " + wanted + ";");
      continue;
    }
    // A setting the client never heard of has no value of its own to restore (an empty TimeZone is invalid).
    if (wanted.empty() && param != TrackedParam::application_name) continue;
    std::string sql = "SET ";
    sql += kNames[i];
    sql += " = ";
    append_literal(sql, wanted);
    sql += ';';
    statements.emplace_back(param, std::move(sql));
  }
  return statements;
}

std::string statements_to_match(const ParamSet& client, const ParamSet& backend) {
  std::string sql;
  for (auto& [param, statement] : settings_to_match(client, backend)) sql += statement;
  return sql;
}

}  // namespace pgmux::protocol
