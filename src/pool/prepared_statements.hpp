// Named prepared statements in transaction mode: what each client has prepared, and what each backend holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pgmux::pool {

// A statement's identity on backends: a digest of its text and parameter types. Clients that prepare the same
// statement under any names share one server-side copy per backend. SHA-256, so that no client can craft a
// text that runs as another client's statement.
struct StatementId {
  std::uint64_t hi = 0, lo = 0;
  bool operator==(const StatementId&) const = default;
};

struct StatementIdHash {
  std::size_t operator()(const StatementId& id) const { return id.lo; }
};

struct PreparedStatement {
  StatementId id;
  std::string server_name;  // "pgmux_" and the id in hex: what backends call it
  std::string definition;   // the Parse body after the name: query, parameter count, parameter types
  bool drops_statements;    // running it may drop prepared statements (DEALLOCATE, DISCARD)
};

// `definition`: the bytes of a Parse body that follow the statement's name.
std::shared_ptr<const PreparedStatement> make_statement(std::string_view definition);

// One client's statements by the names it gave them. A name is confirmed once Postgres accepted its Parse:
// until then a later batch may define it again (the first Parse can still fail and leave it free).
class ClientStatements {
 public:
  struct Entry {
    std::shared_ptr<const PreparedStatement> statement;
    bool confirmed = false;
  };
  const Entry* find(std::string_view name) const;
  void add(std::string_view name, std::shared_ptr<const PreparedStatement> statement);
  void confirm(std::string_view name, const StatementId& id);
  void remove(std::string_view name);
  void clear() { by_name_.clear(); }
  std::size_t size() const { return by_name_.size(); }

 private:
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Entry, NameHash, std::equal_to<>> by_name_;
};

// The statements one backend holds, least recently used first out. The set may miss statements the server
// still has (pgmux closes a name before preparing it, so that is harmless) but never lists one it lacks: a
// statement counts as held once its ParseComplete came, or within the batch (up to the next Sync) that
// prepares it, which an error would skip as a whole.
class BackendStatements {
 public:
  // Marks the statement used now. False if the backend cannot be relied on to hold it.
  bool touch(const StatementId& id);
  // Records a statement about to be prepared in the current batch. Returns true and the least recently used
  // one in `evicted` when the backend is over `capacity` and that one was not used in this batch.
  bool add(const StatementId& id, std::size_t capacity, StatementId& evicted);
  void confirm(const StatementId& id);  // its ParseComplete came
  void remove(const StatementId& id);
  void clear();
  std::size_t size() const { return index_.size(); }
  // The caller advances the clock at each Sync (or Query) it sends: one tick per batch.
  void tick() { ++clock_; }

 private:
  struct Entry {
    StatementId id;
    std::uint64_t used_at;
    std::uint64_t prepared_at;
    bool confirmed;
  };
  std::list<Entry> order_;  // least recently used first
  std::unordered_map<StatementId, std::list<Entry>::iterator, StatementIdHash> index_;
  std::uint64_t clock_ = 0;
};

std::string server_statement_name(const StatementId& id);

}  // namespace pgmux::pool
