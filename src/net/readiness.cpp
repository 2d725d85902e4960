// Readability of long-lived sockets, from an epoll set of each worker's own nested in its io_context.
#include "net/readiness.hpp"

#include "log.hpp"

#include <sys/epoll.h>

#include <cerrno>
#include <system_error>

namespace pgmux::net {

namespace {

thread_local ReadinessSet* t_set = nullptr;

// Events taken per epoll_wait. A full batch means more may be waiting: the rest is taken after the worker's
// other handlers had a turn.
constexpr int kBatch = 64;

}  // namespace

std::unique_ptr<ReadinessSet> ReadinessSet::start_on(asio::io_context& io) {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  std::unique_ptr<ReadinessSet> set(new ReadinessSet(io, fd));
  asio::post(io, [s = set.get()] {
    t_set = s;
    s->wait_for_events();
  });
  return set;
}

ReadinessSet* ReadinessSet::of_this_thread() {
  return t_set;
}

ReadinessSet::ReadinessSet(asio::io_context& io, int epoll_fd)
    : io_(io), epoll_fd_(epoll_fd), epoll_(std::in_place, io, epoll_fd) {}

ReadinessSet::~ReadinessSet() {
  // Destroyed on the main thread (which runs worker 0), after every worker stopped.
  if (t_set == this) t_set = nullptr;
}

void ReadinessSet::close() {
  std::lock_guard lock(left_mutex_);
  epoll_.reset();  // closes epoll_fd_
  closed_ = true;
}

ReadinessSet::Id ReadinessSet::watch(int fd, Callback callback, void* target) {
  Id id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<Id>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[id];
  slot.target = target;
  slot.callback = callback;
  slot.armed = slot.edge = slot.hung_up = false;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = key(id, slot.generation);
  // A socket watched before by someone who stopped (forget) without closing it is still in the set.
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 &&
      (errno != EEXIST || ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0)) {
    forget(id);
    return kNone;
  }
  return id;
}

void ReadinessSet::arm(Id id) {
  Slot& slot = slots_[id];
  slot.armed = true;
  // Edges are noted only by dispatch(), on this thread: one noted before the read that drained the socket was
  // for bytes that read took. Bytes since then have an event of their own still to come.
  slot.edge = false;
  if (!slot.hung_up) return;
  asio::post(io_, [this, watch_key = key(id, slot.generation)] {
    // Unless forgotten, or called back by an event meanwhile.
    if (Slot* later = current_slot(watch_key); later && later->armed) call_back(*later);
  });
}

void ReadinessSet::forget(Id id) {
  Slot& slot = slots_[id];
  ++slot.generation;
  slot.target = nullptr;
  slot.callback = nullptr;
  slot.armed = slot.edge = slot.hung_up = false;
  free_.push_back(id);
}

void ReadinessSet::retarget(Id id, Callback callback, void* target) {
  Slot& slot = slots_[id];
  slot.callback = callback;
  slot.target = target;
  slot.armed = false;
}

void ReadinessSet::unwatch_from_any_thread(int fd, Id id) {
  std::lock_guard lock(left_mutex_);
  if (closed_) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (t_set == this) return forget(id);
  left_.push_back(id);
  any_left_.store(true, std::memory_order_release);
}

void ReadinessSet::forget_left_ones() {
  std::vector<Id> left;
  {
    std::lock_guard lock(left_mutex_);
    left.swap(left_);
    any_left_.store(false, std::memory_order_relaxed);
  }
  for (Id id : left) forget(id);
}

void ReadinessSet::wait_for_events() {
  epoll_->async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
    if (!ec) return dispatch();
    if (ec != asio::error::operation_aborted)
      log::error("a worker's readiness set failed (", ec.message(), "); its sockets are no longer watched");
  });
}

void ReadinessSet::dispatch() {
  // Slots given up elsewhere are reused only from here, so none is reused while its socket may still report.
  if (any_left_.load(std::memory_order_acquire)) forget_left_ones();
  epoll_event events[kBatch];
  int n = ::epoll_wait(epoll_fd_, events, kBatch, 0);
  // Two passes: every edge of the batch is noted before anyone is called back, so that a call back that
  // borrows an idle backend already knows whether that backend spoke (see quiet()).
  for (int i = 0; i < n; ++i) {
    Slot* slot = current_slot(events[i].data.u64);
    if (!slot) continue;  // for a watch forgotten since
    slot->edge = true;
    if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) slot->hung_up = true;
  }
  for (int i = 0; i < n; ++i) {
    // A call back earlier in the batch may have forgotten this one, or read its socket and armed it again.
    Slot* slot = current_slot(events[i].data.u64);
    if (slot && slot->armed && slot->edge) call_back(*slot);
  }
  if (n == kBatch)
    asio::post(io_, [this] { dispatch(); });
  else
    wait_for_events();
}

ReadinessSet::Slot* ReadinessSet::current_slot(std::uint64_t key) {
  Slot& slot = slots_[static_cast<Id>(key)];
  return slot.generation == static_cast<std::uint32_t>(key >> 32) ? &slot : nullptr;
}

void ReadinessSet::call_back(Slot& slot) {
  slot.armed = slot.edge = false;
  slot.callback(slot.target);  // may watch, arm or forget: `slot` is not touched after it
}

}  // namespace pgmux::net
