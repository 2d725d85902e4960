// Readability of long-lived sockets, from an epoll set of each worker's own nested in its io_context.
#include "net/readiness.hpp"

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

ReadinessSet::ReadinessSet(asio::io_context& io, int epoll_fd) : io_(io), epoll_(io, epoll_fd) {}

ReadinessSet::~ReadinessSet() {
  // Destroyed by the thread that owns the worker's io_context, after it stopped; another worker's thread
  // may already have exited.
  if (t_set == this) t_set = nullptr;
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
  if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0 &&
      (errno != EEXIST || ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_MOD, fd, &ev) != 0)) {
    forget(id);
    return kNone;
  }
  return id;
}

void ReadinessSet::arm(Id id) {
  Slot& slot = slots_[id];
  slot.armed = true;
  if (!slot.edge && !slot.hung_up) return;
  slot.edge = false;
  asio::post(io_, [this, id, generation = slot.generation] {
    Slot& later = slots_[id];
    if (later.generation != generation || !later.armed) return;  // forgotten, or called back by an event
    later.armed = false;
    later.callback(later.target);
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
  ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
  if (t_set == this) return forget(id);
  std::lock_guard lock(left_mutex_);
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

void ReadinessSet::on_edge(Id id) {
  Slot& slot = slots_[id];
  if (!slot.armed) {
    slot.edge = true;
    return;
  }
  slot.armed = false;
  slot.callback(slot.target);  // may watch, arm or forget: `slot` is not touched after it
}

void ReadinessSet::wait_for_events() {
  epoll_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
    if (!ec) dispatch();
  });
}

void ReadinessSet::dispatch() {
  // Slots given up elsewhere are reused only from here, so none is reused while its socket may still report.
  if (any_left_.load(std::memory_order_acquire)) forget_left_ones();
  epoll_event events[kBatch];
  int n = ::epoll_wait(epoll_.native_handle(), events, kBatch, 0);
  for (int i = 0; i < n; ++i) {
    const auto id = static_cast<Id>(events[i].data.u64);
    const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
    Slot& slot = slots_[id];
    if (slot.generation != generation) continue;  // for a watch forgotten since
    if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) slot.hung_up = true;
    on_edge(id);
  }
  if (n == kBatch)
    asio::post(io_, [this] { dispatch(); });
  else
    wait_for_events();
}

}  // namespace pgmux::net
