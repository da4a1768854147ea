// An in-process stand-in for smtp.gmail.com on loopback: real TLS (STARTTLS
// like port 587 or implicit like 465), Gmail's replies and XOAUTH2 dance, and
// fault switches, for tests and benchmarks. Runs its own thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fakes/test_pki.hpp"

namespace oauth_relay::fakes {

class fake_gmail {
 public:
  enum class mode { starttls, implicit };

  struct message {
    std::string user;                        // the account that authenticated
    std::string sender;                      // MAIL FROM address
    std::vector<std::string> recipients;     // the accepted RCPT TO addresses
    std::string content;                     // after dot-unstuffing, without the final "."
    std::string mail_command;                // the MAIL line as received, parameters included
    std::vector<std::string> rcpt_commands;  // every RCPT line of the transaction
    bool pipelined = false;                  // MAIL, every RCPT and DATA came in one read
    std::chrono::steady_clock::time_point accepted_at;  // when its final 250 was decided
  };

  // Decides whether an XOAUTH2 login is good. Unset: every token is good.
  using token_validator = std::function<bool(const std::string& user, const std::string& token)>;

  // Listens on 127.0.0.1 (a free port, or `port`: a Gmail that comes back
  // where it was) and serves at once. `certificate` is what the server
  // presents (issue it with test_pki).
  fake_gmail(mode m, pem_pair certificate, std::uint16_t port = 0);
  ~fake_gmail();
  fake_gmail(const fake_gmail&) = delete;
  fake_gmail& operator=(const fake_gmail&) = delete;

  std::uint16_t port() const;
  // Stops serving and closes every connection (the destructor does it too).
  void stop();

  void set_token_validator(token_validator validator);

  // --- fault switches: thread-safe, take effect on the next event -----------
  // Greet the next `n` connections with 421 and close.
  void greet_421(int n);
  // Answer "451 4.3.0" after the content of the next `n` messages.
  void fail_data_451(int n);
  // Close the connection after the content of the next `n` messages, before replying.
  void drop_after_data(int n);
  // Gmail's daily sending limit: once `n` messages were accepted in all,
  // MAIL gets "550 5.4.5 Daily user sending limit exceeded" (0: no limit).
  // Setting it again starts a new day: the count starts from zero.
  void daily_limit(std::size_t n);
  // The next `n` MAIL commands get "421 4.7.0 Try again later, closing
  // connection" and the connection is closed, as Gmail does to a client
  // that sends too fast.
  void throttle_mail_421(int n);
  // Each MAIL command gets that 421 with probability `p` (0 to 1), drawn
  // from a generator seeded with `seed` so a failing run can be repeated.
  void throttle_mail_421_at_random(double p, unsigned seed);
  // MAIL commands answered with 421 so far, by either switch.
  std::size_t throttled_mails() const;
  // RCPT TO for this address gets Gmail's 550 5.1.1 "does not exist".
  void reject_recipient(std::string address);
  // Exchange Online's SendAsDenied: a message whose MAIL FROM is `sender`
  // and differs from the account that logged in is refused at the end of
  // DATA with "554 5.2.252 SendAsDenied; <user> not allowed to send as
  // <sender>; STOREDRV.Submission.Exception:SendAsDeniedException...".
  void deny_send_as(std::string sender);
  // Every reply (greeting included) waits this long first: a slow upstream.
  void set_reply_delay(std::chrono::milliseconds delay);
  // false: a plain server whose EHLO offers AUTH but no STARTTLS (mode starttls only).
  void set_offer_starttls(bool offer);
  // The next `n` AUTH XOAUTH2 fail (334 dance, 535) even with a good token.
  void reject_auth(int n);
  // Exchange Online's way: a failed XOAUTH2 is answered with `reply` (a
  // whole reply, CRLF-terminated, e.g. "535 5.7.3 Authentication
  // unsuccessful\r\n") directly, without the 334 JSON step. Empty (the
  // default): Gmail's dance.
  void set_auth_failure_reply(std::string reply);
  // What EHLO advertises besides Gmail's list (PIPELINING and SMTPUTF8 are on
  // by default, DSN off, as Gmail does).
  void set_offer_pipelining(bool offer);
  void set_offer_smtputf8(bool offer);
  void set_offer_dsn(bool offer);
  // Bytes sent right after "220 2.0.0 Ready to start TLS", in the same write:
  // a STARTTLS command-injection attempt the client must discard.
  void inject_after_starttls(std::string bytes);

  // --- what it saw ----------------------------------------------------------
  std::vector<message> messages() const;
  std::size_t message_count() const;  // messages().size() without the copy
  // True when at least `n` messages were delivered within `timeout`.
  bool wait_for_messages(std::size_t n, std::chrono::milliseconds timeout) const;
  // Every command line received outside DATA, in order, over all connections;
  // AUTH data is shown as "AUTH XOAUTH2 ********" and the empty line a client
  // sends in the XOAUTH2 error dance as "".
  std::vector<std::string> commands() const;
  std::size_t connections() const;
  std::size_t tls_handshakes() const;  // completed
  std::size_t auth_attempts() const;   // AUTH commands, with or without TLS
  std::size_t logins() const;          // 235
  std::size_t auth_failures() const;   // 535
  // Mail transactions begun (MAIL answered 250) whose final reply is not yet written.
  std::size_t transactions_open() const;
  // For each user that logged in: the most connections authenticated as that
  // user at one time (a connection counts from its 235 until it closes).
  std::map<std::string, std::size_t> peak_logins_per_user() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace oauth_relay::fakes
