// Builds the few messages pgmux originates itself, appended to a byte string ready to write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmux::protocol {

// Appends one message: type byte, length, then whatever the caller puts in the body.
class MessageBuilder {
 public:
  MessageBuilder(std::string& out, char type);  // type 0: a startup-phase packet with no type byte
  ~MessageBuilder();                            // patches the length
  MessageBuilder& u8(char v);
  MessageBuilder& u16(std::uint16_t v);
  MessageBuilder& u32(std::uint32_t v);
  MessageBuilder& cstr(std::string_view s);  // with its NUL
  MessageBuilder& bytes(std::string_view s);

 private:
  std::string& out_;
  std::size_t start_;
};

void append_error(std::string& out, std::string_view severity, std::string_view sqlstate,
                  std::string_view message);
void append_auth_request(std::string& out, std::uint32_t code, std::string_view data = {});
void append_parameter_status(std::string& out, std::string_view name, std::string_view value);
void append_backend_key_data(std::string& out, std::uint32_t pid, std::uint32_t key);
void append_ready_for_query(std::string& out, char status);
void append_query(std::string& out, std::string_view sql);
void append_terminate(std::string& out);
void append_sync(std::string& out);
// Extended-query messages pgmux sends on its own: `definition` is a Parse body's tail after the name (query,
// parameter count and types); Bind has no parameters and asks for text results.
void append_parse(std::string& out, std::string_view name, std::string_view definition);
void append_bind(std::string& out, std::string_view portal, std::string_view statement);
void append_execute(std::string& out, std::string_view portal);
void append_close(std::string& out, char kind, std::string_view name);  // kind 'S' statement, 'P' portal
void append_password(std::string& out, std::string_view password);      // PasswordMessage, NUL-terminated
void append_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data);
void append_sasl_response(std::string& out, std::string_view data);
void append_startup(std::string& out, const std::vector<std::pair<std::string, std::string>>& params);
void append_cancel_request(std::string& out, std::uint32_t pid, std::uint32_t key);
void append_ssl_request(std::string& out);
// NegotiateProtocolVersion: the newest minor version we speak and the options we did not recognise.
void append_negotiate_protocol_version(std::string& out, std::uint32_t minor,
                                       const std::vector<std::string>& unrecognised);

// A result set of text columns, as the admin console answers: RowDescription, DataRows, CommandComplete.
void append_row_description(std::string& out, const std::vector<std::string>& columns);
void append_data_row(std::string& out, const std::vector<std::string>& values);
void append_command_complete(std::string& out, std::string_view tag);

// A ParameterStatus body: name\0value\0. False if malformed.
bool parse_parameter_status(std::string_view body, std::string_view& name, std::string_view& value);

// Fields of an ErrorResponse/NoticeResponse body that pgmux reads.
struct ErrorFields {
  std::string severity, sqlstate, message;
};
ErrorFields parse_error_fields(std::string_view body);

}  // namespace pgmux::protocol
