// Which attempts carry a fix for the administrator: Exchange's SendAsDenied
// in any of the transaction's replies, and nothing else (Gmail's answers included).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "relay/delivery/decision.hpp"

namespace oauth_relay::relay {
namespace {

using testing::HasSubstr;

constexpr const char* it = "it@contoso.com";

attempt sent_with(std::optional<smtp::reply> mail, std::optional<smtp::reply> data,
                  std::vector<recipient_result> recipients = {}) {
  send_result r;
  r.mail_reply = std::move(mail);
  r.data_reply = std::move(data);
  r.recipients = std::move(recipients);
  return sent_upstream{std::move(r)};
}

const smtp::reply send_as_denied = smtp::make_reply(
    554, "5.2.252", "SendAsDenied; it@contoso.com not allowed to send as boss@contoso.com");

TEST(provider_advice_in, send_as_denied_after_data_names_the_send_as_permission) {
  const auto why = provider_advice_in(
      sent_with(smtp::make_reply(250, "2.1.0", "Sender OK"), send_as_denied), it);
  ASSERT_TRUE(why);
  EXPECT_THAT(why->cause, HasSubstr("Exchange Online refused to send as this sender from "
                                    "it@contoso.com (SendAsDenied: 554 5.2.252 "));
  EXPECT_THAT(why->fix, HasSubstr("Send As"));
}

TEST(provider_advice_in, in_a_recipients_reply_too) {
  const auto why = provider_advice_in(
      sent_with(std::nullopt, std::nullopt,
                {recipient_result{"x@example.org", delivery_status::failed, send_as_denied, true}}),
      it);
  EXPECT_TRUE(why);
  // A reply the client made itself is no provider's answer.
  EXPECT_FALSE(provider_advice_in(
      sent_with(
          std::nullopt, std::nullopt,
          {recipient_result{"x@example.org", delivery_status::failed, send_as_denied, false}}),
      it));
}

TEST(provider_advice_in, other_answers_carry_none) {
  EXPECT_FALSE(provider_advice_in(
      sent_with(smtp::make_reply(550, "5.4.5", "Daily user sending limit exceeded."), std::nullopt),
      it));
  EXPECT_FALSE(provider_advice_in(not_sent{"no token", std::nullopt, std::nullopt}, it));
  EXPECT_FALSE(provider_advice_in(too_old{}, it));
}

}  // namespace
}  // namespace oauth_relay::relay
