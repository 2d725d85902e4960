// Named prepared statements in transaction mode: what each client has prepared, and what each backend holds.
#include "pool/prepared_statements.hpp"

#include <cstring>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/protocol/sql_keywords.hpp"

namespace pgmux::pool {

std::string server_statement_name(const StatementId& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "pgmux_";
  for (std::uint64_t half : {id.hi, id.lo})
    for (int shift = 60; shift >= 0; shift -= 4) name += kHex[(half >> shift) & 0xf];
  return name;
}

std::shared_ptr<const PreparedStatement> make_statement(std::string_view definition) {
  auth::Key256 digest = auth::sha256(definition);
  auto statement = std::make_shared<PreparedStatement>();
  std::memcpy(&statement->id.hi, digest.data(), 8);
  std::memcpy(&statement->id.lo, digest.data() + 8, 8);
  statement->server_name = server_statement_name(statement->id);
  statement->definition = definition;
  statement->drops_statements = protocol::may_drop_statements(definition.substr(0, definition.find('\0')));
  return statement;
}

const ClientStatements::Entry* ClientStatements::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

void ClientStatements::add(std::string_view name, std::shared_ptr<const PreparedStatement> statement) {
  by_name_.insert_or_assign(std::string(name), Entry{std::move(statement), false});
}

void ClientStatements::confirm(std::string_view name, const StatementId& id) {
  auto it = by_name_.find(name);
  if (it != by_name_.end() && it->second.statement->id == id) it->second.confirmed = true;
}

void ClientStatements::remove(std::string_view name) {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) by_name_.erase(it);
}

bool BackendStatements::touch(const StatementId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  Entry& entry = *it->second;
  if (!entry.confirmed && entry.prepared_at != clock_) return false;  // an earlier batch's, still unanswered
  entry.used_at = clock_;
  order_.splice(order_.end(), order_, it->second);
  return true;
}

bool BackendStatements::add(const StatementId& id, std::size_t capacity, StatementId& evicted) {
  if (auto it = index_.find(id); it != index_.end()) {  // prepared again: an earlier Parse may yet fail
    *it->second = {id, clock_, clock_, false};
    order_.splice(order_.end(), order_, it->second);
    return false;
  }
  order_.push_back({id, clock_, clock_, false});
  index_.emplace(id, std::prev(order_.end()));
  if (index_.size() <= capacity || order_.front().used_at >= clock_) return false;
  evicted = order_.front().id;
  index_.erase(evicted);
  order_.pop_front();
  return true;
}

void BackendStatements::confirm(const StatementId& id) {
  auto it = index_.find(id);
  if (it != index_.end()) it->second->confirmed = true;
}

void BackendStatements::remove(const StatementId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  order_.erase(it->second);
  index_.erase(it);
}

void BackendStatements::clear() {
  order_.clear();
  index_.clear();
}

}  // namespace pgmux::pool
