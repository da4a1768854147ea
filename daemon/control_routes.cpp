// The control socket's answers. Queue work goes to the spool's writer thread
// or the scheduler; token store reads and writes to the blocking pool. Each
// result comes back to the loop before the answer is written.
#include "daemon/control_routes.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "auth/token_manager.hpp"
#include "auth/token_store.hpp"
#include "common/clock.hpp"
#include "common/completion.hpp"
#include "config/config.hpp"
#include "config/log.hpp"
#include "daemon/accounts_report.hpp"
#include "daemon/health_report.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::daemon {
namespace {

namespace asio = boost::asio;
using asio::use_awaitable;
using json = nlohmann::json;

// RFC 5321 §4.5.3.1.3: a path is at most 256 octets; a refresh token is a
// few hundred bytes (Google) to a few kilobytes (Microsoft).
constexpr std::size_t max_address = 256;
constexpr std::size_t max_token = 16 * 1024;

// Runs `job` on `pool`; the calling coroutine resumes on its own executor.
// `job` lives in the caller's frame, which waits for it: taken by reference,
// as GCC 12 miscompiles a by-value lambda holding strings as a coroutine's
// argument (see http_socket.hpp).
template <typename Result, typename Job>
asio::awaitable<Result> on_pool(asio::any_io_executor pool, const Job& job) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Result)>(
      [pool, &job](auto handler) {
        auto done = make_completion<Result>(std::move(handler), pool);
        asio::post(pool, [&job, done = std::move(done)]() mutable { done->post(job()); });
      },
      use_awaitable);
}

http_reply bad_request(std::string_view why) {
  return {400, "application/json", error_json(why), {}};
}

http_reply store_failed(std::string_view detail) {
  return {
      500, "application/json", error_json("the token store failed: " + std::string(detail)), {}};
}

// A token as oauth-relayctl reads it: printable, no spaces.
bool token_text(const json& value, std::size_t max) {
  if (!value.is_string()) return false;
  const auto& text = value.get_ref<const std::string&>();
  if (text.empty() || text.size() > max) return false;
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// Addresses compare without case, as the accounts table does (COLLATE NOCASE).
bool same_address(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct import_request {
  std::string address;
  std::string refresh_token;  // secret
  std::string access_token;   // secret; empty when none
  std::int64_t access_expires_at = 0;
};

std::optional<import_request> parse_import(std::string_view body, std::string& error) {
  const auto doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  constexpr const char* expected =
      "expected {\"address\":\"...\",\"refresh_token\":\"...\"} with optionally "
      "\"access_token\" and \"access_expires_at\"";
  if (doc.is_discarded() || !doc.is_object()) {
    error = std::string("the body is not a JSON object: ") + expected;
    return std::nullopt;
  }
  import_request out;
  for (const auto& [key, value] : doc.items()) {
    if (key == "address") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
          value.get_ref<const std::string&>().size() > max_address) {
        error = "\"address\" must be an account's address";
        return std::nullopt;
      }
      out.address = value.get<std::string>();
    } else if (key == "refresh_token") {
      if (!token_text(value, max_token)) {
        error = "\"refresh_token\" must be the token alone (no spaces or line breaks)";
        return std::nullopt;
      }
      out.refresh_token = value.get<std::string>();
    } else if (key == "access_token") {
      if (!token_text(value, max_token)) {
        error = "\"access_token\" must be the token alone (no spaces or line breaks)";
        return std::nullopt;
      }
      out.access_token = value.get<std::string>();
    } else if (key == "access_expires_at") {
      if (!value.is_number_integer() || value.get<std::int64_t>() <= 0) {
        error = "\"access_expires_at\" must be a time in unix seconds";
        return std::nullopt;
      }
      out.access_expires_at = value.get<std::int64_t>();
    } else {
      error = "unknown key \"" + key + "\": " + expected;
      return std::nullopt;
    }
  }
  if (out.address.empty() || out.refresh_token.empty() ||
      out.access_token.empty() != (out.access_expires_at == 0)) {
    error = expected;
    return std::nullopt;
  }
  return out;
}

}  // namespace

const std::array<route<control_routes>, 6> control_routes::table{{
    {"GET", "/queue", &control_routes::queue},
    {"POST", "/queue/retry", &control_routes::retry},
    {"POST", "/queue/delete", &control_routes::remove},
    {"POST", "/accounts/reload", &control_routes::reload},
    {"GET", "/accounts", &control_routes::accounts},
    {"POST", "/accounts/import", &control_routes::import},
}};

asio::awaitable<http_reply> control_routes::respond(const http_request& request) {
  http_reply refusal;
  const auto* r = find_route<control_routes>(table, request.method, request.path, refusal);
  if (r == nullptr) co_return refusal;
  // A GET has no body: its parameters are the query string.
  co_return co_await (this->*(r->answer))(request.method == "GET" ? request.query : request.body);
}

asio::awaitable<http_reply> control_routes::queue(std::string_view query) {
  std::string problem;
  const auto page = parse_queue_page(query, problem);
  if (!page) co_return bad_request(problem);
  auto listed = co_await sources_.spool.admin().list(page->after, page->limit);
  if (!listed) {
    log::error("queue_list_failed").kv("error", listed.error().detail);
    co_return http_reply{
        500, "application/json", error_json("the spool failed: " + listed.error().detail), {}};
  }
  co_return http_reply{200, "application/json", queue_json(*listed, now_ms()), {}};
}

