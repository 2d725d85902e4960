// Clients logged in per database and per user, against max_db_client_connections and
// max_user_client_connections.
#include "session/client_limits.hpp"

namespace pgmux::session {

ClientLimits::Refusal ClientLimits::try_join(const std::string& database, const std::string& user,
                                             int max_per_database, int max_per_user) {
  std::lock_guard lock(mutex_);
  auto db = by_database_.find(database);
  if (max_per_database > 0 && db != by_database_.end() && db->second >= max_per_database)
    return Refusal::database;
  auto of_user = by_user_.find(user);
  if (max_per_user > 0 && of_user != by_user_.end() && of_user->second >= max_per_user) return Refusal::user;
  ++by_database_[database];
  ++by_user_[user];
  return Refusal::none;
}

void ClientLimits::leave(const std::string& database, const std::string& user) {
  std::lock_guard lock(mutex_);
  if (auto db = by_database_.find(database); db != by_database_.end() && --db->second <= 0)
    by_database_.erase(db);
  if (auto of_user = by_user_.find(user); of_user != by_user_.end() && --of_user->second <= 0)
    by_user_.erase(of_user);
}

}  // namespace pgmux::session
