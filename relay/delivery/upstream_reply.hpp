// Pure parsing of what the upstream SMTP server says: replies (RFC 5321 §4.2)
// read incrementally off the wire and EHLO capabilities; the XOAUTH2 response.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "relay/smtp/reply.hpp"

namespace oauth_relay::smtp {

// RFC 5321 §4.5.3.1.5 says 512 octets per reply line, and §4.5.3.1 asks us to
// be liberal: real servers exceed it. Not counting the line ending.
inline constexpr std::size_t max_reply_line = 4096;
// A bound on one whole (multi-line) reply, so no server can grow our memory
// without end by sending continuation lines forever.
inline constexpr std::size_t max_reply_size = 64 * 1024;

// A reply the server got wrong: not a reply at all, or beyond our limits. The
// connection cannot be trusted to stay in step after it.
struct reply_error {
  std::string message;
};

// Reads one reply at a time from a byte stream. Lines end with CRLF (a bare
// LF is tolerated, a CR inside a line becomes a space); every line carries the same code; "250-"
// continues, "250 " (or "250" alone) ends the reply. The enhanced status code (RFC 3463) of the
// first line is split off the text of every line that carries it.
class reply_parser {
 public:
  enum class status { incomplete, complete, error };
  struct step {
    std::size_t consumed = 0;  // octets used; what follows belongs to the next reply
    status state = status::incomplete;
  };

  // Consumes input up to the end of one reply and no further (pipelined
  // replies stay in the caller's buffer). After `complete`, call take();
  // after `error`, error() says why and feed() consumes nothing more.
  step feed(std::string_view input);
  // The completed reply; the parser is then ready for the next one.
  reply take();
  const reply_error& error() const { return error_; }
  // Forgets everything, including a partial line.
  void reset();

 private:
  step fail(std::size_t consumed, std::string message);
  bool add_line(std::string_view line);  // false on error
  void finish();

  std::string partial_;
  reply reply_;
  std::size_t size_ = 0;
  status state_ = status::incomplete;
  reply_error error_;
};

// One complete reply from text that holds exactly that (tests, tools).
std::variant<reply, reply_error> parse_reply(std::string_view text);

// "2.1.0" style RFC 3463 code at the start of `text`, followed by a space or
// the end; its class must be `reply_class` (the first digit of the reply code).
// Returns the code's length, or 0.
std::size_t enhanced_code_length(std::string_view text, int reply_class);

// What an EHLO reply advertises (RFC 5321 §4.1.1.1; keywords case-insensitive).
struct ehlo_capabilities {
  std::string domain;                        // the first word of the first line
  bool pipelining = false;                   // RFC 2920
  bool starttls = false;                     // RFC 3207
  bool size = false;                         // RFC 1870
  std::uint64_t size_limit = 0;              // RFC 1870 §4: 0 means no fixed limit
  bool eight_bit_mime = false;               // RFC 6152
  bool smtputf8 = false;                     // RFC 6531
  bool enhanced_status_codes = false;        // RFC 2034
  bool dsn = false;                          // RFC 3461
  bool chunking = false;                     // RFC 3030
  std::vector<std::string> auth_mechanisms;  // RFC 4954, upper case, server order

  bool offers_auth(std::string_view mechanism) const;
};

ehlo_capabilities parse_ehlo(const reply& ehlo_reply);

// The SASL XOAUTH2 initial client response, base64-encoded, as Google
// documents it: "user=" USER ^A "auth=Bearer " TOKEN ^A ^A. Holds the token:
// it goes on the wire only, never into a log or an error message.
std::string xoauth2_initial_response(std::string_view user, std::string_view access_token);

}  // namespace oauth_relay::smtp
