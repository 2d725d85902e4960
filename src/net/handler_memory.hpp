// Exact-size, per-thread recycled memory for the one operation an idle client keeps pending.
#pragma once

#include <cstddef>

namespace pgmux::net {

namespace detail {
void* take_block(std::size_t bytes);
void give_block(void* block, std::size_t bytes) noexcept;
}  // namespace detail

// Bound to a handler (asio::bind_allocator), its operation gets a block of the size it needs, rounded up to
// 16 bytes. Asio's default recycling would hand it whatever larger block the thread freed last (an accept
// operation's, over 300 bytes), and an idle client would keep that block for as long as it stays idle.
template <class T>
struct ExactSizeAllocator {
  using value_type = T;
  ExactSizeAllocator() = default;
  template <class U>
  ExactSizeAllocator(const ExactSizeAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(detail::take_block(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { detail::give_block(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const ExactSizeAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace pgmux::net
