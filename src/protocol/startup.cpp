// Parses the packets a client sends before authentication: StartupMessage, SSLRequest, CancelRequest.
#include "pgmux/protocol/startup.hpp"

#include "pgmux/protocol/wire.hpp"

namespace pgmux::protocol {

const std::string* StartupPacket::param(std::string_view name) const {
  for (const auto& [key, value] : params)
    if (key == name) return &value;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> parse_startup_options(std::string_view options) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < options.size(); ++i) {
    char c = options[i];
    if (c == '\\' && i + 1 < options.size()) {
      word += options[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));

  std::vector<std::pair<std::string, std::string>> settings;
  auto add = [&](std::string_view assignment) {
    std::size_t eq = assignment.find('=');
    if (eq == std::string_view::npos || eq == 0) return;
    std::string name(assignment.substr(0, eq));
    for (char& ch : name)
      if (ch == '-') ch = '_';  // --time-zone=... means time_zone, as in Postgres
    settings.emplace_back(std::move(name), std::string(assignment.substr(eq + 1)));
  };
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    if (w == "-c" && i + 1 < words.size())
      add(words[++i]);
    else if (w.starts_with("-c"))
      add(w.substr(2));
    else if (w.starts_with("--"))
      add(w.substr(2));
  }
  return settings;
}

std::optional<StartupPacket> parse_startup_packet(std::string_view packet, std::string& error) {
  if (packet.size() < 4) {
    error = "startup packet too short";
    return std::nullopt;
  }
  StartupPacket out;
  std::uint32_t code = read_u32(packet.data());
  std::string_view body = packet.substr(4);
  switch (code) {
    case kSslRequestCode:
      out.kind = StartupPacket::Kind::ssl_request;
      return out;
    case kGssEncRequestCode:
      out.kind = StartupPacket::Kind::gssenc_request;
      return out;
    case kCancelRequestCode:
      // PostgreSQL 18 (protocol 3.2) allows longer keys; we hand out 4-byte keys, so anything else is not
      // ours.
      if (body.size() != 8) {
        error = "malformed cancel request";
        return std::nullopt;
      }
      out.kind = StartupPacket::Kind::cancel_request;
      out.cancel_pid = read_u32(body.data());
      out.cancel_key = read_u32(body.data() + 4);
      return out;
  }
  if (code >> 16 != 3) {
    error =
        "unsupported frontend protocol " + std::to_string(code >> 16) + "." + std::to_string(code & 0xffff);
    return std::nullopt;
  }
  out.version = code;
  // key\0value\0 ... \0
  std::size_t pos = 0;
  for (;;) {
    std::size_t key_end = body.find('\0', pos);
    if (key_end == std::string_view::npos) {
      error = "startup packet is not terminated";
      return std::nullopt;
    }
    if (key_end == pos) break;  // the final empty key
    std::size_t value_end = body.find('\0', key_end + 1);
    if (value_end == std::string_view::npos) {
      error = "startup parameter has no value";
      return std::nullopt;
    }
    out.params.emplace_back(body.substr(pos, key_end - pos),
                            body.substr(key_end + 1, value_end - key_end - 1));
    pos = value_end + 1;
  }
  return out;
}

}  // namespace pgmux::protocol
