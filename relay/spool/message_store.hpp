// What an SMTP session needs of the spool: a draft to write the content into
// as it arrives, and a commit that answers once the message is durably
// stored. The spool is the real one; unit tests put a stand-in behind it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "relay/envelope.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

// A message being received. Not thread-safe: one session writes it.
// Destroyed without a commit, it leaves nothing behind.
class message_draft {
 public:
  virtual ~message_draft() = default;
  virtual const std::string& id() const = 0;
  virtual std::uint64_t size() const = 0;
  // Never throws: a write failure is kept and reported by the commit.
  virtual void append(std::string_view bytes) = 0;
};

class message_store {
 public:
  virtual ~message_store() = default;
  virtual std::unique_ptr<message_draft> begin() = 0;
  // Durably stores the draft with its envelope: success only after the
  // transaction is synced (the session's 250); a failure says why (no_space
  // or failed: a 4xx).
  virtual boost::asio::awaitable<spool_result<void>> commit(std::unique_ptr<message_draft> draft,
                                                            envelope env) = 0;
};

}  // namespace oauth_relay::relay
