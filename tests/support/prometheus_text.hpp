// A strict reader of the Prometheus text exposition format (0.0.4), for checking what /metrics serves.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pgmux::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromPage {
  std::map<std::string, std::string> types;  // family name -> counter | gauge | histogram | summary | untyped
  std::vector<PromSample> samples;
  std::string error;  // empty when the page is well-formed; else "line N: what is wrong"

  // The value of the one sample with this name and exactly these labels; -1 when there is none.
  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
};

// Checks the syntax (names, label escapes, values), that each family's TYPE comes before its samples and its
// samples are contiguous, that counters are not negative, and that each histogram's buckets are cumulative
// and end with le="+Inf" equal to its _count.
PromPage parse_prometheus_text(const std::string& text);

}  // namespace pgmux::test
