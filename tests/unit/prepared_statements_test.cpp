// The statement bookkeeping behind named prepared statements in transaction mode.
#include <catch2/catch.hpp>

#include "pool/prepared_statements.hpp"

using namespace pgmux::pool;

namespace {
std::string definition(const std::string& sql) {
  std::string d = sql;
  d += '\0';
  d.append(2, '\0');
  return d;
}
}  // namespace

TEST_CASE("a statement's server name follows from its text and parameter types only") {
  auto a = make_statement(definition("SELECT $1"));
  auto b = make_statement(definition("SELECT $1"));
  std::string typed = "SELECT $1";
  typed += '\0';
  typed += std::string("\0\1\0\0\0\x17", 6);  // one parameter, int4
  auto c = make_statement(typed);
  CHECK(a->server_name == b->server_name);
  CHECK(a->server_name != c->server_name);
  CHECK(a->server_name.starts_with("pgmux_"));
  CHECK(a->server_name.size() == 6 + 32);
  CHECK(make_statement(definition("DEALLOCATE ALL"))->drops_statements);
  CHECK_FALSE(a->drops_statements);
}

TEST_CASE("a backend holds a statement within the batch that prepares it, and after it only once confirmed") {
  BackendStatements held;
  StatementId x{1, 1}, evicted;
  CHECK_FALSE(held.touch(x));
  CHECK_FALSE(held.add(x, 10, evicted));
  CHECK(held.touch(x));  // same batch: an error would skip its users too
  held.tick();
  CHECK_FALSE(held.touch(x));  // next batch, ParseComplete not seen yet
  held.confirm(x);
  CHECK(held.touch(x));
  held.remove(x);
  CHECK_FALSE(held.touch(x));
}

TEST_CASE("over capacity the least recently used statement goes, never one used in the current batch") {
  BackendStatements held;
  StatementId evicted;
  std::vector<StatementId> ids;
  for (std::uint64_t i = 0; i < 4; ++i) ids.push_back({i, i});
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(held.add(ids[i], 3, evicted));
    held.confirm(ids[i]);
    held.tick();
  }
  CHECK(held.touch(ids[0]));  // 1 is now the least recently used
  held.tick();
  REQUIRE(held.add(ids[3], 3, evicted));
  CHECK(evicted == ids[1]);
  CHECK(held.size() == 3);
  // Everything used in this batch: nothing can go, the limit is exceeded until the next batch.
  BackendStatements busy;
  for (int i = 0; i < 4; ++i) CHECK_FALSE(busy.add(ids[i], 3, evicted));
  CHECK(busy.size() == 4);
}

TEST_CASE("a client's name is taken only once its Parse is confirmed") {
  ClientStatements mine;
  auto s = make_statement(definition("SELECT 1"));
  mine.add("q", s);
  REQUIRE(mine.find("q"));
  CHECK_FALSE(mine.find("q")->confirmed);
  mine.confirm("q", make_statement(definition("SELECT 2"))->id);  // another text under that name: not it
  CHECK_FALSE(mine.find("q")->confirmed);
  mine.confirm("q", s->id);
  CHECK(mine.find("q")->confirmed);
  mine.remove("q");
  CHECK_FALSE(mine.find("q"));
}
