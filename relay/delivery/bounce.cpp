// RFC 3464 delivery status notifications. The human-readable part comes
// first, then the machine-readable message/delivery-status, then the
// original (whole, or only its header with RET=HDRS).
#include "relay/delivery/bounce.hpp"

#include "common/text.hpp"

namespace oauth_relay::relay {
namespace {

// The original's header: everything up to the first empty line. In the
// first octets of a larger message (`cut`), a header that goes on past them
// ends at its last whole line.
std::string_view header_of(std::string_view content, bool cut) {
  auto end = content.find("\r\n\r\n");
  if (end != std::string_view::npos) return content.substr(0, end + 2);
  if (!cut) return content;
  auto last = content.rfind("\r\n");
  return last == std::string_view::npos ? std::string_view() : content.substr(0, last + 2);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string decode_xtext(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && i + 2 < text.size()) {
      const int high = hex_digit(text[i + 1]);
      const int low = hex_digit(text[i + 2]);
      const int c = high < 0 || low < 0 ? -1 : high * 16 + low;
      // The report's fields are header text (RFC 3464 §2.1.1, as Postfix
      // shows them): printable characters are shown decoded, while a
      // control, space or 8-bit byte stays encoded; a raw CR, LF or NUL
      // would end the field or the report early.
      if (c > 0x20 && c < 0x7F) {
        out += static_cast<char>(c);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

bool wants_failure_notice(const recipient& rcpt) {
  const auto& n = rcpt.params.notify;
  if (!n.specified) return true;  // RFC 3461 §4.1: default is FAILURE (and maybe DELAY)
  return !n.never && n.failure;
}

bool wants_delay_notice(const recipient& rcpt) {
  const auto& n = rcpt.params.notify;
  if (!n.specified) return true;
  return !n.never && n.delay;
}

std::optional<generated_message> make_bounce(const bounce_input& in) {
  if (in.original.sender.empty()) return std::nullopt;  // never bounce a bounce
  std::vector<const failed_recipient*> notify;
  for (const auto& f : in.failed) {
    if (in.delayed ? wants_delay_notice(f.rcpt) : wants_failure_notice(f.rcpt)) {
      notify.push_back(&f);
    }
  }
  if (notify.empty()) return std::nullopt;

  const std::string boundary = in.original_id + "/" + in.reporting_host;
  const std::string date = rfc5322_date(in.now);
  std::string m;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + in.reporting_host + ">\r\n";
  m += "To: <" + in.original.sender + ">\r\n";
  m += in.delayed ? "Subject: Delayed Mail (still being retried)\r\n"
                  : "Subject: Undelivered Mail Returned to Sender\r\n";
  m += "Date: " + date + "\r\n";
  m += "Message-ID: <" + in.original_id + (in.delayed ? ".delay@" : ".bounce@") +
       in.reporting_host + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary +
       "\"\r\n";
  m += "\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  m += "This is the mail relay at " + in.reporting_host + ".\r\n\r\n";
  if (in.delayed) {
    m += "Your message (queue id " + in.original_id +
         ") has not been delivered yet to the following recipients. This is a warning only: "
         "the relay keeps trying until " +
         rfc5322_date(in.retry_until) + ", and you need not send it again.\r\n\r\n";
  } else {
    m += "Your message (queue id " + in.original_id +
         ") could not be delivered to the following recipients:\r\n\r\n";
  }
  for (const auto* f : notify) {
    m += "<" + f->rcpt.address + ">: " + f->diagnostic + "\r\n";
  }
  m += "\r\n";
  // A warning needs only the header to say which message it is about.
  const bool too_large = in.original_size > bounce_quote_limit;
  const bool headers_asked = in.delayed || in.original.params.ret == smtp::dsn_ret::headers;
  if (!in.original_content) {
    m += "The message itself is not attached: its content could not be read from the "
         "queue.\r\n\r\n";
  } else if (too_large && !headers_asked) {
    m += "Only the header of your message is attached: it is " + std::to_string(in.original_size) +
         " bytes, more than the " + std::to_string(bounce_quote_limit) +
         " bytes returned whole.\r\n\r\n";
  }

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + in.reporting_host + "\r\n";
  m += "X-Oauth-Relay-Queue-ID: " + in.original_id + "\r\n";
  if (!in.original.params.envid.empty()) {
    m += "Original-Envelope-Id: " + decode_xtext(in.original.params.envid) + "\r\n";
  }
  m += "Arrival-Date: " + rfc5322_date(in.arrival_time) + "\r\n";
  for (const auto* f : notify) {
    m += "\r\n";
    if (!f->rcpt.params.orcpt.empty()) {
      m += "Original-Recipient: " + decode_xtext(f->rcpt.params.orcpt) + "\r\n";
    }
    m += "Final-Recipient: rfc822; " + f->rcpt.address + "\r\n";
    m += in.delayed ? "Action: delayed\r\n" : "Action: failed\r\n";
    m += "Status: " + f->status + "\r\n";
    if (f->from_upstream) {
      m += "Remote-MTA: dns; " + in.upstream_host + "\r\n";
      m += "Diagnostic-Code: smtp; " + f->diagnostic + "\r\n";
    } else {
      m += "Diagnostic-Code: X-Oauth-Relay; " + f->diagnostic + "\r\n";
    }
    m += "Last-Attempt-Date: " + date + "\r\n";
    if (in.delayed) m += "Will-Retry-Until: " + rfc5322_date(in.retry_until) + "\r\n";
  }
  m += "\r\n";

  // RFC 6522 §3: the third part is optional; without the content there is
  // nothing to put in it (an empty message/rfc822 would not be a message).
  if (in.original_content) {
    m += "--" + boundary + "\r\n";
    if (headers_asked || too_large) {
      m += "Content-Description: Undelivered message headers\r\n"
           "Content-Type: text/rfc822-headers\r\n\r\n";
      m += header_of(*in.original_content, too_large);
    } else {
      m += "Content-Description: Undelivered message\r\nContent-Type: message/rfc822\r\n\r\n";
      m += *in.original_content;
    }
    if (m.size() < 2 || m.compare(m.size() - 2, 2, "\r\n") != 0) m += "\r\n";
    m += "\r\n";
  }
  m += "--" + boundary + "--\r\n";

  generated_message out;
  out.env.sender = "";  // the null reverse-path: nothing ever answers a bounce
  out.env.account = in.original.account;
  out.env.params.smtputf8 = in.original.params.smtputf8;
  recipient to;
  to.address = in.original.sender;
  out.env.recipients.push_back(std::move(to));
  out.content = std::move(m);
  return out;
}

}  // namespace oauth_relay::relay
