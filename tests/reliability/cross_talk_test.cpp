// 1,000 concurrent clients of four kinds (simple queries, pipelined extended protocol, named prepared
// statements, POST /sql) on one pool of 10: nobody sees another's rows or results, and exactly the commits
// persist.
#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "bounded.hpp"
#include "load.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

using Row = std::tuple<int, int, int>;  // (client, tx, seq)

enum class Kind { simple, pipeline, prepared, http };

// Half the clients speak the simple protocol; the rest are split between pipelines, prepared statements
// and HTTP, so that every kind shares backends with every other.
Kind kind_of(int id) {
  switch (id % 10) {
    case 5:
    case 6:
      return Kind::pipeline;
    case 7:
    case 8:
      return Kind::prepared;
    case 9:
      return Kind::http;
    default:
      return Kind::simple;
  }
}

const char* kInsert =
    "INSERT INTO rel_rows SELECT $1::int, $2::int, s FROM generate_series(0, $3::int - 1) s "
    "RETURNING client, tx, seq";
const char* kSelect =
    "SELECT client, tx, seq, pg_backend_pid() FROM rel_rows WHERE client = $1::int ORDER BY tx, seq";

// One planned transaction: its rows, whether it commits, and what its read-back must return.
struct Plan {
  int tx;
  int rows;
  bool commit;
  std::set<Row> inserted;  // what its INSERT ... RETURNING must return
  std::set<Row> visible;   // the client's earlier commits plus this transaction's rows
};

// A client's transactions, decided up front from its seed so that a pipeline can send several at once.
std::vector<Plan> plan_for(int id, int transactions, unsigned seed) {
  std::mt19937 rng(seed + static_cast<unsigned>(id));
  std::vector<Plan> plans;
  std::set<Row> committed;
  for (int tx = 0; tx < transactions; ++tx) {
    Plan p{tx, 1 + static_cast<int>(rng() % 3), rng() % 3 != 0, {}, {}};
    for (int seq = 0; seq < p.rows; ++seq) p.inserted.emplace(id, tx, seq);
    p.visible = committed;
    p.visible.insert(p.inserted.begin(), p.inserted.end());
    if (p.commit) committed.insert(p.inserted.begin(), p.inserted.end());
    plans.push_back(std::move(p));
  }
  return plans;
}

std::string describe(const std::set<Row>& rows) {
  std::string s;
  for (auto& [c, t, q] : rows)
    s += "(" + std::to_string(c) + "," + std::to_string(t) + "," + std::to_string(q) + ")";
  return s.empty() ? "nothing" : s;
}

// "" when `seen` is exactly `expected` (no row missing, foreign, or repeated), else what differs.
std::string compare(const std::vector<Row>& seen, const std::set<Row>& expected) {
  std::set<Row> distinct(seen.begin(), seen.end());
  if (distinct == expected && seen.size() == expected.size()) return "";
  return "saw " + std::to_string(seen.size()) + " rows " + describe(distinct) + ", expected " +
         describe(expected);
}

std::vector<Row> rows_of(const PGresult* r) {
  std::vector<Row> rows;
  for (int i = 0; r && i < PQntuples(r); ++i)
    rows.emplace_back(std::stoi(PQgetvalue(r, i, 0)), std::stoi(PQgetvalue(r, i, 1)),
                      std::stoi(PQgetvalue(r, i, 2)));
  return rows;
}

std::vector<Row> rows_of(const json::value& rows) {
  std::vector<Row> out;
  for (const json::value& row : rows.as_array()) {
    auto field = [&](int i) { return std::stoi(std::string(row.at(i).as_string())); };
    out.emplace_back(field(0), field(1), field(2));
  }
  return out;
}

// What every client reports back: its failures go to `failures`; the backends it ran on to `pids`.
struct Shared {
  const Pgmux& mux;
  int transactions;
  unsigned seed;
  Failures failures;
  std::mutex mutex;
  std::set<std::string> pids;
  std::vector<std::vector<Plan>> plans;  // per client, filled before the threads start

  void saw_backends(const std::set<std::string>& mine) {
    std::lock_guard lock(mutex);
    pids.insert(mine.begin(), mine.end());
  }
};

