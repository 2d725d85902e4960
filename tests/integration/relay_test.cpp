// Relaying through pgmux: many clients sharing few backends, pipelines, COPY, large messages, cancels,
// session and transaction pooling, and pgbench as a real-world client.
#include <poll.h>
#include <sys/wait.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

// A connection straight to Postgres as app, bypassing pgmux: the observer's view.
std::string direct_conninfo() {
  return TestPostgres::shared().conninfo("app", "app-secret");
}

// Postgres backends of user app that exist right now, as a SQL array literal: to tell later ones apart.
std::string current_app_backends(Connection& direct) {
  return direct.value(
      "SELECT '{' || coalesce(string_agg(pid::text, ','), '') || '}' FROM pg_stat_activity "
      "WHERE usename = 'app'");
}

// Samples, on its own direct connection, how many Postgres backends of user app exist that are not in
// `before`, and keeps the largest count seen, until stopped.
class BackendSampler {
 public:
  explicit BackendSampler(std::string before) : before_(std::move(before)) {
    thread_ = std::thread([this] { run(); });
  }
  ~BackendSampler() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int max_seen() const { return max_seen_.load(); }
  int samples() const { return samples_.load(); }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  void run() {
    Connection direct(direct_conninfo());
    if (!direct.ok()) {
      std::lock_guard lock(mutex_);
      error_ = direct.error();
      return;
    }
    std::string sql =
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND pid <> ALL('" +
        before_ + "'::int[])";
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      Outcome o = exec_bounded(direct.get(), sql, 10s);
      lock.lock();
      if (!o.ok()) {
        error_ = o.error;
        return;
      }
      max_seen_ = std::max(max_seen_.load(), std::stoi(o.value()));
      ++samples_;
      wake_.wait_for(lock, 20ms, [&] { return stopping_; });  // sampling interval, ends early on stop
    }
  }

  std::string before_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string error_;
  std::atomic<int> max_seen_{0}, samples_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("200 clients on a pool of 5 each see exactly their own transactions, and only commits persist",
          "[relay]") {
  constexpr int kClients = 200, kTransactions = 20, kPoolSize = 5;
  constexpr unsigned kSeed = 20240611;
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS relay_rows");
  direct.value("CREATE TABLE relay_rows (client int NOT NULL, tx int NOT NULL, seq int NOT NULL)");
  std::string before = current_app_backends(direct);

  Pgmux mux(TestPostgres::shared(), {.pool_size = kPoolSize});
  BackendSampler sampler(before);

  // What each client committed: (client, tx, seq) rows.
  std::vector<std::set<std::tuple<int, int, int>>> committed(kClients);
  std::vector<int> rollbacks(kClients, 0);
  std::mutex pids_mutex;
  std::set<std::string> backend_pids;  // every pg_backend_pid() a client saw through pgmux
  Failures failures;

  auto client = [&](int id) {
    std::mt19937 rng(kSeed + id);
    Connection c(mux.conninfo());
    if (!c.ok()) return failures.add("client " + std::to_string(id) + " could not connect: " + c.error());
    std::set<std::tuple<int, int, int>>& mine = committed[id];
    std::set<std::string> pids;
    for (int tx = 0; tx < kTransactions; ++tx) {
      std::string where = "client " + std::to_string(id) + " tx " + std::to_string(tx) + ": ";
      Outcome o = exec_bounded(c.get(), "BEGIN");
      if (!o.ok()) return failures.add(where + o.error);
      int rows = 1 + static_cast<int>(rng() % 3);
      std::string insert = "INSERT INTO relay_rows VALUES ";
      for (int seq = 0; seq < rows; ++seq)
        insert += (seq ? ",(" : "(") + std::to_string(id) + "," + std::to_string(tx) + "," +
                  std::to_string(seq) + ")";
      o = exec_bounded(c.get(), insert + " RETURNING pg_backend_pid()");
      if (!o.ok()) return failures.add(where + o.error);
      std::string insert_pid = o.value();
      o = exec_bounded(c.get(), "SELECT client, tx, seq, pg_backend_pid() FROM relay_rows WHERE client = " +
                                    std::to_string(id) + " ORDER BY tx, seq");
      if (!o.ok()) return failures.add(where + o.error);
      // Exactly what this client committed so far plus this transaction's rows: no one else's, no rollbacks.
      std::set<std::tuple<int, int, int>> expected = mine, seen;
      for (int seq = 0; seq < rows; ++seq) expected.emplace(id, tx, seq);
      int n = PQntuples(o.result.get());
      for (int r = 0; r < n; ++r) {
        seen.emplace(std::stoi(o.value(r, 0)), std::stoi(o.value(r, 1)), std::stoi(o.value(r, 2)));
        if (o.value(r, 3) != insert_pid)
          return failures.add(where + "the SELECT ran on backend " + o.value(r, 3) + " but the INSERT on " +
                              insert_pid + " inside one transaction");
      }
      if (n != static_cast<int>(expected.size()) || seen != expected)
        return failures.add(where + "saw " + std::to_string(n) + " rows (" + std::to_string(seen.size()) +
                            " distinct), expected " + std::to_string(expected.size()));
      pids.insert(insert_pid);
      bool commit = rng() % 3 != 0;
      o = exec_bounded(c.get(), commit ? "COMMIT" : "ROLLBACK");
      if (!o.ok()) return failures.add(where + o.error);
      if (commit)
        for (int seq = 0; seq < rows; ++seq) mine.emplace(id, tx, seq);
      else
        ++rollbacks[id];
    }
    std::lock_guard lock(pids_mutex);
    backend_pids.insert(pids.begin(), pids.end());
  };

  auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int id = 0; id < kClients; ++id) threads.emplace_back(client, id);
  for (auto& t : threads) t.join();
  sampler.stop();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  INFO(failures.summary());
  INFO(mux.log_tail());
  INFO(mux.state());
  REQUIRE(failures.list().empty());

