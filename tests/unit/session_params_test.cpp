// Session settings carried across backends: which are tracked, when two sides differ, and the SET that fixes
// it.
#include <catch2/catch.hpp>

#include <vector>

#include "pgmux/protocol/session_params.hpp"

using namespace pgmux::protocol;

TEST_CASE("tracked settings are recognised whatever their case, others are not", "[params]") {
  CHECK(tracked_param("TimeZone") == TrackedParam::TimeZone);
  CHECK(tracked_param("timezone") == TrackedParam::TimeZone);
  CHECK(tracked_param("DATESTYLE") == TrackedParam::DateStyle);
  CHECK(tracked_param("application_name") == TrackedParam::application_name);
  CHECK_FALSE(tracked_param("server_version"));
  CHECK_FALSE(tracked_param("TimeZon"));
  CHECK(param_name(TrackedParam::IntervalStyle) == "IntervalStyle");
}

TEST_CASE("equal settings compare equal and need no statement", "[params]") {
  ParamSet a, b;
  for (ParamSet* p : {&a, &b}) {
    p->set("client_encoding", "UTF8");
    p->set("TimeZone", "UTC");
    p->set("server_version", "15.18");  // not tracked: ignored
  }
  CHECK(a == b);
  CHECK(statements_to_match(a, b).empty());
  b.set(TrackedParam::TimeZone, "Asia/Tokyo");
  CHECK_FALSE(a == b);
  CHECK(statements_to_match(a, b) == "SET TimeZone = 'UTC';");
}

TEST_CASE("clients with the same settings share one interned copy, freed with its last holder", "[params]") {
  std::size_t before = interned_param_sets();
  {
    std::vector<ParamSet> clients(1000);
    for (ParamSet& p : clients) {
      p.set(TrackedParam::application_name, "lambda-intern-test");
      p.set(TrackedParam::TimeZone, "UTC");
    }
    CHECK(interned_param_sets() == before + 1);
    CHECK(clients.front() == clients.back());
    CHECK(clients.back().get(TrackedParam::TimeZone) == "UTC");

    // A copy that changes leaves the others as they were.
    ParamSet changed = clients.back();
    changed.set(TrackedParam::TimeZone, "Asia/Tokyo");
    CHECK(interned_param_sets() == before + 2);
    CHECK(clients.back().get(TrackedParam::TimeZone) == "UTC");
    CHECK_FALSE(changed == clients.back());
    changed.set(TrackedParam::TimeZone, "UTC");
    CHECK(changed == clients.back());
    CHECK(interned_param_sets() == before + 1);
  }
  CHECK(interned_param_sets() == before);

  // Back to all defaults: no shared copy at all.
  ParamSet p;
  p.set(TrackedParam::TimeZone, "UTC");
  p.set(TrackedParam::TimeZone, "");
  CHECK(p == ParamSet{});
  CHECK(interned_param_sets() == before);
}

TEST_CASE("values are sent as quoted literals, never as SQL", "[params]") {
  ParamSet client, backend;
  client.set(TrackedParam::application_name, "it's'; DROP TABLE x; --");
  CHECK(statements_to_match(client, backend) == "SET application_name = 'it''s''; DROP TABLE x; --';");
  client.set(TrackedParam::application_name, "back\\slash");
  CHECK(statements_to_match(client, backend) == "SET application_name = E'back\\\\slash';");
}

TEST_CASE("a setting the client never received is left alone, except application_name", "[params]") {
  ParamSet client, backend;
  backend.set(TrackedParam::TimeZone, "UTC");
  backend.set(TrackedParam::application_name, "previous");
  CHECK(statements_to_match(client, backend) == "SET application_name = '';");
}

TEST_CASE("setting every value at once gives the set that one value at a time gives", "[params]") {
  ParamSet one_by_one, at_once, empty;
  one_by_one.set(TrackedParam::client_encoding, "UTF8");
  one_by_one.set(TrackedParam::TimeZone, "UTC");
  one_by_one.set(TrackedParam::application_name, "pgbench");
  std::array<std::string_view, kTrackedParamCount> values;
  values[static_cast<std::size_t>(TrackedParam::client_encoding)] = "UTF8";
  values[static_cast<std::size_t>(TrackedParam::TimeZone)] = "UTC";
  values[static_cast<std::size_t>(TrackedParam::application_name)] = "pgbench";
  const std::size_t interned = interned_param_sets();
  at_once.set_all(values);
  CHECK(at_once == one_by_one);  // the same interned copy: no new one
  CHECK(interned_param_sets() == interned);
  CHECK(at_once.get(TrackedParam::application_name) == "pgbench");
  CHECK(at_once.get(TrackedParam::DateStyle).empty());
  at_once.set_all({});
  CHECK(at_once == empty);
}
