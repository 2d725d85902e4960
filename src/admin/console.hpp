// The admin console: the special database "pgmux", answering SHOW commands as ordinary result sets.
#pragma once

#include <string>
#include <string_view>

#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::admin {

// Speaks the simple query protocol with one logged-in admin client until it leaves.
class Console {
 public:
  Console(session::Proxy& proxy, net::Socket& socket) : proxy_(proxy), socket_(socket) {}
  asio::awaitable<void> run();

  // The answer to one command (a whole response up to, not including, ReadyForQuery). Public for tests.
  std::string answer(std::string_view command);

 private:
  void show_pools(std::string& out);
  void show_stats(std::string& out);
  void show_databases(std::string& out);
  void show_config(std::string& out);
  // RELOAD and SHUTDOWN, which act on the whole process.
  void process_command(const std::string& command, std::string& out);

  session::Proxy& proxy_;
  net::Socket& socket_;
};

// The first word pair of a console command, upper-cased, without a trailing ';': "show  pools;" -> "SHOW
// POOLS".
std::string normalize_command(std::string_view text);

}  // namespace pgmux::admin