  // Every committed row exactly once, no rolled-back row, exact totals, as Postgres itself sees them.
  Result rows = direct.exec("SELECT client, tx, seq, count(*) FROM relay_rows GROUP BY 1, 2, 3");
  REQUIRE(PQresultStatus(rows.get()) == PGRES_TUPLES_OK);
  std::set<std::tuple<int, int, int>> expected, stored;
  std::size_t expected_total = 0;
  for (const auto& m : committed) {
    expected.insert(m.begin(), m.end());
    expected_total += m.size();
  }
  int duplicated = 0;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    stored.emplace(std::stoi(PQgetvalue(rows.get(), r, 0)), std::stoi(PQgetvalue(rows.get(), r, 1)),
                   std::stoi(PQgetvalue(rows.get(), r, 2)));
    if (std::string(PQgetvalue(rows.get(), r, 3)) != "1") ++duplicated;
  }
  int total_rollbacks = 0;
  for (int n : rollbacks) total_rollbacks += n;
  INFO("committed rows " << expected_total << ", rolled-back transactions " << total_rollbacks << ", took "
                         << elapsed.count() << " ms");
  CHECK(total_rollbacks > 0);
  CHECK(duplicated == 0);
  CHECK(stored == expected);
  CHECK(direct.value("SELECT count(*) FROM relay_rows") == std::to_string(expected_total));

  // Never more than the pool's 5 backends: neither seen by the clients nor by Postgres.
  INFO("backend pids seen by clients: " << backend_pids.size() << "; pg_stat_activity samples "
                                        << sampler.samples() << ", max " << sampler.max_seen());
  CHECK(sampler.error().empty());
  CHECK(sampler.samples() > 0);
  CHECK(backend_pids.size() >= 1);
  CHECK(backend_pids.size() <= static_cast<std::size_t>(kPoolSize));
  CHECK(sampler.max_seen() >= 1);
  CHECK(sampler.max_seen() <= kPoolSize);
  // The sampler's own connection may still be exiting on the server side: its backend leaves
  // pg_stat_activity a moment after the socket closes.
  std::string after;
  CHECK(wait_until(
      [&] {
        after = direct.value(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND pid <> pg_backend_pid() AND "
            "pid <> ALL('" +
            before + "'::int[])");
        return std::stoi(after) <= kPoolSize;
      },
      10s));
  INFO("app backends after: " << after);
}