std::string where(int id, int tx) {
  return "client " + std::to_string(id) + " tx " + std::to_string(tx) + ": ";
}

void simple_client(Shared& s, int id) {
  Connection c(s.mux.conninfo());
  if (!c.ok()) return s.failures.add(where(id, -1) + "connect: " + c.error());
  std::set<std::string> pids;
  const std::string me = std::to_string(id);
  for (const Plan& p : s.plans[id]) {
    Outcome o = exec_bounded(c.get(), "BEGIN");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    std::string insert = "INSERT INTO rel_rows VALUES ";
    for (int seq = 0; seq < p.rows; ++seq)
      insert += (seq ? ",(" : "(") + me + "," + std::to_string(p.tx) + "," + std::to_string(seq) + ")";
    o = exec_bounded(c.get(), insert + " RETURNING client, tx, seq");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    if (auto diff = compare(rows_of(o.result.get()), p.inserted); !diff.empty())
      return s.failures.add(where(id, p.tx) + "INSERT RETURNING " + diff);
    o = exec_bounded(c.get(), "SELECT client, tx, seq, pg_backend_pid() FROM rel_rows WHERE client = " + me +
                                  " ORDER BY tx, seq");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    if (auto diff = compare(rows_of(o.result.get()), p.visible); !diff.empty())
      return s.failures.add(where(id, p.tx) + "read-back " + diff);
    pids.insert(o.value(0, 3));
    o = exec_bounded(c.get(), p.commit ? "COMMIT" : "ROLLBACK");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
  }
  s.saw_backends(pids);
}

// Several transactions per libpq pipeline, each ended by a Sync: pgmux sees the next transaction arrive
// before the last one's ReadyForQuery went out.
void pipeline_client(Shared& s, int id) {
  constexpr std::size_t kPerPipeline = 2;
  Connection c(s.mux.conninfo());
  if (!c.ok()) return s.failures.add(where(id, -1) + "connect: " + c.error());
  if (PQenterPipelineMode(c.get()) != 1) return s.failures.add(where(id, -1) + "no pipeline mode");
  std::set<std::string> pids;
  const std::string me = std::to_string(id);
  const std::vector<Plan>& plans = s.plans[id];
  auto send = [&](const char* sql, std::vector<std::string> params) {
    std::vector<const char*> values;
    for (auto& v : params) values.push_back(v.c_str());
    return PQsendQueryParams(c.get(), sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                             nullptr, 0) == 1;
  };
  for (std::size_t first = 0; first < plans.size(); first += kPerPipeline) {
    std::size_t end = std::min(plans.size(), first + kPerPipeline);
    for (std::size_t i = first; i < end; ++i) {
      const Plan& p = plans[i];
      bool sent = send("BEGIN", {}) && send(kInsert, {me, std::to_string(p.tx), std::to_string(p.rows)}) &&
                  send(kSelect, {me}) && send(p.commit ? "COMMIT" : "ROLLBACK", {}) &&
                  PQpipelineSync(c.get()) == 1;
      if (!sent) return s.failures.add(where(id, p.tx) + "send: " + PQerrorMessage(c.get()));
    }
    auto deadline = Clock::now() + 60s;
    for (std::size_t i = first; i < end; ++i) {
      const Plan& p = plans[i];
      // Per transaction: four queries, each a result then a null, then the Sync's own result.
      for (int q = 0; q < 4; ++q) {
        bool timed_out = false;
        Result r = next_result(c.get(), deadline, timed_out);
        if (timed_out || !r)
          return s.failures.add(where(id, p.tx) + "query " + std::to_string(q) + " no result");
        auto status = PQresultStatus(r.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
          return s.failures.add(where(id, p.tx) + "query " + std::to_string(q) + ": " +
                                PQresultErrorMessage(r.get()));
        if (q == 1)
          if (auto diff = compare(rows_of(r.get()), p.inserted); !diff.empty())
            return s.failures.add(where(id, p.tx) + "pipelined INSERT RETURNING " + diff);
        if (q == 2) {
          if (auto diff = compare(rows_of(r.get()), p.visible); !diff.empty())
            return s.failures.add(where(id, p.tx) + "pipelined read-back " + diff);
          pids.insert(PQgetvalue(r.get(), 0, 3));
        }
        if (next_result(c.get(), deadline, timed_out) || timed_out)
          return s.failures.add(where(id, p.tx) + "query " + std::to_string(q) + " had more than one result");
      }
      bool timed_out = false;
      Result sync = next_result(c.get(), deadline, timed_out);
      if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC)
        return s.failures.add(where(id, p.tx) + "no pipeline sync result");
    }
  }
  s.saw_backends(pids);
}

