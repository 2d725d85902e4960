// A strict reader of the Prometheus text exposition format (0.0.4), for checking what /metrics serves.
#include "prometheus_text.hpp"

#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

namespace pgmux::test {

namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

// Reads a metric (colons allowed) or label (`label`: no colons) name at `at`.
bool read_name(const std::string& line, std::size_t& at, std::string& name, bool label) {
  std::size_t start = at;
  if (at >= line.size() || !name_start(line[at]) || (label && line[at] == ':')) return false;
  while (at < line.size() && name_char(line[at]) && !(label && line[at] == ':')) ++at;
  name = line.substr(start, at - start);
  return true;
}

bool read_value(const std::string& text, double& value) {
  if (text == "+Inf") return value = INFINITY, true;
  if (text == "-Inf") return value = -INFINITY, true;
  if (text == "NaN") return value = NAN, true;
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// The family a sample belongs to: histograms expose name_bucket, name_sum and name_count.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      auto t = types.find(base);
      if (t != types.end() && (t->second == "histogram" || t->second == "summary")) return base;
    }
  }
  return name;
}

std::string parse_sample(const std::string& line, PromSample& sample) {
  std::size_t at = 0;
  if (!read_name(line, at, sample.name, false)) return "bad metric name";
  if (at < line.size() && line[at] == '{') {
    ++at;
    while (at < line.size() && line[at] != '}') {
      std::string label;
      if (!read_name(line, at, label, true)) return "bad label name";
      if (line.compare(at, 2, "=\"") != 0) return "expected =\" after label " + label;
      at += 2;
      std::string value;
      for (;; ++at) {
        if (at >= line.size()) return "unterminated label value";
        char c = line[at];
        if (c == '"') break;
        if (c == '\\') {
          if (++at >= line.size()) return "unterminated escape";
          char e = line[at];
          if (e == 'n')
            value += '\n';
          else if (e == '\\' || e == '"')
            value += e;
          else
            return std::string("bad escape \\") + e;
        } else {
          value += c;
        }
      }
      ++at;  // the closing quote
      if (!sample.labels.emplace(label, value).second) return "label " + label + " twice";
      if (at < line.size() && line[at] == ',') ++at;
    }
    if (at >= line.size()) return "unterminated label set";
    ++at;  // '}'
  }
  if (at >= line.size() || line[at] != ' ') return "expected a space before the value";
  std::istringstream rest(line.substr(at + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!read_value(value, sample.value)) return "bad value \"" + value + "\"";
  if (!extra.empty()) return "trailing text";
  return "";
}

// Histogram buckets of one series (labels without le) must rise to +Inf, which equals the series' _count.
std::string check_histograms(const PromPage& page) {
  std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
  std::map<std::map<std::string, std::string>, double> counts;
  for (const PromSample& s : page.samples) {
    std::string family = family_of(s.name, page.types);
    auto type = page.types.find(family);
    if (type == page.types.end() || type->second != "histogram") continue;
    auto key = s.labels;
    key["__name__"] = family;
    if (s.name == family + "_bucket") {
      auto le = key.find("le");
      if (le == key.end()) return family + "_bucket without le";
      double bound;
      if (!read_value(le->second, bound)) return family + "_bucket with le=\"" + le->second + "\"";
      key.erase(le);
      buckets[key].emplace_back(bound, s.value);
    } else if (s.name == family + "_count") {
      counts[key] = s.value;
    }
  }
  for (const auto& [key, list] : buckets) {
    const std::string& family = key.at("__name__");
    for (std::size_t i = 1; i < list.size(); ++i) {
      if (list[i].first <= list[i - 1].first) return family + ": buckets not in increasing le order";
      if (list[i].second < list[i - 1].second) return family + ": buckets not cumulative";
    }
    if (list.empty() || !std::isinf(list.back().first)) return family + ": no le=\"+Inf\" bucket";
    auto count = counts.find(key);
    if (count == counts.end()) return family + ": no _count";
    if (count->second != list.back().second) return family + ": +Inf bucket differs from _count";
  }
  return "";
}

}  // namespace

double PromPage::value(const std::string& name, const std::map<std::string, std::string>& labels) const {
  for (const PromSample& s : samples)
    if (s.name == name && s.labels == labels) return s.value;
  return -1;
}

PromPage parse_prometheus_text(const std::string& text) {
  PromPage page;
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
  std::set<std::string> finished;  // families whose samples have ended: they may not come back
  std::string current;             // the family of the samples being read
  std::istringstream lines(text);
  int number = 0;
  auto fail = [&](const std::string& what) {
    page.error = "line " + std::to_string(number) + ": " + what;
    return page;
  };
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name, type;
      words >> hash >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // any other comment
      std::size_t at = 0;
      std::string checked;
      if (!read_name(name, at, checked, false) || at != name.size()) return fail("bad name in " + keyword);
      if (keyword == "TYPE") {
        words >> type;
        if (!kTypes.count(type)) return fail("unknown type \"" + type + "\"");
        if (!page.types.emplace(name, type).second) return fail("second TYPE for " + name);
        if (finished.count(name) || current == name) return fail("TYPE of " + name + " after its samples");
      }
      continue;
    }
    PromSample sample;
    if (std::string error = parse_sample(line, sample); !error.empty()) return fail(error);
    std::string family = family_of(sample.name, page.types);
    if (family != current) {
      if (finished.count(family)) return fail("samples of " + family + " are not together");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    auto type = page.types.find(family);
    if (type != page.types.end() && type->second == "counter" && !(sample.value >= 0))
      return fail("counter " + sample.name + " is negative");
    page.samples.push_back(std::move(sample));
  }
  if (std::string error = check_histograms(page); !error.empty()) {
    page.error = error;
  }
  return page;
}

}  // namespace pgmux::test
