// The Grafana dashboard in deploy/grafana asks only for series a running pgmux actually exposes.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "http_client.hpp"
#include "libpq.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// Every "expr" string anywhere in the dashboard (panels, rows, templating).
void collect_exprs(const boost::json::value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& [key, child] : v.as_object()) {
      if ((key == "expr" || key == "definition") && child.is_string())
        out.emplace_back(child.as_string());
      else
        collect_exprs(child, out);
    }
  } else if (v.is_array()) {
    for (const auto& child : v.as_array()) collect_exprs(child, out);
  }
}

}  // namespace

TEST_CASE("every metric the Grafana dashboard queries appears on a real /metrics page", "[metrics]") {
  std::ifstream file(PGMUX_DASHBOARD);
  REQUIRE(file);
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  boost::json::value dashboard = boost::json::parse(text.str(), ec);
  REQUIRE_FALSE(ec);
  std::vector<std::string> exprs;
  collect_exprs(dashboard, exprs);
  REQUIRE(exprs.size() >= 15);

  // A workload that gives every family a sample: a pool with traffic, a login, a POST /sql answer.
  Pgmux mux(TestPostgres::shared(), {.http = true});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  c.value("SELECT 1");
  REQUIRE(post(mux.http_port(), neon_call(query_body("SELECT 1"))).status == 200);
  HttpConnection http(mux.http_port());
  REQUIRE(http.connected());
  HttpReply page = http.send({.method = "GET", .target = "/metrics"});
  REQUIRE(page.status == 200);
  std::set<std::string> exposed;
  std::istringstream lines(page.body);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] != '#') exposed.insert(line.substr(0, line.find_first_of("{ ")));

  const std::regex metric_name(R"(pgmux_[a-zA-Z0-9_:]*)");
  int names = 0;
  for (const std::string& expr : exprs) {
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric_name), end; it != end; ++it) {
      INFO("in " << expr);
      CHECK(exposed.count(it->str()) == 1);
      ++names;
    }
  }
  CHECK(names >= 15);
}