// The same named statements on every such client: pgmux must keep them apart across shared backends.
void prepared_client(Shared& s, int id) {
  Connection c(s.mux.conninfo());
  if (!c.ok()) return s.failures.add(where(id, -1) + "connect: " + c.error());
  Outcome o = prepare_bounded(c.get(), "rel_insert", kInsert);
  if (o.ok()) o = prepare_bounded(c.get(), "rel_select", kSelect);
  if (!o.ok()) return s.failures.add(where(id, -1) + o.error);
  std::set<std::string> pids;
  const std::string me = std::to_string(id);
  for (const Plan& p : s.plans[id]) {
    o = exec_bounded(c.get(), "BEGIN");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    o = exec_prepared_bounded(c.get(), "rel_insert", {me, std::to_string(p.tx), std::to_string(p.rows)});
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    if (auto diff = compare(rows_of(o.result.get()), p.inserted); !diff.empty())
      return s.failures.add(where(id, p.tx) + "prepared INSERT RETURNING " + diff);
    o = exec_prepared_bounded(c.get(), "rel_select", {me});
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
    if (auto diff = compare(rows_of(o.result.get()), p.visible); !diff.empty())
      return s.failures.add(where(id, p.tx) + "prepared read-back " + diff);
    pids.insert(o.value(0, 3));
    o = exec_bounded(c.get(), p.commit ? "COMMIT" : "ROLLBACK");
    if (!o.ok()) return s.failures.add(where(id, p.tx) + o.error);
  }
  s.saw_backends(pids);
}

// A POST /sql batch is one transaction. To roll one back after reading, its last query divides by zero
// exactly when the read-back count is right: a 200 then means the client saw the wrong rows.
void http_client(Shared& s, int id) {
  HttpConnection http(s.mux.http_port(), 60s);
  if (!http.connected()) return s.failures.add(where(id, -1) + "HTTP connect failed");
  std::set<std::string> pids;
  const std::string me = std::to_string(id);
  for (const Plan& p : s.plans[id]) {
    json::array queries{
        json::object{{"query", kInsert},
                     {"params", json::array{me, std::to_string(p.tx), std::to_string(p.rows)}}},
        json::object{{"query", kSelect}, {"params", json::array{me}}}};
    if (!p.commit)
      queries.push_back(
          json::object{{"query", "SELECT 1 / (count(*) - $2::int) FROM rel_rows WHERE client = $1::int"},
                       {"params", json::array{me, std::to_string(p.visible.size())}}});
    HttpReply reply = http.send(neon_call(json::serialize(json::object{{"queries", queries}})));
    json::error_code ec;
    json::value answer = json::parse(reply.body, ec);
    if (ec || !answer.is_object())
      return s.failures.add(where(id, p.tx) + "HTTP " + std::to_string(reply.status) + " " + reply.error +
                            reply.body);
    if (!p.commit) {
      const json::value* code = answer.as_object().if_contains("code");
      if (reply.status != 400 || !code || *code != json::value("22012"))
        return s.failures.add(where(id, p.tx) + "the rollback probe did not fail as planned: HTTP " +
                              std::to_string(reply.status) + " " + reply.body);
      continue;
    }
    if (reply.status != 200)
      return s.failures.add(where(id, p.tx) + "HTTP " + std::to_string(reply.status) + " " + reply.body);
    const json::array& results = answer.at("results").as_array();
    if (auto diff = compare(rows_of(results.at(0).at("rows")), p.inserted); !diff.empty())
      return s.failures.add(where(id, p.tx) + "HTTP INSERT RETURNING " + diff);
    const json::value& read = results.at(1).at("rows");
    if (auto diff = compare(rows_of(read), p.visible); !diff.empty())
      return s.failures.add(where(id, p.tx) + "HTTP read-back " + diff);
    pids.insert(std::string(read.at(0).at(3).as_string()));
  }
  s.saw_backends(pids);
}

}  // namespace

