// Readability of long-lived sockets, from an epoll set of each worker's own nested in its io_context.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "net/asio.hpp"

namespace pgmux::net {

// Asio 1.81 arms a wait on a socket with an epoll_ctl every time (and a read with a speculative recv): one
// system call per wait, before any byte moves. A relayed transaction waits on its client at least once. Here
// a socket is added to the set once, edge-triggered, and arming a wait is setting a flag. The set is one
// descriptor in the worker's io_context: a batch of readable sockets costs one epoll_wait and one re-arm of
// that descriptor, however many it holds. A watched socket keeps no operation pending in Asio, which is
// also memory an idle client no longer holds.
//
// Single-threaded: everything here runs on the worker that owns the set, unwatch_from_any_thread() aside.
class ReadinessSet {
 public:
  using Callback = void (*)(void* target);
  using Id = std::uint32_t;
  static constexpr Id kNone = ~Id{0};

  // Creates the set of the worker running `io` (call before anything is spawned on it). Its owner calls
  // close() before `io` goes, and may keep it longer.
  static std::unique_ptr<ReadinessSet> start_on(asio::io_context& io);
  // The set of the worker this thread runs; null on any other thread.
  static ReadinessSet* of_this_thread();

  ~ReadinessSet();
  ReadinessSet(const ReadinessSet&) = delete;
  ReadinessSet& operator=(const ReadinessSet&) = delete;

  // Watches `fd` (readable, peer closed, error): after each arm(), `callback(target)` runs once, from the
  // worker's loop, when it is or becomes readable. kNone if the kernel refuses it (out of memory).
  Id watch(int fd, Callback callback, void* target);
  // Asks for one call back, right after a read that drained the socket (EAGAIN or a short read): it comes
  // with the next edge, or is posted at once if the peer has closed.
  void arm(Id id);
  // No call back from here on, not even one already posted. The socket leaves the set when it is closed.
  void forget(Id id);

  // For sockets that change hands (a backend between clients): who is called back, or nobody (null target:
  // edges are still noted, see quiet()). Disarms.
  void retarget(Id id, Callback callback, void* target);
  bool armed(Id id) const { return slots_[id].armed; }
  // Nothing came since the last call back or clear_edges(), and the peer has not closed.
  bool quiet(Id id) const {
    const Slot& slot = slots_[id];
    return !slot.edge && !slot.hung_up;
  }
  void clear_edges(Id id) { slots_[id].edge = false; }
  void note_edge(Id id) { slots_[id].edge = true; }

  // From any thread, for a socket that leaves this worker (or is closed there): out of the set now, and
  // forgotten when this worker next takes events.
  void unwatch_from_any_thread(int fd, Id id);

  // Once the workers stopped, before their io_contexts go: the set's descriptor is closed, and from then on
  // unwatch_from_any_thread() does nothing (backends still held by sessions are destroyed after it).
  void close();

 private:
  explicit ReadinessSet(asio::io_context& io, int epoll_fd);
  void wait_for_events();
  void dispatch();

  struct Slot {
    void* target = nullptr;
    Callback callback = nullptr;
    std::uint32_t generation = 0;  // changes on forget(): events and posts for an older watch are dropped
    bool armed = false;
    bool edge = false;  // an event came since the last call back or arm()
    // The peer closed (or the socket failed): from then on every arm() is called back at once. An edge
    // says only that something came; the bytes read after it (a short read) may end before the end of
    // stream that came with them, and no later edge would tell.
    bool hung_up = false;
  };
  static std::uint64_t key(Id id, std::uint32_t generation) { return std::uint64_t{generation} << 32 | id; }
  Slot* current_slot(std::uint64_t key);  // the key's slot, unless forgotten since the key was made
  void call_back(Slot& slot);             // disarms it first

  void forget_left_ones();

  asio::io_context& io_;
  const int epoll_fd_;
  // Owns epoll_fd_; an Asio object, so it goes in close(), while its io_context still exists.
  std::optional<asio::posix::stream_descriptor> epoll_;
  std::vector<Slot> slots_;
  std::vector<Id> free_;
  // unwatch_from_any_thread(), for forget() on this worker.
  std::mutex left_mutex_;
  bool closed_ = false;  // close(); under left_mutex_
  std::vector<Id> left_;
  std::atomic<bool> any_left_{false};
};

}  // namespace pgmux::net
