// Builds the few messages pgmux originates itself, appended to a byte string ready to write.
#include "pgmux/protocol/builders.hpp"

#include "pgmux/protocol/wire.hpp"

namespace pgmux::protocol {

MessageBuilder::MessageBuilder(std::string& out, char type) : out_(out) {
  if (type != 0) out_.push_back(type);
  start_ = out_.size();
  out_.append(4, '\0');
}

MessageBuilder::~MessageBuilder() {
  write_u32(out_.data() + start_, static_cast<std::uint32_t>(out_.size() - start_));
}

MessageBuilder& MessageBuilder::u8(char v) {
  out_.push_back(v);
  return *this;
}

MessageBuilder& MessageBuilder::u16(std::uint16_t v) {
  out_.push_back(static_cast<char>(v >> 8));
  out_.push_back(static_cast<char>(v & 0xff));
  return *this;
}

MessageBuilder& MessageBuilder::u32(std::uint32_t v) {
  char b[4];
  write_u32(b, v);
  out_.append(b, 4);
  return *this;
}

MessageBuilder& MessageBuilder::cstr(std::string_view s) {
  out_.append(s);
  out_.push_back('\0');
  return *this;
}

MessageBuilder& MessageBuilder::bytes(std::string_view s) {
  out_.append(s);
  return *this;
}

void append_error(std::string& out, std::string_view severity, std::string_view sqlstate,
                  std::string_view message) {
  MessageBuilder m(out, 'E');
  m.u8('S').cstr(severity).u8('V').cstr(severity).u8('C').cstr(sqlstate).u8('M').cstr(message).u8('\0');
}

void append_auth_request(std::string& out, std::uint32_t code, std::string_view data) {
  MessageBuilder(out, 'R').u32(code).bytes(data);
}

void append_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  MessageBuilder(out, 'S').cstr(name).cstr(value);
}

void append_backend_key_data(std::string& out, std::uint32_t pid, std::uint32_t key) {
  MessageBuilder(out, 'K').u32(pid).u32(key);
}

void append_ready_for_query(std::string& out, char status) {
  MessageBuilder(out, 'Z').u8(status);
}

void append_query(std::string& out, std::string_view sql) {
  MessageBuilder(out, 'Q').cstr(sql);
}

void append_terminate(std::string& out) {
  MessageBuilder(out, 'X');
}

void append_sync(std::string& out) {
  MessageBuilder(out, 'S');
}

void append_password(std::string& out, std::string_view password) {
  MessageBuilder(out, 'p').cstr(password);
}

void append_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data) {
  MessageBuilder(out, 'p').cstr(mechanism).u32(static_cast<std::uint32_t>(data.size())).bytes(data);
}

void append_sasl_response(std::string& out, std::string_view data) {
  MessageBuilder(out, 'p').bytes(data);
}

void append_startup(std::string& out, const std::vector<std::pair<std::string, std::string>>& params) {
  MessageBuilder m(out, 0);
  m.u32(kProtocol30);
  for (const auto& [key, value] : params) m.cstr(key).cstr(value);
  m.u8('\0');
}

void append_ssl_request(std::string& out) {
  MessageBuilder(out, 0).u32(kSslRequestCode);
}

void append_cancel_request(std::string& out, std::uint32_t pid, std::uint32_t key) {
  MessageBuilder(out, 0).u32(kCancelRequestCode).u32(pid).u32(key);
}

void append_negotiate_protocol_version(std::string& out, std::uint32_t minor,
                                       const std::vector<std::string>& unrecognised) {
  MessageBuilder m(out, 'v');
  m.u32(minor).u32(static_cast<std::uint32_t>(unrecognised.size()));
  for (const auto& option : unrecognised) m.cstr(option);
}

void append_row_description(std::string& out, const std::vector<std::string>& columns) {
  constexpr std::uint32_t kTextOid = 25;
  MessageBuilder m(out, 'T');
  m.u16(static_cast<std::uint16_t>(columns.size()));
  for (const auto& name : columns) {
    // name, table oid, column number, type oid, type size (-1: varlena), type modifier (-1), format (text)
    m.cstr(name).u32(0).u16(0).u32(kTextOid).u16(0xffff).u32(0xffffffff).u16(0);
  }
}

void append_data_row(std::string& out, const std::vector<std::string>& values) {
  MessageBuilder m(out, 'D');
  m.u16(static_cast<std::uint16_t>(values.size()));
  for (const auto& value : values) m.u32(static_cast<std::uint32_t>(value.size())).bytes(value);
}

void append_command_complete(std::string& out, std::string_view tag) {
  MessageBuilder(out, 'C').cstr(tag);
}

bool parse_parameter_status(std::string_view body, std::string_view& name, std::string_view& value) {
  std::size_t name_end = body.find('\0');
  if (name_end == std::string_view::npos) return false;
  std::size_t value_end = body.find('\0', name_end + 1);
  if (value_end == std::string_view::npos) return false;
  name = body.substr(0, name_end);
  value = body.substr(name_end + 1, value_end - name_end - 1);
  return true;
}

ErrorFields parse_error_fields(std::string_view body) {
  ErrorFields fields;
  std::size_t pos = 0;
  while (pos < body.size() && body[pos] != '\0') {
    char code = body[pos++];
    std::size_t end = body.find('\0', pos);
    if (end == std::string_view::npos) break;
    std::string_view value = body.substr(pos, end - pos);
    if (code == 'V' || (code == 'S' && fields.severity.empty())) fields.severity = value;
    if (code == 'C') fields.sqlstate = value;
    if (code == 'M') fields.message = value;
    pos = end + 1;
  }
  return fields;
}

void append_parse(std::string& out, std::string_view name, std::string_view definition) {
  MessageBuilder(out, 'P').cstr(name).bytes(definition);
}

void append_bind(std::string& out, std::string_view portal, std::string_view statement) {
  MessageBuilder(out, 'B').cstr(portal).cstr(statement).u16(0).u16(0).u16(0);
}

void append_execute(std::string& out, std::string_view portal) {
  MessageBuilder(out, 'E').cstr(portal).u32(0);
}

void append_close(std::string& out, char kind, std::string_view name) {
  MessageBuilder(out, 'C').u8(kind).cstr(name);
}

}  // namespace pgmux::protocol
