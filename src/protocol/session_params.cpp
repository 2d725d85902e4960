// The session settings pgmux carries for each client across backends in transaction mode.
#include "pgmux/protocol/session_params.hpp"

#include <strings.h>
#include <functional>
#include <mutex>
#include <unordered_map>

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

struct ParamSet::Values {
  std::array<std::string, kTrackedParamCount> values;
  std::size_t hash = 0;

  void rehash() {
    std::size_t h = 0;
    for (std::size_t i = 0; i < values.size(); ++i)
      h = (h ^ std::hash<std::string>{}(values[i])) * 0x100000001b3ull + i;
    hash = h;
  }
};

namespace {

using Values = ParamSet::Values;

// The interned sets by hash. An entry lives as long as some ParamSet holds it: the last holder's release
// removes it (the deleter), unless a new copy of the same values has already replaced it.
class InternTable {
 public:
  std::shared_ptr<const Values> intern(Values&& wanted) {
    std::lock_guard lock(mutex_);
    auto [first, last] = entries_.equal_range(wanted.hash);
    for (auto it = first; it != last; ++it) {
      if (it->second.raw->values != wanted.values) continue;
      if (auto shared = it->second.weak.lock()) return shared;
    }
    auto* raw = new Values(std::move(wanted));
    std::shared_ptr<const Values> shared(raw, [this](const Values* dead) { release(dead); });
    entries_.emplace(raw->hash, Entry{raw, shared});
    return shared;
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    const Values* raw;
    std::weak_ptr<const Values> weak;
  };

  void release(const Values* dead) {
    {
      std::lock_guard lock(mutex_);
      auto [first, last] = entries_.equal_range(dead->hash);
      for (auto it = first; it != last; ++it) {
        if (it->second.raw == dead) {
          entries_.erase(it);
          break;
        }
      }
    }
    delete dead;
  }

  std::mutex mutex_;
  std::unordered_multimap<std::size_t, Entry> entries_;
};

// Never destroyed: ParamSets held by static objects may be released after main returns.
InternTable& intern_table() {
  static auto* table = new InternTable;
  return *table;
}

const std::string& empty_value() {
  static const std::string empty;
  return empty;
}

}  // namespace

const std::string& ParamSet::get(TrackedParam param) const {
  return values_ ? values_->values[static_cast<std::size_t>(param)] : empty_value();
}

void ParamSet::set(TrackedParam param, std::string_view value) {
  if (get(param) == value) return;
  std::array<std::string_view, kTrackedParamCount> values;
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = get(static_cast<TrackedParam>(i));
  values[static_cast<std::size_t>(param)] = value;
  set_all(values);  // copies the values before it lets go of the set they point into
}

void ParamSet::set_all(const std::array<std::string_view, kTrackedParamCount>& values) {
  Values wanted;
  bool all_empty = true, same = true;
  for (std::size_t i = 0; i < values.size(); ++i) {
    wanted.values[i] = values[i];
    all_empty = all_empty && values[i].empty();
    same = same && get(static_cast<TrackedParam>(i)) == values[i];
  }
  if (same) return;
  if (all_empty) {
    values_.reset();
    return;
  }
  wanted.rehash();
  values_ = intern_table().intern(std::move(wanted));
}

std::size_t interned_param_sets() {
  return intern_table().size();
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
