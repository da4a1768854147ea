// An account's claimed messages waiting for a connection, in two lines: the
// queue's mail oldest first, and fresh arrivals (the share of each look at
// the queue that goes to mail that came in since the last). A connection
// takes from the two in turn, so a long backlog neither keeps new mail
// waiting until it is gone nor is overtaken for good by a steady stream of
// new mail: each line has at least half of the account's connections' time.
#pragma once

#include <cstddef>
#include <deque>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

class waiting_mail {
 public:
  void push(queued_message m, bool fresh) { (fresh ? fresh_ : oldest_).push_back(std::move(m)); }

  bool empty() const { return oldest_.empty() && fresh_.empty(); }
  std::size_t size() const { return oldest_.size() + fresh_.size(); }

  // The next message for a connection: from each line in turn while both
  // have mail, else from the one that has. Not to be called when empty().
  queued_message pop() {
    const bool from_fresh = fresh_.empty() ? false : oldest_.empty() || fresh_turn_;
    auto& line = from_fresh ? fresh_ : oldest_;
    fresh_turn_ = !from_fresh;
    queued_message m = std::move(line.front());
    line.pop_front();
    return m;
  }

  // Everything, the oldest line first; both lines are left empty.
  std::deque<queued_message> take_all() {
    std::deque<queued_message> all;
    all.swap(oldest_);
    for (auto& m : fresh_) all.push_back(std::move(m));
    fresh_.clear();
    return all;
  }

  // Takes message `id` out of its line; false when it is not waiting.
  bool erase(std::string_view id) {
    for (auto* line : {&oldest_, &fresh_}) {
      for (auto it = line->begin(); it != line->end(); ++it) {
        if (it->id == id) {
          line->erase(it);
          return true;
        }
      }
    }
    return false;
  }

 private:
  std::deque<queued_message> oldest_;
  std::deque<queued_message> fresh_;
  bool fresh_turn_ = true;  // both have mail: which line gives the next one
};

// The messages of one look at the queue in the order they are claimed, each
// with the line it goes to (true: fresh), taken out of `due`.
inline std::vector<std::pair<queued_message, bool>> claims_of(due_mail& due) {
  std::vector<std::pair<queued_message, bool>> out;
  out.reserve(due.fresh.size() + due.oldest.size());
  for (auto& m : due.fresh) out.emplace_back(std::move(m), true);
  for (auto& m : due.oldest) out.emplace_back(std::move(m), false);
  return out;
}

}  // namespace oauth_relay::relay
