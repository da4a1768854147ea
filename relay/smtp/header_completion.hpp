// What the relay adds to a message as a submission server (RFC 6409 §8): a
// Date:, a Message-ID: and a From: when the header has none, inserted where
// the header ends; every octet the client sent is kept as it was sent. Pure,
// streaming and bounded: it sees the message as the DATA decoder puts it out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace oauth_relay::smtp {

// A field name is at most a line (RFC 5322 §2.1.1: 998 characters); a line
// start that runs longer without a colon is no header field. It is all the
// scanner ever holds back.
inline constexpr std::size_t max_field_name = 998;

// The fields to add when missing, without their names or line ends.
struct submission_fields {
  std::string date;        // RFC 5322 §3.3 date-time, the time the message arrived
  std::string message_id;  // "<left@right>" (RFC 5322 §3.6.4)
  std::string from;        // the envelope sender as an address (RFC 6409 §8.1)
};

// Copies a message through, looking at the start of each line of its header
// for the fields' names (case-insensitive, obsolete white space before the
// colon allowed, continuation lines skipped). The header ends at the first
// empty line, at the first line that is not a field (the missing fields then
// go before it, with the empty line that separates a header from a body),
// or at the end of the message.
class header_completion {
 public:
  // Bits of added().
  static constexpr unsigned date = 1;
  static constexpr unsigned message_id = 2;
  static constexpr unsigned from = 4;

  explicit header_completion(submission_fields fields);

  // Appends `in` to `out`, with the missing fields inserted when the header
  // ends inside it. A line start that may still be a field name is held back
  // until it is known (at most max_field_name octets and its white space).
  void feed(std::string_view in, std::string& out);
  // The message ended: appends what was held back, and the missing fields
  // when the header never ended (a line without a CR LF first gets one).
  void finish(std::string& out);

  // The header ended: feed() copies octets through unchanged from now on.
  bool passing_through() const { return state_ == state::body; }
  // Which fields were added (date | message_id | from); 0 before the header ends.
  unsigned added() const { return added_; }
  // Where the insertion starts in the whole output, and its length (0: none).
  std::size_t inserted_at() const { return inserted_at_; }
  std::size_t inserted_size() const { return inserted_size_; }

 private:
  enum class state { line_start, line_start_cr, name, field, body };

  void emit(std::string_view text, std::string& out);
  // The header ended; `separator` when a body line follows without an empty
  // line; `line_end` goes before the fields added, if any.
  void end_header(bool separator, std::string& out, std::string_view line_end = {});
  void note_field_name();

  submission_fields fields_;
  state state_ = state::line_start;
  std::string pending_;      // a line start not yet known to be a field
  bool name_ended_ = false;  // white space followed the name: only more of it or ':' may come
  bool any_field_ = false;   // a field was seen: a line starting with white space continues it
  unsigned seen_ = 0;
  unsigned added_ = 0;
  std::size_t written_ = 0;
  std::size_t inserted_at_ = 0;
  std::size_t inserted_size_ = 0;
};

}  // namespace oauth_relay::smtp
