// The extended-protocol messages an HTTP request sends: Parse, Bind, Describe and Execute of the unnamed
// statement and portal, with text parameters and text results.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgmux::http {

// Parse "" / Bind "" "" / [Describe portal] / Execute "" (all rows). No Sync: the caller ends the pipeline.
// Parameters have no declared type (OID 0), so Postgres infers each from its use, as for libpq's
// PQexecParams.
void append_extended_query(std::string& out, std::string_view sql,
                           const std::vector<std::optional<std::string>>& params, bool describe);

}  // namespace pgmux::http