namespace {

// Sends `queries` parameterised queries in libpq pipeline mode with a Sync after every `per_sync` of them,
// all before reading anything, then reads every result in order. Query i echoes base + i and a per-client
// tag. If `fail_at` >= 0, that query divides by zero: the rest of its Sync segment is aborted, the next
// segments run normally. Returns what went wrong, or "".
std::string run_pipeline(PGconn* conn, int base, int queries, int per_sync, int fail_at = -1) {
  if (!PQenterPipelineMode(conn)) return std::string("PQenterPipelineMode: ") + PQerrorMessage(conn);
  std::vector<std::string> values(queries), tags(queries);
  for (int i = 0; i < queries; ++i) {
    values[i] = std::to_string(base + i);
    tags[i] = "tag-" + std::to_string(base) + "-" + std::to_string(i);
    const char* params[2] = {values[i].c_str(), tags[i].c_str()};
    const char* sql = i == fail_at ? "SELECT $1::int / 0, $2::text" : "SELECT $1::int, $2::text";
    if (!PQsendQueryParams(conn, sql, 2, nullptr, params, nullptr, nullptr, 0))
      return std::string("PQsendQueryParams: ") + PQerrorMessage(conn);
    if ((i + 1) % per_sync == 0 || i + 1 == queries) {
      if (!PQpipelineSync(conn)) return std::string("PQpipelineSync: ") + PQerrorMessage(conn);
    }
  }
  auto deadline = Clock::now() + 30s;
  bool timed_out = false;
  bool aborted = false;  // an earlier query of this Sync segment failed
  for (int i = 0; i < queries; ++i) {
    std::string where = "query " + std::to_string(i) + " of base " + std::to_string(base) + ": ";
    Result r = next_result(conn, deadline, timed_out);
    if (timed_out) return where + "timed out";
    if (!r) return where + "no result";
    auto status = PQresultStatus(r.get());
    if (i == fail_at) {
      if (status != PGRES_FATAL_ERROR || sqlstate_of(r.get()) != "22012")
        return where + "expected division_by_zero, got " + PQresStatus(status);
      aborted = true;
    } else if (aborted) {
      if (status != PGRES_PIPELINE_ABORTED)
        return where + "expected PIPELINE_ABORTED, got " + PQresStatus(status);
    } else {
      if (status != PGRES_TUPLES_OK) return where + PQresStatus(status) + " " + PQresultErrorMessage(r.get());
      if (PQntuples(r.get()) != 1 || PQgetvalue(r.get(), 0, 0) != values[i] ||
          PQgetvalue(r.get(), 0, 1) != tags[i])
        return where + "got " + PQgetvalue(r.get(), 0, 0) + "/" + PQgetvalue(r.get(), 0, 1) + ", expected " +
               values[i] + "/" + tags[i];
    }
    // Each query's results end with a null result.
    Result end = next_result(conn, deadline, timed_out);
    if (timed_out || end) return where + "no end-of-query marker";
    if ((i + 1) % per_sync == 0 || i + 1 == queries) {
      Result sync = next_result(conn, deadline, timed_out);
      if (timed_out || !sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC)
        return where + "expected the Sync's result";
      aborted = false;
    }
  }
  if (!PQexitPipelineMode(conn)) return std::string("PQexitPipelineMode: ") + PQerrorMessage(conn);
  return "";
}

}  // namespace

