// The few words of SQL pgmux reads: statement resets, session state and search_path lists.
#include <catch2/catch.hpp>

#include "pgmux/protocol/sql_keywords.hpp"

using namespace pgmux::protocol;
using Kind = SessionEffect::Kind;

TEST_CASE("statement resets are recognised in any case, after comments, and only whole for DEALLOCATE ALL") {
  CHECK(drops_all_statements("DEALLOCATE ALL"));
  CHECK(drops_all_statements("  /* c /* nested */ */ deallocate prepare all ;"));
  CHECK(drops_all_statements("-- note\nDISCARD ALL"));
  CHECK(drops_all_statements(std::string_view("DISCARD ALL\0", 12)));
  CHECK_FALSE(drops_all_statements("DEALLOCATE p1"));
  CHECK_FALSE(drops_all_statements("DISCARD ALL; SELECT 1"));
  CHECK_FALSE(drops_all_statements("DISCARD PLANS"));
  CHECK(may_drop_statements("select 1; Discard all"));
  CHECK(may_drop_statements("DEALLOCATE p1"));
  CHECK_FALSE(may_drop_statements("SELECT abalance FROM pgbench_accounts WHERE aid = $1"));
  CHECK_FALSE(may_drop_statements("SELECT 'not discarded' AS discarded_at"));
}

