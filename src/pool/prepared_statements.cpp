// Named prepared statements in transaction mode: what each client has prepared, and what each backend holds.
#include "pool/prepared_statements.hpp"

#include <cstring>

#include "pgmux/auth/crypto.hpp"

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
  return statement;
}

const std::shared_ptr<const PreparedStatement>* ClientStatements::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

void ClientStatements::add(std::string_view name, std::shared_ptr<const PreparedStatement> statement) {
  by_name_.insert_or_assign(std::string(name), std::move(statement));
}

void ClientStatements::remove(std::string_view name) {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) by_name_.erase(it);
}

bool BackendStatements::touch(const StatementId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  it->second->used_at = clock_;
  order_.splice(order_.end(), order_, it->second);
  return true;
}

bool BackendStatements::add(const StatementId& id, std::size_t capacity, std::uint64_t since_use,
                            StatementId& evicted) {
  if (touch(id)) return false;
  order_.push_back({id, clock_});
  index_.emplace(id, std::prev(order_.end()));
  if (index_.size() <= capacity || order_.front().used_at >= since_use) return false;
  evicted = order_.front().id;
  index_.erase(evicted);
  order_.pop_front();
  return true;
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
