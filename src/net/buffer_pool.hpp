// Per-thread free list of fixed-size I/O buffers, so that idle clients hold none and busy ones do not
// allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgmux::net {

inline constexpr std::size_t kBufferSize = 16 * 1024;

// A borrowed buffer with read/write cursors: bytes in [begin, end) are received and not yet consumed.
class IoBuffer {
 public:
  IoBuffer();   // borrows from this thread's free list
  ~IoBuffer();  // gives it back
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;

  std::string_view data() const { return {storage_ + begin_, end_ - begin_}; }
  bool empty() const { return begin_ == end_; }
  char* mutable_data() { return storage_ + begin_; }
  char* space() { return storage_ + end_; }
  std::size_t space_size() const { return capacity_ - end_; }
  // Room for one message of `n` bytes that must be seen whole although it is larger than a pooled buffer (a
  // named Parse with a long query): the buffer moves to the heap until it is given back.
  void ensure_capacity(std::size_t n);
  void received(std::size_t n) { end_ += static_cast<std::uint32_t>(n); }
  void consume(std::size_t n) {
    begin_ += static_cast<std::uint32_t>(n);
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Removes n bytes at `offset` from the start of the data (a reply pgmux must not pass on).
  void erase(std::size_t offset, std::size_t n);
  // Replaces n bytes at `offset` with `with` (a reply pgmux rewrites), growing the buffer if it must.
  void replace(std::size_t offset, std::size_t n, std::string_view with);
  // Moves unconsumed bytes (a partial header) to the front so the next read has room.
  void compact();

 private:
  friend class IoBufferSlot;
  struct Unborrowed {};
  explicit IoBuffer(Unborrowed) : storage_(nullptr) {}
  void borrow();
  void give_back();

  char* storage_;
  // 32-bit cursors: a message is at most max_packet_size (32-bit), and an idle client's relay is smaller.
  std::uint32_t capacity_ = kBufferSize;
  std::uint32_t begin_ = 0, end_ = 0;
};

// What std::optional<IoBuffer> does, in the size of the buffer alone (no engaged flag and its padding): a
// null storage pointer means none is borrowed. Every client's relay holds two.
class IoBufferSlot {
 public:
  IoBufferSlot() : buffer_(IoBuffer::Unborrowed{}) {}
  IoBufferSlot(const IoBufferSlot&) = delete;
  IoBufferSlot& operator=(const IoBufferSlot&) = delete;

  explicit operator bool() const { return buffer_.storage_ != nullptr; }
  IoBuffer& operator*() { return buffer_; }
  IoBuffer* operator->() { return &buffer_; }
  void emplace() {
    buffer_.give_back();
    buffer_.borrow();
  }
  void reset() { buffer_.give_back(); }

 private:
  IoBuffer buffer_;
};

}  // namespace pgmux::net
