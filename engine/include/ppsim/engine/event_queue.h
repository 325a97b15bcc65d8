#pragma once
/// @file event_queue.h
/// @brief The engine's event queue behind a small interface (push, pop, empty), with two
/// implementations that the same tests run over: a binary heap (std::priority_queue) and
/// a 4-ary heap (half the levels; its four children share a cache line).
#include <concepts>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "ppsim/engine/units.h"

namespace ppsim {

/// @brief 16 bytes: one unsigned 128-bit key, time in the high word, then seq (36 bits) |
/// target (27 bits) | flag (1 bit). Ordering by the key is ordering by (time, seq), and
/// seq is unique, so ties break the same way on every run; one wide compare keeps the
/// heaps' sift loops free of data-dependent branches.
struct Event {
  unsigned __int128 key{0};
  static constexpr int kTargetBits = 27;
  static Event make(TimeNs t, std::uint64_t seq, std::uint32_t target, bool flag) {
    const std::uint64_t low = (seq << (kTargetBits + 1)) | (static_cast<std::uint64_t>(target) << 1) | (flag ? 1u : 0u);
    return {(static_cast<unsigned __int128>(static_cast<std::uint64_t>(t.ns)) << 64) | low};
  }
  [[nodiscard]] TimeNs time() const { return TimeNs{static_cast<std::int64_t>(key >> 64)}; }
  [[nodiscard]] std::uint32_t target() const {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(key) >> 1) & ((1u << kTargetBits) - 1));
  }
  [[nodiscard]] bool flag() const { return (static_cast<std::uint64_t>(key) & 1u) != 0; }
};
static_assert(sizeof(Event) == 16);

/// @brief The interface every queue meets: earliest key first.
template <class Q>
concept EventQueue = requires(Q q, const Q cq, Event e) {
  q.push(e);
  { q.pop() } -> std::same_as<Event>;
  { cq.empty() } -> std::same_as<bool>;
};

/// @brief std::priority_queue over a vector: a binary heap.
class BinaryHeapQueue {
 public:
  void push(Event e) { heap_.push(e); }
  Event pop() {
    const Event e = heap_.top();
    heap_.pop();
    return e;
  }
  [[nodiscard]] bool empty() const { return heap_.empty(); }

 private:
  struct After {
    bool operator()(const Event& a, const Event& b) const { return a.key > b.key; }
  };
  std::priority_queue<Event, std::vector<Event>, After> heap_;
};

/// @brief A 4-ary min-heap: children of i are 4i+1 .. 4i+4.
class QuaternaryHeapQueue {
 public:
  void push(Event e) {
    std::size_t i = heap_.size();
    heap_.push_back(e);
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (heap_[parent].key <= e.key) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  Event pop() {
    const Event top = heap_.front();
    const Event last = heap_.back();
    heap_.pop_back();
    const std::size_t n = heap_.size();
    if (n == 0) return top;
    std::size_t i = 0;
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      const std::size_t stop = first + 4 < n ? first + 4 : n;
      for (std::size_t c = first + 1; c < stop; ++c)
        if (heap_[c].key < heap_[best].key) best = c;
      if (last.key <= heap_[best].key) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = last;
    return top;
  }
  [[nodiscard]] bool empty() const { return heap_.empty(); }

 private:
  std::vector<Event> heap_;
};

static_assert(EventQueue<BinaryHeapQueue> && EventQueue<QuaternaryHeapQueue>);

/// @brief Which queue the engine runs on (SimOptions::queue).
enum class EventQueueKind : std::uint8_t { BinaryHeap, QuaternaryHeap };

}  // namespace ppsim
