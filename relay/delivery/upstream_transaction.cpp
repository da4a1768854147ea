// One SMTP transaction on an authenticated upstream connection (RFC 5321
// §3.3, pipelined per RFC 2920 when offered): MAIL, RCPT, DATA and the content,
// with a result per recipient. Part of upstream_client (upstream_client_impl.hpp).
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/use_awaitable.hpp>

#include "relay/delivery/dot_stuffer.hpp"
#include "relay/delivery/upstream_client_impl.hpp"

namespace oauth_relay::relay {

namespace asio = boost::asio;
using smtp::make_reply;

namespace {

std::string notify_text(const smtp::dsn_notify& n) {
  if (n.never) return "NEVER";
  std::string out;
  auto add = [&](bool on, const char* word) {
    if (!on) return;
    if (!out.empty()) out += ',';
    out += word;
  };
  add(n.success, "SUCCESS");
  add(n.failure, "FAILURE");
  add(n.delay, "DELAY");
  return out;
}

}  // namespace

// --- send ------------------------------------------------------------------

std::string upstream_client::impl::mail_command(const envelope& env, std::uint64_t size,
                                                bool eight_bit) const {
  std::string line = "MAIL FROM:<" + env.sender + ">";
  if (caps_.size) line += " SIZE=" + std::to_string(size);
  // RFC 6152: declare 8-bit content when the server takes it. Without
  // 8BITMIME it is sent anyway: Gmail advertises it, and refusing would be
  // worse than what nearly every server does with such octets.
  if (caps_.eight_bit_mime && (eight_bit || env.params.body == smtp::body_type::eight_bit_mime)) {
    line += " BODY=8BITMIME";
  }
  if (env.params.smtputf8) line += " SMTPUTF8";
  if (caps_.dsn) {
    if (env.params.ret == smtp::dsn_ret::full) line += " RET=FULL";
    if (env.params.ret == smtp::dsn_ret::headers) line += " RET=HDRS";
    if (!env.params.envid.empty()) line += " ENVID=" + env.params.envid;
  }
  return line + "\r\n";
}

std::string upstream_client::impl::rcpt_command(const recipient& r) const {
  std::string line = "RCPT TO:<" + r.address + ">";
  if (caps_.dsn) {
    if (r.params.notify.specified) line += " NOTIFY=" + notify_text(r.params.notify);
    if (!r.params.orcpt.empty()) line += " ORCPT=" + r.params.orcpt;
  }
  return line + "\r\n";
}

asio::awaitable<bool> upstream_client::impl::write_content(message_content& content,
                                                           send_result& result) {
  // One piece in, one write out (at most a piece and a half after
  // stuffing), so a 35 MB message is never whole in memory; the last piece
  // goes out with the end of data.
  dot_stuffer stuffer;
  std::string out;
  out.reserve(content_chunk + content_chunk / 2 + 8);
  content.rewind();
  for (;;) {
    auto piece = content.next();
    if (!piece) {
      // Without its end of data the server drops what it got: nothing of a
      // content that is not the one accepted is delivered.
      result.content_failure = piece.error();
      close("cannot read the message content: " + piece.error().detail);
      co_return false;
    }
    if (piece->empty()) break;
    stuffer.feed(*piece, out);
    if (out.size() >= content_chunk) {
      const bool sent = co_await write(out, "the message content");
      if (!sent) co_return false;
      out.clear();
    }
  }
  stuffer.finish(out);
  const bool sent = co_await write(out, "the message content");
  co_return sent;
}

void upstream_client::impl::defer_undecided(send_result& result, std::vector<bool>& decided) {
  defer_undecided(result, decided, failure_text_);
}
void upstream_client::impl::defer_undecided(send_result& result, std::vector<bool>& decided,
                                            const std::string& why) {
  const smtp::reply r = make_reply(451, "4.4.2", "upstream: " + why);
  for (std::size_t i = 0; i < result.recipients.size(); ++i) {
    if (decided[i]) continue;
    result.recipients[i].status = delivery_status::deferred;
    result.recipients[i].reply = r;
    result.recipients[i].from_upstream = false;
    decided[i] = true;
  }
  if (result.message.empty()) result.message = why;
}

void upstream_client::impl::decide_undecided(send_result& result, std::vector<bool>& decided,
                                             const smtp::reply& r) {
  // 530 (authentication required, RFC 4954 §6) is about this session, not
  // the message: it must never turn into a bounce.
  const auto status = r.positive()                     ? delivery_status::delivered
                      : r.transient() || r.code == 530 ? delivery_status::deferred
                                                       : delivery_status::failed;
  for (std::size_t i = 0; i < result.recipients.size(); ++i) {
    if (decided[i]) continue;
    result.recipients[i].status = status;
    result.recipients[i].reply = r;
    result.recipients[i].from_upstream = true;
    decided[i] = true;
  }
}

void upstream_client::impl::note_closing(const smtp::reply& r) {
  if (r.code == 421) fail(failure::closed, "upstream closing: " + smtp::to_line(r));
}

asio::awaitable<void> upstream_client::impl::reset_transaction() {
  if (state_ == state::broken) co_return;
  const bool sent = co_await write("RSET\r\n", "RSET");
  if (!sent) co_return;
  auto r = co_await read_reply("RSET");
  if (r && r->code != 250) fail(failure::protocol, "upstream refused RSET: " + smtp::to_line(*r));
}

asio::awaitable<send_result> upstream_client::impl::send(const envelope& env,
                                                         message_content& content) {
  send_result result;
  std::vector<bool> decided(env.recipients.size(), false);
  for (const auto& rcpt : env.recipients) {
    result.recipients.push_back(recipient_result{rcpt.address, delivery_status::deferred, {}});
  }
  if (state_ != state::ready || !authenticated_) {
    const std::string why = state_ != state::ready ? "connection not usable: " + failure_text_
                                                   : std::string("not authenticated");
    defer_undecided(result, decided, why);
    co_return result;
  }
  if (env.params.smtputf8 && !caps_.smtputf8) {
    // RFC 6531 §3.4: without SMTPUTF8 downstream the message cannot be relayed.
    const auto r = make_reply(553, "5.6.7",
                              "the upstream does not support SMTPUTF8, which this message needs");
    for (auto& rr : result.recipients) {
      rr.status = delivery_status::failed;
      rr.reply = r;
    }
    result.message = smtp::to_line(r);
    co_return result;
  }

  // SIZE counts the CR LF the client adds to a content without one (RFC
  // 1870 §3: the octets sent, before stuffing). The 8-bit flag was noted
  // when the message was stored, so MAIL needs no pass over the content.
  const bool needs_crlf = content.size() > 0 && !content.ends_with_crlf();
  const std::uint64_t size = content.size() + (needs_crlf ? 2 : 0);
  const std::string mail = mail_command(env, size, content.eight_bit());
  std::vector<std::string> rcpts;
  for (const auto& r : env.recipients) rcpts.push_back(rcpt_command(r));

  std::size_t accepted = 0;
  auto on_rcpt_reply = [&](std::size_t i, const smtp::reply& r) {
    result.recipients[i].reply = r;
    result.recipients[i].from_upstream = true;
    if (r.positive()) {
      ++accepted;  // decided after DATA
      return;
    }
    result.recipients[i].status =
        r.transient() || r.code == 530 ? delivery_status::deferred : delivery_status::failed;
    decided[i] = true;
    note_closing(r);
  };

  std::optional<smtp::reply> data_reply;
  if (caps_.pipelining) {
    // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write, then the replies in order.
    std::string batch = mail;
    for (const auto& r : rcpts) batch += r;
    batch += "DATA\r\n";
    const bool sent = co_await write(batch, "MAIL, RCPT and DATA");
    if (!sent) {
      defer_undecided(result, decided);
      co_return result;
    }
    result.mail_reply = co_await read_reply("MAIL");
    if (!result.mail_reply) {
      defer_undecided(result, decided);
      co_return result;
    }
    note_closing(*result.mail_reply);
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      auto r = co_await read_reply("RCPT");
      if (!r) {
        defer_undecided(result, decided);
        co_return result;
      }
      if (result.mail_reply->positive()) on_rcpt_reply(i, *r);
    }
    data_reply = co_await read_reply("DATA");
    if (!data_reply) {
      if (!result.mail_reply->positive()) decide_undecided(result, decided, *result.mail_reply);
      defer_undecided(result, decided);
      co_return result;
    }
    if (!result.mail_reply->positive()) {
      // Every RCPT and DATA got "503 no MAIL" in turn; nothing is open,
      // unless a confused server took DATA anyway: then end it empty.
      decide_undecided(result, decided, *result.mail_reply);
      result.message = "MAIL refused: " + smtp::to_line(*result.mail_reply);
      if (data_reply->code == 354) {
        const bool ended = co_await write(".\r\n", "the empty content");
        if (ended) co_await read_reply("the empty content");
      }
      co_return result;
    }
  } else {
    const bool sent = co_await write(mail, "MAIL");
    if (!sent) {
      defer_undecided(result, decided);
      co_return result;
    }
    result.mail_reply = co_await read_reply("MAIL");
    if (!result.mail_reply) {
      defer_undecided(result, decided);
      co_return result;
    }
    note_closing(*result.mail_reply);
    if (!result.mail_reply->positive()) {
      decide_undecided(result, decided, *result.mail_reply);
      result.message = "MAIL refused: " + smtp::to_line(*result.mail_reply);
      co_return result;
    }
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      std::optional<smtp::reply> r;
      const bool sent_rcpt = co_await write(rcpts[i], "RCPT");
      if (sent_rcpt) r = co_await read_reply("RCPT");
      if (!r) {
        defer_undecided(result, decided);
        co_return result;
      }
      on_rcpt_reply(i, *r);
      if (state_ == state::broken) break;
    }
    if (state_ == state::broken) {
      defer_undecided(result, decided);
      co_return result;
    }
    if (accepted == 0) {
      co_await reset_transaction();
      result.message = "no recipient accepted";
      co_return result;
    }
    const bool sent_data = co_await write("DATA\r\n", "DATA");
    if (sent_data) data_reply = co_await read_reply("DATA");
    if (!data_reply) {
      defer_undecided(result, decided);
      co_return result;
    }
  }

  note_closing(*data_reply);
  if (data_reply->code != 354) {
    // DATA refused: the accepted recipients share its verdict; the open
    // transaction (MAIL and RCPTs) is reset for the next message.
    result.data_reply = data_reply;
    if (accepted > 0) {
      decide_undecided(result, decided,
                       data_reply->positive() ? make_reply(451, "4.5.0", smtp::to_line(*data_reply))
                                              : *data_reply);
    }
    if (result.message.empty()) {
      result.message =
          accepted == 0 ? "no recipient accepted" : "DATA refused: " + smtp::to_line(*data_reply);
    }
    co_await reset_transaction();
    if (state_ == state::broken) defer_undecided(result, decided);
    co_return result;
  }
  if (accepted == 0) {
    // RFC 2920 §3.1: DATA was accepted although no RCPT was; end it empty.
    std::optional<smtp::reply> r;
    const bool ended = co_await write(".\r\n", "the empty content");
    if (ended) r = co_await read_reply("the content");
    result.message = "no recipient accepted";
    result.data_reply = r;
    co_return result;
  }
  const bool streamed = co_await write_content(content, result);
  if (!streamed) {
    defer_undecided(result, decided);
    co_return result;
  }
  result.data_reply = co_await read_reply("the message content");
  if (!result.data_reply) {
    defer_undecided(result, decided);
    co_return result;
  }
  note_closing(*result.data_reply);
  decide_undecided(result, decided, *result.data_reply);
  if (!result.data_reply->positive()) {
    result.message = "content refused: " + smtp::to_line(*result.data_reply);
  }
  co_return result;
}

}  // namespace oauth_relay::relay