TEST_CASE("pipelined extended-protocol queries with several Syncs in flight come back complete and in order",
          "[relay]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 3});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  CHECK(run_pipeline(c.get(), 1000, 60, 10) == "");
  // An error aborts the rest of its Sync segment only; the backend goes back and later segments run.
  CHECK(run_pipeline(c.get(), 5000, 30, 10, 13) == "");
  CHECK(c.value("SELECT 'still here'") == "still here");

  // 20 pipelining clients on 3 backends: each gets its own values back, never another client's.
  constexpr int kClients = 20, kRounds = 15;
  Failures failures;
  std::vector<std::thread> threads;
  for (int id = 0; id < kClients; ++id) {
    threads.emplace_back([&, id] {
      Connection conn(mux.conninfo());
      if (!conn.ok()) return failures.add("client " + std::to_string(id) + ": " + conn.error());
      for (int round = 0; round < kRounds; ++round) {
        std::string error = run_pipeline(conn.get(), id * 1'000'000 + round * 1000, 40, 8);
        if (!error.empty()) return failures.add("client " + std::to_string(id) + ": " + error);
      }
    });
  }
  for (auto& t : threads) t.join();
  INFO(failures.summary());
  INFO(mux.log_tail());
  INFO(mux.state());
  CHECK(failures.list().empty());
}

TEST_CASE("COPY streams through both ways, including a 1 MB field far larger than pgmux's 16 KiB buffers",
          "[relay]") {
  Pgmux mux(TestPostgres::shared());
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  c.value("DROP TABLE IF EXISTS relay_copy");
  c.value("CREATE TABLE relay_copy (id int PRIMARY KEY, payload text NOT NULL)");

  auto copy_in = [&](const std::vector<std::string>& lines) {
    Result start = c.exec("COPY relay_copy FROM STDIN");
    REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_IN);
    for (const auto& line : lines)
      REQUIRE(PQputCopyData(c.get(), line.data(), static_cast<int>(line.size())) == 1);
    REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
    bool timed_out;
    Result done = next_result(c.get(), Clock::now() + 30s, timed_out);
    REQUIRE_FALSE(timed_out);
    REQUIRE(done);
    INFO(PQresultErrorMessage(done.get()));
    REQUIRE(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
    CHECK(std::string(PQcmdTuples(done.get())) == std::to_string(lines.size()));
    REQUIRE_FALSE(next_result(c.get(), Clock::now() + 10s, timed_out));
  };
  auto copy_out = [&](const std::string& query) {
    std::vector<std::string> lines;
    Result start = c.exec("COPY (" + query + ") TO STDOUT");
    REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_OUT);
    for (;;) {
      char* buffer = nullptr;
      int n = PQgetCopyData(c.get(), &buffer, 0);
      if (n == -1) break;
      REQUIRE(n >= 0);
      lines.emplace_back(buffer, n);
      PQfreemem(buffer);
    }
    Result done(PQgetResult(c.get()));
    REQUIRE(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
    REQUIRE_FALSE(Result(PQgetResult(c.get())));
    return lines;
  };

  std::vector<std::string> rows;
  for (int i = 1; i <= 5000; ++i) rows.push_back(std::to_string(i) + "\trow " + std::to_string(i * 7) + "\n");
  copy_in(rows);
  CHECK(c.value("SELECT count(*) FROM relay_copy") == "5000");
  CHECK(copy_out("SELECT id, payload FROM relay_copy ORDER BY id") == rows);

  // One 1,000,000-byte field: a single CopyData message each way.
  std::string big(1'000'000, ' ');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  std::string big_line = "0\t" + big + "\n";
  copy_in({big_line});
  // Postgres got every byte: it rebuilds the same text itself and compares.
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  CHECK(direct.value("SELECT payload = (SELECT string_agg(chr(97 + (i * 7) % 26), '' ORDER BY i) FROM "
                     "generate_series(0, 999999) i) FROM relay_copy WHERE id = 0") == "t");
  auto out = copy_out("SELECT id, payload FROM relay_copy WHERE id = 0");
  REQUIRE(out.size() == 1);
  CHECK(out[0].size() == big_line.size());
  CHECK(out[0] == big_line);
  CHECK(c.value("SELECT count(*) FROM relay_copy") == "5001");
}

