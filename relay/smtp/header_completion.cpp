// The header scan of a submitted message: a small state machine over line
// starts; the rest of each field line and the whole body are copied in spans.
#include "relay/smtp/header_completion.hpp"

#include <cstring>

namespace oauth_relay::smtp {
namespace {

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

// RFC 5322 §3.6.8 ftext: printable ASCII but ':'.
bool is_ftext(char c) {
  return c >= 33 && c <= 126 && c != ':';
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

}  // namespace

header_completion::header_completion(submission_fields fields) : fields_(std::move(fields)) {}

void header_completion::emit(std::string_view text, std::string& out) {
  out.append(text);
  written_ += text.size();
}

void header_completion::note_field_name() {
  std::string_view name = pending_;
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  if (iequals(name, "date")) seen_ |= date;
  if (iequals(name, "message-id")) seen_ |= message_id;
  if (iequals(name, "from")) seen_ |= from;
  any_field_ = true;
}

void header_completion::end_header(bool separator, std::string& out, std::string_view line_end) {
  state_ = state::body;
  std::string fields(line_end);
  if (!(seen_ & date)) fields += "Date: " + fields_.date + "\r\n";
  if (!(seen_ & message_id)) fields += "Message-ID: " + fields_.message_id + "\r\n";
  if (!(seen_ & from)) fields += "From: " + fields_.from + "\r\n";
  added_ = (date | message_id | from) & ~seen_;
  if (added_ == 0) return;
  // A body line that followed the fields directly would read as part of the
  // last one added: the empty line the message lacked goes in with them.
  if (separator) fields += "\r\n";
  inserted_at_ = written_;
  inserted_size_ = fields.size();
  emit(fields, out);
}

void header_completion::feed(std::string_view in, std::string& out) {
  std::size_t pos = 0;
  const std::size_t n = in.size();
  while (pos < n) {
    const char c = in[pos];
    switch (state_) {
      case state::body:
        emit(in.substr(pos), out);
        return;
      case state::field: {
        const void* lf = std::memchr(in.data() + pos, '\n', n - pos);
        const std::size_t end =
            lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - in.data()) + 1 : n;
        emit(in.substr(pos, end - pos), out);
        pos = end;
        if (lf) state_ = state::line_start;
        break;
      }
      case state::line_start:
        if (is_wsp(c) && any_field_) {
          state_ = state::field;  // a continuation line (RFC 5322 §2.2.3)
        } else if (c == '\r') {
          pending_ = "\r";
          ++pos;
          state_ = state::line_start_cr;
        } else if (c == '\n') {
          end_header(false, out);  // an empty line ended by a bare LF
        } else if (is_ftext(c)) {
          pending_.clear();
          name_ended_ = false;
          state_ = state::name;
        } else {
          end_header(true, out);
        }
        break;
      case state::line_start_cr:
        end_header(c != '\n', out);  // CR LF: the empty line; anything else: a body line
        emit(pending_, out);
        pending_.clear();
        break;
      case state::name:
        if (c == ':' && !pending_.empty()) {
          note_field_name();
          emit(pending_, out);
          pending_.clear();
          state_ = state::field;
        } else if (pending_.size() < max_field_name &&
                   (is_wsp(c) || (is_ftext(c) && !name_ended_))) {
          name_ended_ = name_ended_ || is_wsp(c);
          pending_ += c;
          ++pos;
        } else {
          end_header(true, out);
          emit(pending_, out);
          pending_.clear();
        }
        break;
    }
  }
}

void header_completion::finish(std::string& out) {
  switch (state_) {
    case state::body:
      return;
    case state::line_start:
      end_header(false, out);
      return;
    case state::field:
      // The last field line had no line end (only possible without the DATA
      // decoder): the fields added start with one.
      end_header(false, out, "\r\n");
      return;
    case state::line_start_cr:
    case state::name:
      end_header(true, out);
      emit(pending_, out);
      pending_.clear();
      return;
  }
}

}  // namespace oauth_relay::smtp
