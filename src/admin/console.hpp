// The admin console: the special database "pgmux", answering SHOW commands as ordinary result sets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::admin {

// A console command split into words: the keyword(s) upper-cased for matching, the arguments as typed.
struct ConsoleCommand {
  std::vector<std::string> words;  // as typed, without a trailing ';'; a "quoted name" loses its quotes
  std::string upper(std::size_t i) const;
};
ConsoleCommand parse_console_command(std::string_view text);

// Speaks the simple query protocol with one logged-in admin client until it leaves.
class Console {
 public:
  Console(session::Proxy& proxy, net::Socket& socket) : proxy_(proxy), socket_(socket) {}
  asio::awaitable<void> run();

  // The answer to one command (a whole response up to, not including, ReadyForQuery).
  asio::awaitable<std::string> answer(std::string_view command);

 private:
  // One command: what it is called, how many arguments it takes, and what runs it. To add a command, add a
  // row to kCommands (console.cpp) and a member here.
  using Run = asio::awaitable<void> (Console::*)(const std::vector<std::string>& args, std::string& out);
  struct Command {
    std::string_view name;  // one or two upper-case words
    std::size_t min_args, max_args;
    Run run;
  };
  static const std::vector<Command> kCommands;

  asio::awaitable<void> show_help(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_version(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_pools(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_stats(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_databases(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_config(const std::vector<std::string>& args, std::string& out);
  // admin/show_sessions.cpp
  asio::awaitable<void> show_clients(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> show_servers(const std::vector<std::string>& args, std::string& out);
  // admin/pause_commands.cpp
  asio::awaitable<void> pause(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> resume(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> kill(const std::vector<std::string>& args, std::string& out);
  // Whether `name` is a configured database; if not, `out` gets the error.
  bool known_database(const std::string& name, std::string& out) const;
  // RELOAD and SHUTDOWN, which act on the whole process.
  asio::awaitable<void> reload(const std::vector<std::string>& args, std::string& out);
  asio::awaitable<void> shutdown(const std::vector<std::string>& args, std::string& out);
  void process_command(const std::string& command, std::string& out);

  session::Proxy& proxy_;
  net::Socket& socket_;
};

}  // namespace pgmux::admin