TEST_CASE("large results stream through whole: a 5 MB value and 200000 rows", "[relay]") {
  Pgmux mux(TestPostgres::shared());
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  Outcome big = exec_bounded(c.get(), "SELECT repeat('x', 5000000)", 60s);
  REQUIRE(big.ok());
  REQUIRE(PQntuples(big.result.get()) == 1);
  REQUIRE(PQgetlength(big.result.get(), 0, 0) == 5'000'000);
  std::string_view value(PQgetvalue(big.result.get(), 0, 0), 5'000'000);
  CHECK(value.find_first_not_of('x') == std::string_view::npos);

  Outcome series = exec_bounded(c.get(), "SELECT generate_series(1, 200000)", 60s);
  REQUIRE(series.ok());
  REQUIRE(PQntuples(series.result.get()) == 200000);
  int wrong = 0;
  for (int r = 0; r < 200000; ++r)
    if (std::string(PQgetvalue(series.result.get(), r, 0)) != std::to_string(r + 1)) ++wrong;
  CHECK(wrong == 0);
  CHECK(c.value("SELECT 'after'") == "after");
}

TEST_CASE("a cancel request through pgmux stops a running query with 57014 and the connection goes on",
          "[relay]") {
  Pgmux mux(TestPostgres::shared());
  Connection c(mux.conninfo() + " application_name=cancel-me");
  REQUIRE(c.ok());
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  const std::string marker = "SELECT pg_sleep(60) /* relay-cancel */";
  REQUIRE(PQsendQuery(c.get(), marker.c_str()) == 1);
  // Cancel only once Postgres is running it.
  REQUIRE(wait_until(
      [&] {
        return direct.value("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '" +
                            marker + "'") == "1";
      },
      10s));
  auto started = Clock::now();
  PGcancel* cancel = PQgetCancel(c.get());
  REQUIRE(cancel);
  char errbuf[256] = {};
  int sent = PQcancel(cancel, errbuf, sizeof errbuf);
  PQfreeCancel(cancel);
  INFO(errbuf);
  REQUIRE(sent == 1);

  bool timed_out;
  Result r = next_result(c.get(), Clock::now() + 15s, timed_out);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate_of(r.get()) == "57014");
  CHECK(elapsed < 10s);
  CHECK_FALSE(next_result(c.get(), Clock::now() + 10s, timed_out));
  CHECK(c.value("SELECT 1") == "1");
}

TEST_CASE("session mode keeps SET across transactions and DISCARD ALL clears it for the next client",
          "[relay]") {
  Pgmux mux(TestPostgres::shared(), {.pool_mode = "session", .pool_size = 1});
  std::string first_pid;
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    a.value("SET pgmux.test = 'a'");
    a.value("SET application_name = 'session-a'");
    first_pid = a.value("SELECT pg_backend_pid()");
    for (int i = 0; i < 3; ++i) {
      a.value("BEGIN");
      CHECK(a.value("SELECT current_setting('pgmux.test', true)") == "a");
      a.value("COMMIT");
      CHECK(a.value("SELECT current_setting('application_name')") == "session-a");
      CHECK(a.value("SELECT pg_backend_pid()") == first_pid);
    }
    a.value("PREPARE session_stmt AS SELECT 7");
    CHECK(a.value("EXECUTE session_stmt") == "7");
  }
  // The next client gets the same single backend, reset.
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  CHECK(b.value("SELECT pg_backend_pid()") == first_pid);
  CHECK(b.value("SELECT coalesce(current_setting('pgmux.test', true), '')") == "");
  CHECK(b.value("SELECT current_setting('application_name')") != "session-a");
  CHECK(b.value("SELECT count(*) FROM pg_prepared_statements") == "0");
}

