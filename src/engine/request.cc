#include "engine/request.h"

namespace qb {

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

bool RequestStream::Next(StreamEvent* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [&] { return !events_.empty() || delivered_; };
  if (timeout == std::chrono::milliseconds::max()) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_for(lock, timeout, ready)) {
    return false;
  }
  if (events_.empty()) return false;
  *ev = std::move(events_.front());
  events_.pop_front();
  if (ev->kind == StreamEvent::Kind::kFinished) delivered_ = true;
  return true;
}

bool RequestStream::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_;
}

void RequestStream::Push(StreamEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (ev.kind == StreamEvent::Kind::kFinished) finished_ = true;
    ev.time = std::chrono::steady_clock::now();
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

}  // namespace qb
