#include <utility>

#include "ppsim/calibrate/backend.h"

namespace ppsim::cal {

Allocator::~Allocator() {
  for (auto& [bytes, p] : cache_) backend_.raw_free(p);
}

void* Allocator::allocate(std::size_t bytes) {
  if (bytes == 0) bytes = 1;
  const std::lock_guard lock(mutex_);
  void* p = nullptr;
  if (auto it = cache_.find(bytes); it != cache_.end()) {  // exact size: no fragmentation games
    p = it->second;
    cache_.erase(it);
  } else {
    p = backend_.raw_alloc(bytes);
  }
  in_use_ += static_cast<std::int64_t>(bytes);
  if (in_use_ > peak_) peak_ = in_use_;
  return p;
}

void Allocator::release(void* p, std::size_t bytes) {
  if (p == nullptr) return;
  if (bytes == 0) bytes = 1;
  const std::lock_guard lock(mutex_);
  in_use_ -= static_cast<std::int64_t>(bytes);
  cache_.emplace(bytes, p);
}

Tensor::Tensor(Allocator& a, std::int64_t elements, int element_bytes)
    : alloc_(&a), elements_(elements), element_bytes_(element_bytes) {
  ptr_ = a.allocate(bytes());
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    reset();
    alloc_ = std::exchange(o.alloc_, nullptr);
    ptr_ = std::exchange(o.ptr_, nullptr);
    elements_ = std::exchange(o.elements_, 0);
    element_bytes_ = std::exchange(o.element_bytes_, 0);
  }
  return *this;
}

void Tensor::reset() {
  if (alloc_ && ptr_) alloc_->release(ptr_, bytes());
  alloc_ = nullptr;
  ptr_ = nullptr;
  elements_ = 0;
}

}  // namespace ppsim::cal