TEST_CASE("transaction mode: two clients interleaving transactions on a pool of 1 both succeed, one waiting",
          "[relay]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection setup(mux.conninfo());
  REQUIRE(setup.ok());
  setup.value("DROP TABLE IF EXISTS relay_interleave");
  setup.value("CREATE TABLE relay_interleave (who text, n int)");

  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a.value("BEGIN");
  a.value("INSERT INTO relay_interleave VALUES ('a', 0)");
  std::string a_pid = a.value("SELECT pg_backend_pid()");
  // B's statement needs the only backend, which A holds: it waits instead of failing.
  REQUIRE(PQsendQuery(b.get(), "INSERT INTO relay_interleave VALUES ('b', 0) RETURNING pg_backend_pid()") ==
          1);
  bool b_finished = wait_until(
      [&] {
        PQconsumeInput(b.get());
        return !PQisBusy(b.get());
      },
      300ms);
  CHECK_FALSE(b_finished);
  // A sees only its own row; B's has not run.
  CHECK(a.value("SELECT string_agg(who, ',') FROM relay_interleave") == "a");
  a.value("COMMIT");
  bool timed_out;
  Result r = next_result(b.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == a_pid);
  CHECK_FALSE(next_result(b.get(), Clock::now() + 10s, timed_out));

  // Then both hammer the single backend with transactions at once.
  Failures failures;
  auto worker = [&](Connection& c, const std::string& who) {
    for (int n = 1; n <= 50; ++n) {
      for (std::string sql :
           {std::string("BEGIN"),
            "INSERT INTO relay_interleave VALUES ('" + who + "', " + std::to_string(n) + ")",
            "SELECT count(*) FROM relay_interleave WHERE who = '" + who + "'", std::string("COMMIT")}) {
        Outcome o = exec_bounded(c.get(), sql);
        if (!o.ok()) return failures.add(who + ": " + o.error);
      }
    }
  };
  std::thread ta(worker, std::ref(a), "a"), tb(worker, std::ref(b), "b");
  ta.join();
  tb.join();
  INFO(failures.summary());
  INFO(mux.log_tail());
  INFO(mux.state());
  CHECK(failures.list().empty());
  CHECK(setup.value("SELECT count(*) FROM relay_interleave WHERE who = 'a'") == "51");
  CHECK(setup.value("SELECT count(*) FROM relay_interleave WHERE who = 'b'") == "51");
}

namespace {

struct PgbenchRun {
  int status = -1;
  std::string output;
  std::string failed;  // "number of failed transactions: N"
  double tps = 0;
};

PgbenchRun pgbench(const std::string& args) {
  PgbenchRun run;
  run.status = run_shell("PGPASSWORD=app-secret timeout 120 pgbench " + args, &run.output);
  std::smatch m;
  if (std::regex_search(run.output, m, std::regex(R"(number of failed transactions: (\d+))")))
    run.failed = m[1];
  if (std::regex_search(run.output, m, std::regex(R"(tps = ([0-9.]+) \(without initial connection time\))")))
    run.tps = std::stod(m[1]);
  return run;
}

}  // namespace

TEST_CASE("pgbench runs through pgmux with no failed transactions, select-only and TPC-B extended",
          "[relay]") {
  TestPostgres& postgres = TestPostgres::shared();
  std::string init_out;
  REQUIRE(run_shell("PGPASSWORD=app-secret timeout 120 pgbench -i -s 2 -h 127.0.0.1 -p " +
                        std::to_string(postgres.port()) + " -U app app",
                    &init_out) == 0);
  Pgmux mux(postgres, {.pool_size = 10});
  std::string target = " -h 127.0.0.1 -p " + std::to_string(mux.port()) + " -U app app";

  PgbenchRun select_only = pgbench("-S -c 32 -j 4 -T 10" + target);
  INFO(select_only.output);
  INFO(mux.log_tail());
  INFO(mux.state());
  CHECK(select_only.status == 0);
  CHECK(select_only.failed == "0");
  CHECK(select_only.tps > 0);
  std::cout << "pgbench -S -c 32 -T 10 through pgmux: tps = " << select_only.tps << std::endl;

  PgbenchRun tpcb = pgbench("-c 32 -j 4 -T 10 -M extended" + target);
  INFO(tpcb.output);
  INFO(mux.log_tail());
  INFO(mux.state());
  CHECK(tpcb.status == 0);
  CHECK(tpcb.failed == "0");
  CHECK(tpcb.tps > 0);
  std::cout << "pgbench -c 32 -T 10 -M extended through pgmux: tps = " << tpcb.tps << std::endl;
}
