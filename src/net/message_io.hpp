// Whole-message reads and writes for the login phases, where messages are few and small.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "net/asio.hpp"

namespace pgmux::net {

// Reads a startup-phase packet (no type byte) up to `max_length` bytes; `packet` gets everything after the
// length. Too short or too long: boost::system::errc::protocol_error.
asio::awaitable<error_code> read_startup_packet(Socket& socket, std::string& packet,
                                                std::uint32_t max_length);

// Reads one typed message; `body` gets what follows the length.
asio::awaitable<error_code> read_message(Socket& socket, char& type, std::string& body,
                                         std::uint32_t max_length);

asio::awaitable<error_code> write_all(Socket& socket, std::string_view bytes);

}  // namespace pgmux::net
