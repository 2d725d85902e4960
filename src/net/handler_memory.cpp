// Exact-size, per-thread recycled memory for the one operation an idle client keeps pending.
#include "net/handler_memory.hpp"

#include <array>
#include <new>
#include <vector>

namespace pgmux::net::detail {
namespace {

constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = 32;  // blocks up to 512 bytes are recycled, larger ones go to the heap
constexpr std::size_t kMaxFreePerClass = 256;

// Blocks move between threads only when an operation completes elsewhere (shutdown); any thread may free
// any block, since all come from operator new.
struct FreeLists {
  std::array<std::vector<void*>, kClasses> by_class;
  ~FreeLists() {
    for (auto& list : by_class)
      for (void* block : list) ::operator delete(block);
  }
};
thread_local FreeLists t_free;

std::size_t size_class(std::size_t bytes) {
  return (bytes + kGranule - 1) / kGranule;  // 1-based: class c holds blocks of c * kGranule bytes
}

}  // namespace

void* take_block(std::size_t bytes) {
  std::size_t c = size_class(bytes);
  if (c == 0 || c > kClasses) return ::operator new(bytes);
  auto& list = t_free.by_class[c - 1];
  if (list.empty()) return ::operator new(c* kGranule);
  void* block = list.back();
  list.pop_back();
  return block;
}

void give_block(void* block, std::size_t bytes) noexcept {
  std::size_t c = size_class(bytes);
  if (c == 0 || c > kClasses) return ::operator delete(block);
  auto& list = t_free.by_class[c - 1];
  if (list.size() >= kMaxFreePerClass) return ::operator delete(block);
  if (list.capacity() == 0) {
    try {
      list.reserve(kMaxFreePerClass);
    } catch (const std::bad_alloc&) {
      return ::operator delete(block);
    }
  }
  list.push_back(block);
}

}  // namespace pgmux::net::detail