TEST_CASE("statements that leave session state behind pin; transaction-scoped ones do not") {
  for (const char* sql : {"LISTEN x",
                          "listen \"X\"",
                          "PREPARE p AS SELECT 1",
                          "CREATE TEMP TABLE t (n int)",
                          "create local temporary table t (n int)",
                          "SELECT pg_advisory_lock(1)",
                          "select pg_try_advisory_lock_shared(1, 2)",
                          "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                          "SET ROLE app",
                          "SET SESSION AUTHORIZATION app",
                          "SET work_mem = '8MB'",
                          "set session statement_timeout to 5",
                          "SELECT set_config('search_path', 'x', false)",
                          "SELECT 1; SET search_path TO x",
                          "LOAD 'auto_explain'",
                          "advisory_lock",
                          "SELECT x_y_z, PG_ADVISORY_LOCK(1)",
                          "select 1 from __t where pg_advisory_lock(2)",
                          "/* c */ Listen x",
                          "\tprepare\np as select 1"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
    CHECK_FALSE(session_effect(sql).what.empty());
  }
  for (const char* sql : {"SELECT 1",
                          "SET LOCAL work_mem = '8MB'",
                          "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                          "SET TimeZone = 'UTC'",
                          "SET TIME ZONE 'UTC'",
                          "set application_name to 'x'",
                          "SET NAMES 'UTF8'",
                          "SELECT pg_advisory_xact_lock(1)",
                          "DECLARE c CURSOR FOR SELECT 1",
                          "CREATE TABLE t (n int)",
                          "SHOW search_path",
                          "SELECT current_setting('search_path')",
                          "RESET work_mem",
                          "INSERT INTO listen_log VALUES (1)",
                          "SELECT advisory_loc",
                          "SELECT 'advisory lock'",
                          "_",
                          "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
                          "listening",
                          "prepared",
                          "settle x",
                          "SELECT search_path_x FROM t_search_path"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::none);
  }
}

TEST_CASE("SET search_path is followed when its value is a plain list, and pins otherwise") {
  SessionEffect set = session_effect("SET search_path TO path_a, public");
  CHECK(set.kind == Kind::sets_search_path);
  CHECK(set.value == "path_a, public");
  CHECK(session_effect("set session search_path = \"Path B\", 'x''y';").value == "\"Path B\", 'x''y'");
  CHECK(session_effect(std::string_view("SET search_path TO a\0", 21)).value == "a");
  CHECK(session_effect("SET search_path TO DEFAULT").kind == Kind::resets_search_path);
  CHECK(session_effect("RESET search_path").kind == Kind::resets_search_path);
  CHECK(session_effect("RESET ALL").kind == Kind::resets_search_path);
  CHECK(session_effect("DISCARD ALL").kind == Kind::resets_search_path);
  for (const char* sql : {"SET search_path TO a; SELECT 1", "SET search_path TO 'a\\b'",
                          "SET search_path TO a,,b", "SET search_path TO a, 'unterminated",
                          "SET search_path TO f(x)", "SET search_path TO a -- comment"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
  }
  CHECK(search_path_list("  \"$user\", public ") == "\"$user\", public");
  CHECK(search_path_list("x;y").empty());
}

TEST_CASE("DEALLOCATE of one statement is read with Postgres's identifier folding") {
  CHECK(deallocate_target("DEALLOCATE s1") == "s1");
  CHECK(deallocate_target("deallocate prepare _PG3_7;") == "_pg3_7");
  CHECK(deallocate_target("DEALLOCATE \"My \"\"S\"\"\"") == "My \"S\"");
  CHECK(deallocate_target(std::string_view("DEALLOCATE a\0", 13)) == "a");
  CHECK(deallocate_target("DEALLOCATE ALL").empty());
  CHECK(deallocate_target("DEALLOCATE a; SELECT 1").empty());
  CHECK(deallocate_target("SELECT 1").empty());
}

// The scan for advisory_lock, search_path and set_config finds each name by its underscore: a name at
// either end of the text, beside other underscores or overlapping another name is found, in any case; a
// name cut short, broken by another byte, or spelled with a non-ASCII look-alike is not.
TEST_CASE("the three names are found wherever their underscore falls, and near misses are not") {
  using namespace std::string_view_literals;
  for (std::string_view sql :
       {"advisory_lock"sv, "pg_advisory_lock"sv, "__advisory_lock__"sv,
        "select pg_advisory_lock"sv,  // the text ends with the name
        "ADVISORY_LOCK(1)"sv,
        "SELECT 1 -- pg_advisory_lock(1)"sv,  // a comment counts: errs towards pinning
        "SELECT 'pg_advisory_lock'"sv,
        "SELECT 1\0pg_advisory_lock"sv,  // past a NUL too (a Parse's parameter types)
        "SELECT set_config('search_path', 'x', false)"sv, "SELECT SET_CONFIG('SEARCH_PATH', 'x', false)"sv,
        "set_configsearch_path"sv,  // adjacent, at the very start and end
        "search_path_set_config"sv, "x_search_path_; SELECT 1"sv,
        "SELECT set_config(current_setting('search_path'), 'x', false)"sv}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
  }
  for (std::string_view sql :
       {"SELECT pg_advisory_loc"sv,  // cut short at the end
        "dvisory_lock"sv, "advisory__lock"sv, "advisory_lock"sv.substr(0, 12), "advisory\0lock"sv,
        "ADV\xc4\xb0SORY_LOCK"sv,  // a dotted capital I is not an i
        // set_config local to the transaction, so that only the search_path rule could pin
        "SELECT set_config('work.x', 'x', true)"sv, "SELECT current_setting('search_path')"sv,
        "search_pat; SELECT set_config('a.b', 'x', true)"sv,
        "earch_path; SELECT set_config('a.b', '', true)"sv, "search_path; set_confi"sv.substr(0, 11),
        "SELECT set_config('search__path', 'x', true)"sv, "___"sv, ""sv}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::none);
  }
}

TEST_CASE("only the first word decides, and a longer word that starts like a keyword is not it") {
  for (const char* sql :
       {"LISTENER x", "prepared x", "settings", "resetting all", "discarded all", "created temp table t ()",
        "declared c cursor with hold", "loader 'x'", "SELECT 1; LISTEN x", "LISTEN\xc3\xa9 x",
        "EXPLAIN SELECT pg_advisory_xact_lock(1)"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::none);
  }
  for (const char* sql :
       {"LISTEN/**/x", "listen\tx;", "Prepare p(int) AS SELECT $1", "LOAD'x'", "load",
        "CREATE GLOBAL TEMP TABLE t ()", "CREATE TEMPORARY SEQUENCE s", "CREATE TEMP VIEW v AS SELECT 1",
        "DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT 1", "-- a\n/* b /* c */ */ SET ROLE app"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
  }
  CHECK(session_effect("SET/**/search_path/**/TO/**/a").kind == Kind::sets_search_path);
  CHECK(session_effect("SET search_path FROM CURRENT").kind == Kind::pins);
  CHECK(session_effect("RESET search_path; SELECT 1").kind == Kind::pins);
  CHECK(session_effect("DISCARD ALL; SELECT 1").kind == Kind::none);
}

// Statements whose first words do not say that they leave session state behind.
TEST_CASE("CREATE OR REPLACE TEMP VIEW pins as CREATE TEMP VIEW does") {
  CHECK(session_effect("CREATE OR REPLACE TEMP VIEW v AS SELECT 1").kind == Kind::pins);
  CHECK(session_effect("create or replace temporary view v as select 1").kind == Kind::pins);
}

TEST_CASE("temporary tables made by SELECT INTO TEMP or in schema pg_temp pin as CREATE TEMP TABLE does") {
  CHECK(session_effect("SELECT 1 AS n INTO TEMP TABLE t").kind == Kind::pins);
  CHECK(session_effect("SELECT * INTO TEMPORARY t FROM pg_class").kind == Kind::pins);
  CHECK(session_effect("CREATE TABLE pg_temp.t (n int)").kind == Kind::pins);
}

TEST_CASE("set_config of a setting for the session pins as SET of that setting does") {
  REQUIRE(session_effect("SET work_mem = '1GB'").kind == Kind::pins);
  CHECK(session_effect("SELECT set_config('work_mem', '1GB', false)").kind == Kind::pins);
  // search_path computed rather than spelled out
  CHECK(session_effect("SELECT set_config('search' || '_path', 'x', false)").kind == Kind::pins);
}

TEST_CASE("set_config pins unless it is local to the transaction or of a setting pgmux follows") {
  for (const char* sql :
       {"SELECT set_config('app.user_id', '42', true)", "select SET_CONFIG('app.user_id', '42', TRUE)",
        "SELECT set_config('app.tenant', current_setting('app.default', true), 'on')",
        "SELECT set_config('app.list', 'a,b)c', true), set_config('app.other', '', 't')",
        "SELECT set_config('TimeZone', 'UTC', false)", "SELECT set_config('application_name', 'x', false)"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::none);
  }
  for (const char* sql :
       {"SELECT set_config('app.user_id', '42', false)", "SELECT set_config('work_mem', $1, false)",
        "SELECT set_config($1, $2, $3)",
        "SELECT set_config('app.a', 'x', true), set_config('app.b', 'y', false)",
        "SELECT set_config('statement_timeout', '1s', is_local => false)", "SELECT set_config('app.x', 'y')",
        "SELECT set_config", "SELECT set_config('app.x', 'unterminated, true)"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
  }
}

TEST_CASE("temporary objects pin however they are made") {
  for (const char* sql :
       {"SELECT 1 AS n INTO TEMPORARY TABLE t", "WITH a AS (SELECT 1 AS n) SELECT n INTO TEMP t FROM a",
        "select * into\n temp t from pg_class", "CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1",
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1", "EXPLAIN (ANALYZE, BUFFERS) SELECT 1 INTO TEMP t",
        "explain analyse verbose select 1 into temporary t", "SELECT 1 INTO LOCAL TEMP t",
        "SELECT 1 INTO GLOBAL TEMPORARY TABLE t", "SELECT 1 INTO pg_temp.t", "SELECT 1 INTO TABLE PG_TEMP.t",
        "(SELECT 1 INTO TEMP t)", "SET search_path = pg_temp, public",
        "SET search_path TO public, 'pg_temp'"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::pins);
  }
  for (const char* sql :
       {"INSERT INTO temp_totals VALUES (1)", "SELECT info FROM t WHERE point = 1", "SELECT 1 INTO t",
        "EXPLAIN CREATE TEMP TABLE t AS SELECT 1", "EXPLAIN (COSTS off) SELECT 1 INTO TEMP t",
        "CREATE OR REPLACE VIEW v AS SELECT 1", "SELECT * FROM pgbench_accounts WHERE aid = 1"}) {
    INFO(sql);
    CHECK(session_effect(sql).kind == Kind::none);
  }
}

TEST_CASE("what a failed query may still leave behind: a session lock, or a statement before the failure") {
  CHECK(session_effect("SELECT pg_advisory_lock(1), 1/0").survives_failure);
  CHECK(session_effect("CREATE TEMP TABLE t (n int); COMMIT; SELECT 1/0").survives_failure);
  CHECK(session_effect("SET work_mem = '1GB'; COMMIT; SELECT 1/0").survives_failure);
  CHECK_FALSE(session_effect("LISTEN x").survives_failure);
  CHECK_FALSE(session_effect("CREATE TEMP TABLE t (n int);").survives_failure);
  CHECK_FALSE(session_effect("SET search_path TO a").survives_failure);
}

TEST_CASE("a later piece of a long statement is read for the names the whole-text scans look for") {
  for (const char* text : {"'), pg_advisory_lock(1)", "x', 'y', false), set_config('a.b', 'c', true)",
                           "search_path", "'::text AS pad INTO TEMP t", " INTO pg_temp.t"}) {
    INFO(text);
    CHECK(session_effect_of_later_text(text).kind == Kind::pins);
  }
  for (const char* text : {"xxxxxxxx", "'), pg_advisory_xact_lock(1)", "), ('LISTEN x'), ('CREATE TEMP')"}) {
    INFO(text);
    CHECK(session_effect_of_later_text(text).kind == Kind::none);
  }
}
