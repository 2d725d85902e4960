// Session settings carried across backends: which are tracked, when two sides differ, and the SET that fixes
// it.
#include <catch2/catch.hpp>

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

TEST_CASE("equal settings have equal fingerprints and need no statement", "[params]") {
  ParamSet a, b;
  for (ParamSet* p : {&a, &b}) {
    p->set("client_encoding", "UTF8");
    p->set("TimeZone", "UTC");
    p->set("server_version", "15.18");  // not tracked: ignored
  }
  CHECK(a.fingerprint() == b.fingerprint());
  CHECK(statements_to_match(a, b).empty());
  b.set(TrackedParam::TimeZone, "Asia/Tokyo");
  CHECK(a.fingerprint() != b.fingerprint());
  CHECK(statements_to_match(a, b) == "SET TimeZone = 'UTC';");
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