asio::awaitable<http_reply> control_routes::retry(std::string_view body) {
  std::string problem;
  auto selection = parse_queue_selection(body, /*allow_all=*/true, problem);
  if (!selection) co_return bad_request(problem);
  const auto now = now_ms();
  auto result =
      co_await sources_.spool.admin().retry(std::move(selection->ids), selection->all, now);
  if (!result) {
    const auto detail = result.error().detail;
    log::error("queue_retry_failed").kv("error", detail);
    co_return http_reply{500, "application/json", error_json("the spool failed: " + detail), {}};
  }
  log::notice("queue_retry")
      .kv("all", selection->all ? "yes" : "no")
      .kv("changed", result->changed)
      .kv("unknown", result->unknown.size());
  // "Try now" is the administrator's word over a hold Gmail put on an
  // account; the account's own limits still hold what would go over them.
  sources_.scheduler.lift_holds();
  sources_.scheduler.wake();
  co_return http_reply{200, "application/json", change_json(*result, "changed"), {}};
}

asio::awaitable<http_reply> control_routes::remove(std::string_view body) {
  std::string problem;
  auto selection = parse_queue_selection(body, /*allow_all=*/false, problem);
  if (!selection) co_return bad_request(problem);
  auto& scheduler = sources_.scheduler;
  auto start = [&scheduler](auto handler, std::vector<std::string> ids) {
    // std::function needs a copyable callable; the coroutine's handler is not.
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    scheduler.delete_messages(std::move(ids), [shared](relay::spool_result<relay::queue_change> r) {
      std::move (*shared)(std::move(r));
    });
  };
  auto ids = std::move(selection->ids);
  auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                              void(relay::spool_result<relay::queue_change>)>(
      start, use_awaitable, std::move(ids));
  if (!result) {
    const auto detail = result.error().detail;
    log::error("queue_delete_failed").kv("error", detail);
    co_return http_reply{500, "application/json", error_json("the spool failed: " + detail), {}};
  }
  log::notice("queue_delete").kv("deleted", result->changed).kv("unknown", result->unknown.size());
  co_return http_reply{200, "application/json", change_json(*result, "deleted"), {}};
}

asio::awaitable<std::size_t> control_routes::reload_accounts() {
  using changes = std::vector<std::pair<std::string, auth::token_state>>;
  auto& tokens = sources_.tokens;
  auto start = [&tokens](auto handler) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    tokens.reload([shared](changes c) { std::move (*shared)(std::move(c)); });
  };
  auto changed = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(changes)>(
      start, use_awaitable);
  // Every usable account's waiting mail becomes due now: the token just
  // stored may already have been picked up by the regular poll.
  std::size_t accounts = 0;
  for (const auto& status : tokens.status()) {
    sources_.scheduler.account_state_changed(status.address, status.state);
    ++accounts;
  }
  log::notice("accounts_reloaded").kv("changed", changed.size()).kv("accounts", accounts);
  co_return changed.size();
}

asio::awaitable<http_reply> control_routes::reload(std::string_view) {
  co_await reload_accounts();
  co_return http_reply{200, "application/json", "{\"reloaded\":true}\n", {}};
}

asio::awaitable<http_reply> control_routes::accounts(std::string_view) {
  struct read {
    std::vector<auth::account_record> rows;
    std::string error;
  };
  const auto load = [&store = sources_.store] {
    read out;
    try {
      out.rows = store.load_all();
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    return out;
  };
  auto got = co_await on_pool<read>(sources_.blocking, load);
  if (!got.error.empty()) {
    log::error("accounts_read_failed").kv("error", got.error);
    co_return store_failed(got.error);
  }
  // The scheduler's view of each account's sending, read on the loop.
  std::map<std::string, account_sending> sending;
  auto add = [&](const std::string& address) {
    const auto s = sources_.scheduler.sending(address);
    account_sending& out = sending[address];
    out.state = std::string(relay::to_string(s.state));
    if (s.resumes_at_ms) out.resumes_at = (*s.resumes_at_ms + 999) / 1000;
    out.reason = s.reason;
    out.sent_24h = s.sent_messages;
  };
  for (const auto& a : sources_.settings.accounts) add(a.address);
  for (const auto& r : got.rows) add(r.address);
  co_return http_reply{200,
                       "application/json",
                       accounts_json(got.rows, sources_.settings.accounts, sources_.tokens.status(),
                                     now_ms() / 1000, sending),
                       {}};
}

asio::awaitable<http_reply> control_routes::import(std::string_view body) {
  std::string problem;
  auto parsed = parse_import(body, problem);
  if (!parsed) co_return bad_request(problem);
  struct stored {
    std::int64_t generation = 0;
    std::string error;
  };
  const std::string& address = parsed->address;
  const auto write = [&store = sources_.store, &request = *parsed] {
    stored out;
    try {
      out.generation = store.store_refresh_token(request.address, request.refresh_token);
      if (!request.access_token.empty()) {
        // The token it was checked with saves a refresh.
        store.store_access_token(request.address, out.generation, request.access_token,
                                 request.access_expires_at);
      }
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    return out;
  };
  auto result = co_await on_pool<stored>(sources_.blocking, write);
  if (!result.error.empty()) {
    log::error("account_token_store_failed").kv("account", address).kv("error", result.error);
    co_return store_failed(result.error);
  }
  bool configured = false;
  for (const auto& a : sources_.settings.accounts) {
    configured = configured || same_address(a.address, address);
  }
  log::notice("account_token_stored")
      .kv("account", address)
      .kv("generation", result.generation)
      .kv("via", "control_socket")
      .kv("configured", configured ? "yes" : "no");
  co_await reload_accounts();
  const json answer = {{"stored", true}, {"configured", configured}};
  co_return http_reply{200, "application/json", answer.dump() + "\n", {}};
}

}  // namespace oauth_relay::daemon
