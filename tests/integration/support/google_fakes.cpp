// Fakes of Google for the crash and fault tests, and the test messages they
// carry.
#include "integration/support/google_fakes.hpp"

#include <filesystem>
#include <functional>
#include <random>
#include <regex>
#include <stdexcept>

#include "auth/token_store.hpp"

namespace oauth_relay::test_support {

google_fakes::google_fakes() : certificate_(pki_.issue({"localhost"}, {"127.0.0.1"})) {
  oauth_.add_account(account, refresh_token);
  ca_file_ = pki_.write_ca(scratch_.path() / "ca.pem");
  start_gmail();
}

google_fakes::~google_fakes() = default;

fakes::fake_gmail& google_fakes::gmail() {
  if (!gmail_) throw std::logic_error("the fake Gmail is stopped");
  return *gmail_;
}

void google_fakes::start_gmail() {
  if (gmail_) return;
  gmail_ = std::make_unique<fakes::fake_gmail>(fakes::fake_gmail::mode::starttls, certificate_,
                                               gmail_port_);
  gmail_port_ = gmail_->port();
  gmail_->set_token_validator([this](const std::string& user, const std::string& token) {
    return oauth_.token_valid(user, token);
  });
}

void google_fakes::stop_gmail() {
  if (!gmail_) return;
  gmail_->stop();
  auto received = gmail_->messages();
  earlier_.insert(earlier_.end(), received.begin(), received.end());
  gmail_.reset();  // closes the listening socket
}

std::vector<fakes::fake_gmail::message> google_fakes::messages() const {
  auto all = earlier_;
  if (gmail_) {
    auto now = gmail_->messages();
    all.insert(all.end(), now.begin(), now.end());
  }
  return all;
}

std::size_t google_fakes::message_count() const {
  return earlier_.size() + (gmail_ ? gmail_->message_count() : 0);
}

std::string google_fakes::config(const std::string& extra,
                                 const std::string& upstream_extra) const {
  return "hostname: relay.test\n"
         "upstream:\n"
         "  host: 127.0.0.1\n"
         "  port: " +
         std::to_string(gmail_port_) +
         "\n"
         "  tls: starttls\n"
         "  ca_file: " +
         ca_file_.string() + "\n" + upstream_extra + extra +
         "oauth:\n"
         "  client_id: \"" +
         fakes::fake_oauth::default_client_id +
         "\"\n"
         "  client_secret: \"" +
         fakes::fake_oauth::default_client_secret +
         "\"\n"
         "  token_url: " +
         oauth_.token_url() +
         "\n"
         "  ca_file: " +
         ca_file_.string() +
         "\n"
         "accounts:\n"
         "  - address: " +
         account +
         "\n"
         "    default: true\n";
}

void google_fakes::store_token(const std::filesystem::path& state_dir,
                               const std::filesystem::path& key_file) const {
  std::filesystem::create_directories(state_dir);
  std::filesystem::permissions(state_dir, std::filesystem::perms::owner_all);
  auth::token_store store(state_dir, token_key(key_file));
  store.store_refresh_token(account, refresh_token);
}

std::string without_received(const std::string& content) {
  if (content.rfind("Received: ", 0) != 0) return {};
  std::size_t at = 0;
  for (;;) {
    at = content.find("\r\n", at);
    if (at == std::string::npos) return {};
    at += 2;
    if (at >= content.size() || content[at] != '\t') return content.substr(at);
  }
}

std::string without_added_fields(const std::string& content, const std::string& id,
                                 const std::string& sender) {
  std::size_t start = 0;
  if (content.rfind("Date: ", 0) != 0) {
    start = content.find("\r\nDate: ");
    if (start == std::string::npos) return "<no fields added>";
    start += 2;
  }
  const std::string from = "\r\nFrom: " + sender + "\r\n";
  const std::size_t from_at = content.find(from, start);
  if (from_at == std::string::npos) return "<no fields added>";
  const std::size_t end = from_at + from.size();
  // Only the block is matched by the pattern, never the (large) rest.
  static const std::string date =
      R"([A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4})";
  const std::regex block("Date: " + date + "\r\nMessage-ID: <" + id + R"(\.\d+@relay\.test>)" +
                         std::regex_replace(from, std::regex(R"([.+*?()\[\]])"), R"(\$&)"));
  if (!std::regex_match(content.begin() + static_cast<std::ptrdiff_t>(start),
                        content.begin() + static_cast<std::ptrdiff_t>(end), block)) {
    return "<no fields added>";
  }
  return content.substr(0, start) + content.substr(end);
}

test_message make_test_message(const std::string& tag, std::size_t size) {
  test_message m;
  m.tag = tag;
  // A complete header (From, Date, Message-ID): the relay adds nothing to it.
  m.content = "From: <" + std::string(google_fakes::account) +
              ">\r\nTo: <rcpt@example.org>\r\nSubject: prove " + tag +
              "\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\nMessage-ID: <" + tag +
              "@prove.test>\r\n\r\n";
  std::minstd_rand random(
      static_cast<std::minstd_rand::result_type>(std::hash<std::string>{}(tag)));
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ .,;:-_=";
  for (int line = 0; m.content.size() < size; ++line) {
    if (line == 3) {
      m.content += ".\r\n";  // a lone dot inside the message
      continue;
    }
    std::string text(1 + random() % 76, ' ');
    for (char& c : text) c = alphabet[random() % (sizeof alphabet - 1)];
    if (line % 7 == 0) text[0] = '.';
    m.content += text + "\r\n";
  }
  m.content += "end of " + tag + "\r\n";
  return m;
}

std::string test_message::stuffed() const {
  std::string out;
  out.reserve(content.size() + content.size() / 50);
  std::size_t at = 0;
  while (at < content.size()) {
    const auto end = content.find("\r\n", at);
    if (content[at] == '.') out += '.';
    out.append(content, at, end + 2 - at);
    at = end + 2;
  }
  return out;
}

std::string tag_of(const std::string& content) {
  const std::string marker = "\r\nMessage-ID: <";
  const auto at = content.find(marker);
  if (at == std::string::npos) return {};
  const auto start = at + marker.size();
  const auto end = content.find("@prove.test>", start);
  return end == std::string::npos ? std::string() : content.substr(start, end - start);
}

}  // namespace oauth_relay::test_support
