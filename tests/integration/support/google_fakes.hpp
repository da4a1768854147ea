// The in-process Google for tests that break things: a fake token endpoint
// and a fake Gmail that can go away and come back on the same port, with the
// config body that points oauth-relayd at both.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {

class google_fakes {
 public:
  static constexpr const char* account = "sender@example.com";
  static constexpr const char* refresh_token = "refresh-1";

  google_fakes();
  ~google_fakes();
  google_fakes(const google_fakes&) = delete;
  google_fakes& operator=(const google_fakes&) = delete;

  fakes::fake_oauth& oauth() { return oauth_; }
  // The Gmail running now (throws while it is stopped).
  fakes::fake_gmail& gmail();

  // The YAML body for relay_process: upstream, oauth and the one account
  // pointed at the fakes. `upstream_extra` lines go under `upstream:` (two
  // spaces of indentation), `extra` at the top level.
  std::string config(const std::string& extra = "", const std::string& upstream_extra = "") const;
  // What `oauth-relayctl import` does: the refresh token into state_dir's
  // store, sealed with the key in `key_file`.
  void store_token(const std::filesystem::path& state_dir,
                   const std::filesystem::path& key_file) const;

  // Gmail goes away: its port refuses connections until start_gmail()
  // brings up a new one there. What the old one received is kept.
  void stop_gmail();
  void start_gmail();

  // What every incarnation of the fake Gmail received, in order.
  std::vector<fakes::fake_gmail::message> messages() const;
  std::size_t message_count() const;

 private:
  temp_dir scratch_;
  fakes::test_pki pki_;
  fakes::fake_oauth oauth_{pki_};
  fakes::pem_pair certificate_;
  std::filesystem::path ca_file_;
  std::uint16_t gmail_port_ = 0;
  std::unique_ptr<fakes::fake_gmail> gmail_;
  std::vector<fakes::fake_gmail::message> earlier_;  // from stopped incarnations
};

// The content without the Received header the relay put in front (the header
// ends at the first CRLF not followed by a tab); "" when there is none.
std::string without_received(const std::string& content);

// `content` (after the Received header) without the fields the relay added
// to its header (RFC 6409 §8): checks they are exactly a Date:, the
// Message-ID <ID.TIME@relay.test> of queue id `id` and From: `sender`, in a
// block of their own, and returns the rest: the message as the client sent
// it. "<no fields added>" when there is no such block.
std::string without_added_fields(const std::string& content, const std::string& id,
                                 const std::string& sender = "sender@example.com");

// A test message named by `tag`: Subject and Message-ID carry it, and about
// `size` octets of body lines follow, derived from the tag so the content can
// be recomputed to check what arrived. Some lines start with a dot (one is a
// lone "."), so dot-stuffing is exercised on the way in and out.
struct test_message {
  std::string tag;
  std::string content;          // as it must arrive: CRLF lines, not dot-stuffed
  std::string stuffed() const;  // as a client sends it, without the final ".\r\n"
};
test_message make_test_message(const std::string& tag, std::size_t size);
// The tag in "Message-ID: <TAG@prove.test>", or "" when there is none.
std::string tag_of(const std::string& content);

}  // namespace oauth_relay::test_support
