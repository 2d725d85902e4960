// Entry point of the reliability suite (load, churn and server-limit scenarios against real Postgres and
// pgmux).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
