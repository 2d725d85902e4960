// The extended-protocol messages an HTTP request sends: Parse, Bind, Describe and Execute of the unnamed
// statement and portal, with text parameters and text results.
#include "http/extended_query.hpp"

#include "pgmux/protocol/builders.hpp"

namespace pgmux::http {

using protocol::MessageBuilder;

void append_extended_query(std::string& out, std::string_view sql,
                           const std::vector<std::optional<std::string>>& params, bool describe) {
  // Parse: statement name, query, no parameter types.
  MessageBuilder(out, 'P').cstr("").cstr(sql).u16(0);
  {
    // Bind: portal, statement, no format codes (all parameters text), the values, no result formats (all
    // results text).
    MessageBuilder bind(out, 'B');
    bind.cstr("").cstr("").u16(0).u16(static_cast<std::uint16_t>(params.size()));
    for (const auto& value : params) {
      if (!value) {
        bind.u32(0xffffffff);  // -1: NULL
        continue;
      }
      bind.u32(static_cast<std::uint32_t>(value->size())).bytes(*value);
    }
    bind.u16(0);
  }
  if (describe) MessageBuilder(out, 'D').u8('P').cstr("");
  MessageBuilder(out, 'E').cstr("").u32(0);
}

}  // namespace pgmux::http
