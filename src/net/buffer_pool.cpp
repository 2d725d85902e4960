// Per-thread free list of fixed-size I/O buffers, so that idle clients hold none and busy ones do not
// allocate.
#include "net/buffer_pool.hpp"

#include <cstring>
#include <vector>

namespace pgmux::net {
namespace {

// Each worker thread runs its own sessions, so a thread-local list needs no lock. Buffers beyond the cap are
// freed, so memory returns after a burst.
constexpr std::size_t kMaxFreeBuffers = 512;

struct FreeList {
  std::vector<char*> buffers;
  ~FreeList() {
    for (char* b : buffers) delete[] b;
  }
};
thread_local FreeList t_free;

}  // namespace

IoBuffer::IoBuffer() {
  borrow();
}

IoBuffer::~IoBuffer() {
  give_back();
}

void IoBuffer::borrow() {
  if (t_free.buffers.empty()) {
    storage_ = new char[kBufferSize];
  } else {
    storage_ = t_free.buffers.back();
    t_free.buffers.pop_back();
  }
}

void IoBuffer::give_back() {
  if (!storage_) return;
  if (capacity_ == kBufferSize && t_free.buffers.size() < kMaxFreeBuffers)
    t_free.buffers.push_back(storage_);
  else
    delete[] storage_;
  storage_ = nullptr;
  capacity_ = kBufferSize;
  begin_ = end_ = 0;
}

void IoBuffer::ensure_capacity(std::size_t n) {
  if (n <= capacity_) return;
  char* bigger = new char[n];
  std::memcpy(bigger, storage_ + begin_, end_ - begin_);
  if (capacity_ == kBufferSize && t_free.buffers.size() < kMaxFreeBuffers)
    t_free.buffers.push_back(storage_);
  else
    delete[] storage_;
  storage_ = bigger;
  capacity_ = static_cast<std::uint32_t>(n);
  end_ -= begin_;
  begin_ = 0;
}

void IoBuffer::erase(std::size_t offset, std::size_t n) {
  char* at = storage_ + begin_ + offset;
  std::memmove(at, at + n, end_ - (begin_ + offset + n));
  end_ -= static_cast<std::uint32_t>(n);
  if (begin_ == end_) begin_ = end_ = 0;
}

void IoBuffer::replace(std::size_t offset, std::size_t n, std::string_view with) {
  compact();
  std::size_t size = end_;
  std::size_t new_size = size - n + with.size();
  if (new_size > capacity_) ensure_capacity(new_size);
  char* at = storage_ + offset;
  std::memmove(at + with.size(), at + n, size - offset - n);
  std::memcpy(at, with.data(), with.size());
  end_ = static_cast<std::uint32_t>(new_size);
}

void IoBuffer::compact() {
  if (begin_ == 0) return;
  std::memmove(storage_, storage_ + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

}  // namespace pgmux::net