TEST_CASE(
    "1,000 clients of every kind on a pool of 10 each see only their own rows, and exactly the commits "
    "persist",
    "[reliability][cross-talk]") {
  // A quarter under AddressSanitizer: pgmux is slower there, and a thousand logins at once exceed libpq's
  // connect_timeout on a busy machine.
  const int kClients = sanitized() ? 250 : 1000;
  constexpr int kPoolSize = 10;
  constexpr unsigned kSeed = 20261125;
  const int transactions = long_form() ? 30 : 3;
  // A libpq socket per client here and one per client in pgmux (which inherits the limit), plus spares.
  long fd_limit = raise_fd_limit(4 * kClients);
  INFO("open file limit " << fd_limit);
  REQUIRE(fd_limit >= kClients + 200);

  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS rel_rows");
  direct.value("CREATE TABLE rel_rows (client int NOT NULL, tx int NOT NULL, seq int NOT NULL)");
  direct.value("CREATE INDEX ON rel_rows (client)");

  Pgmux mux(TestPostgres::shared(), {.pool_size = kPoolSize,
                                     .max_client_conn = kClients + 100,
                                     .query_wait_timeout = "120s",
                                     .http = true});
  Shared s{mux, transactions, kSeed, {}, {}, {}, {}};
  for (int id = 0; id < kClients; ++id) s.plans.push_back(plan_for(id, transactions, kSeed));

  auto started = Clock::now();
  int not_started = run_on_threads(kClients, [&](int id) {
    try {
      switch (kind_of(id)) {
        case Kind::simple:
          return simple_client(s, id);
        case Kind::pipeline:
          return pipeline_client(s, id);
        case Kind::prepared:
          return prepared_client(s, id);
        case Kind::http:
          return http_client(s, id);
      }
    } catch (const std::exception& e) {
      s.failures.add(where(id, -1) + "exception: " + e.what());
    }
  });
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  INFO(s.failures.summary());
  INFO(mux.log_tail());
  INFO(mux.state());
  REQUIRE(not_started == 0);
  REQUIRE(s.failures.list().empty());

  // Postgres's own view: every committed row exactly once and nothing else.
  std::map<Row, int> expected;
  int commits = 0, rollbacks = 0;
  for (int id = 0; id < kClients; ++id)
    for (const Plan& p : s.plans[id]) {
      (p.commit ? commits : rollbacks)++;
      if (p.commit)
        for (const Row& row : p.inserted) expected[row] = 1;
    }
  Result counted = direct.exec("SELECT client, tx, seq, count(*) FROM rel_rows GROUP BY 1, 2, 3");
  REQUIRE(PQresultStatus(counted.get()) == PGRES_TUPLES_OK);
  std::map<Row, int> stored;
  for (int i = 0; i < PQntuples(counted.get()); ++i)
    stored[{std::stoi(PQgetvalue(counted.get(), i, 0)), std::stoi(PQgetvalue(counted.get(), i, 1)),
            std::stoi(PQgetvalue(counted.get(), i, 2))}] = std::stoi(PQgetvalue(counted.get(), i, 3));
  std::size_t missing = 0, unexpected = 0, repeated = 0;
  for (auto& [row, n] : expected)
    if (!stored.count(row)) ++missing;
  for (auto& [row, n] : stored) {
    if (!expected.count(row)) ++unexpected;
    if (n > 1) ++repeated;
  }
  std::cout << "cross-talk: " << kClients << " clients x " << transactions << " transactions (" << commits
            << " commits, " << rollbacks << " rollbacks, " << expected.size() << " committed rows) in "
            << elapsed.count() << " ms on " << s.pids.size() << " distinct backends\n";
  CHECK(missing == 0);
  CHECK(unexpected == 0);
  CHECK(repeated == 0);
  CHECK(stored.size() == expected.size());
  CHECK(s.pids.size() <= static_cast<std::size_t>(kPoolSize));
  direct.value("DROP TABLE rel_rows");
}
