// Terminate sent right behind requests (a serverless client's last query and goodbye in one write): the
// replies still come, as they do from Postgres, and what ran inside an open transaction is rolled back.
#include <catch2/catch.hpp>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;
using namespace std::chrono_literals;

namespace {

const std::string kTerminate = "X" + be32(4);

// What the server sent until it closed: the values of the DataRows (first column), and the message types.
struct Reply {
  std::vector<std::string> values;
  std::string types;
  bool closed = false;
};

Reply send_and_read_to_close(RawSocket& raw, const std::string& bytes) {
  Reply reply;
  if (!raw.send_all(bytes)) return reply;
  char type;
  std::string body;
  while (raw.read_message(type, body, 10s)) {
    reply.types.push_back(type);
    // DataRow: int16 column count, int32 length, value
    if (type == 'D' && body.size() >= 6) reply.values.push_back(body.substr(6));
  }
  std::string rest;
  reply.closed = raw.read_until_closed(rest, 5s);
  return reply;
}

}  // namespace

TEST_CASE("a query and Terminate in one write: the rows come back before pgmux closes", "[relay]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  SECTION("right behind a pipelined login") {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    Reply reply = send_and_read_to_close(raw, startup_message("app", "app") + password_message("app-secret") +
                                                  query_message("SELECT 'last words'") + kTerminate);
    CHECK(reply.values == std::vector<std::string>{"last words"});
    CHECK(reply.types.ends_with("TDCZ"));
    CHECK(reply.closed);
  }
  SECTION("after a login, several queries, the last one slow") {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    std::string login;
    REQUIRE(raw.send_all(startup_message("app", "app") + password_message("app-secret")));
    REQUIRE(raw.read_until_ready(login, 1, 10s));
    Reply reply = send_and_read_to_close(
        raw, query_message("SELECT 1") + query_message("SELECT pg_sleep(0.2)::text || 'slept'") + kTerminate);
    CHECK(reply.values == std::vector<std::string>{"1", "slept"});
    CHECK(reply.closed);
  }
  // The pool's only backend went back in a clean state and serves the next client.
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT 'next'") == "next");
}

TEST_CASE("Terminate inside a transaction: its work is answered, then rolled back", "[relay]") {
  TestPostgres& postgres = TestPostgres::shared();
  Connection setup(postgres.conninfo("app", "app-secret"));
  REQUIRE(setup.ok());
  setup.value("DROP TABLE IF EXISTS terminate_rollback");
  setup.value("CREATE TABLE terminate_rollback (v text)");
  Pgmux mux(postgres, {.pool_size = 1});
  INFO(mux.log_tail());
  RawSocket raw(mux.port());
  REQUIRE(raw.connected());
  Reply reply = send_and_read_to_close(
      raw, startup_message("app", "app") + password_message("app-secret") +
               query_message("BEGIN; INSERT INTO terminate_rollback VALUES ('x') RETURNING v") + kTerminate);
  CHECK(reply.values == std::vector<std::string>{"x"});
  CHECK(reply.closed);
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT count(*) FROM terminate_rollback") == "0");
  CHECK(next.value("SELECT 'clean'") == "clean");
}
