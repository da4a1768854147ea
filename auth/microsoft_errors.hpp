// What the Microsoft identity platform (AADSTS codes) and Exchange Online's
// SMTP answered, turned into a cause and a fix, as oauth_errors does for Google.
#pragma once

#include <optional>
#include <string_view>

#include "auth/oauth_errors.hpp"

namespace oauth_relay::auth {

// The AADSTS number at the start of a Microsoft error_description
// ("AADSTS700082: The refresh token has expired ..." -> 700082); nothing for
// any other text (Google's descriptions have none).
std::optional<long> aadsts_code(std::string_view description);

// Microsoft's refusal of a token request for `account` (AADSTS65001 consent,
// 50076 MFA, 700082 expired refresh token, 7000215 wrong secret, and a few
// more), or nothing when the answer is not one Microsoft gives.
std::optional<advice> explain_microsoft_token_error(const token_response& response,
                                                    std::string_view account);

// Exchange Online's refusals: 535 5.7.139 (SMTP AUTH disabled for the
// tenant or the mailbox), 535 5.7.3 (the token was refused), 554 5.2.252
// (SendAsDenied); nothing for any other reply.
std::optional<advice> explain_exchange_reply(int code, std::string_view enhanced,
                                             std::string_view text, std::string_view account);

}  // namespace oauth_relay::auth
