// Clients logged in per database and per user, against max_db_client_connections and
// max_user_client_connections.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pgmux::session {

class ClientLimits {
 public:
  // Which limit refused a client; `none` when it was counted in.
  enum class Refusal { none, database, user };

  // Counts the client in unless that would pass a limit (0 = no limit). A counted client calls leave().
  Refusal try_join(const std::string& database, const std::string& user, int max_per_database,
                   int max_per_user);
  void leave(const std::string& database, const std::string& user);

 private:
  // Logins and logouts only, never per message: one lock is cheap enough. Entries go when they reach 0, so
  // the tables hold only names with someone logged in.
  std::mutex mutex_;
  std::unordered_map<std::string, int> by_database_;
  std::unordered_map<std::string, int> by_user_;
};

}  // namespace pgmux::session
