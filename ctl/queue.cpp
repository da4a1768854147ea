// The queue (control socket) and status (health socket) views: the daemon's
// JSON checked field by field, then printed for people or passed through.
#include "ctl/queue.hpp"

#include <cstdio>
#include <iostream>

#include "ctl/daemon_client.hpp"

namespace oauth_relay::ctl {
namespace {

using json = nlohmann::json;

[[noreturn]] void malformed(std::string_view request) {
  throw failure("oauth-relayd's answer to " + std::string(request) + " is not what it should be",
                "oauth-relayd and oauth-relayctl must be the same version: oauth-relayd "
                "--version; oauth-relayctl --version");
}

std::string text_of(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t number_of(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<std::int64_t>() : 0;
}

std::string size_text(std::int64_t bytes) {
  char buffer[32];
  if (bytes < 1024) return std::to_string(bytes) + " B";
  if (bytes < 1024 * 1024) {
    std::snprintf(buffer, sizeof buffer, "%.1f KB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f MB", static_cast<double>(bytes) / (1024 * 1024));
  }
  return buffer;
}

std::string plural(std::int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The JSON of a 200 answer, or a failure naming the request.
json answer(const daemon_reply& reply, std::string_view request) {
  if (reply.status != 200) fail_with_reply(request, reply);
  auto document = reply.json();
  if (!document.is_object()) malformed(request);
  return document;
}

// Prints what changed and fails when some ids were not queued.
int report_ids(const json& document, const char* count_key, const std::string& done,
               std::string_view request, bool as_json) {
  if (!document.contains(count_key) || !document[count_key].is_number()) malformed(request);
  std::vector<std::string> unknown;
  if (auto it = document.find("unknown"); it != document.end()) {
    if (!it->is_array()) malformed(request);
    for (const auto& id : *it) {
      if (id.is_string()) unknown.push_back(id.get<std::string>());
    }
  }
  if (as_json) {
    std::cout << document.dump(2) << std::endl;
  } else {
    std::cout << plural(document[count_key].get<std::int64_t>(), "message", "messages") << " "
              << done << std::endl;
  }
  if (!unknown.empty()) {
    std::string list;
    for (const auto& id : unknown) list += (list.empty() ? "" : " ") + id;
    throw failure("not in the queue: " + list,
                  "list the queued messages and their ids with: oauth-relayctl queue");
  }
  return 0;
}

}  // namespace

int run_queue_list(const context& ctx, const queue_page& page, bool as_json) {
  std::string target = "/queue?limit=" + std::to_string(page.limit);
  if (!page.after.empty()) target += "&after=" + page.after;
  const auto document = answer(control_socket_client(ctx).get(target), "GET /queue");
  const auto messages = document.find("messages");
  if (messages == document.end() || !messages->is_array()) malformed("GET /queue");
  // A string when another page follows; null or missing on the last one.
  std::string next_after;
  if (auto next = document.find("next_after"); next != document.end() && !next->is_null()) {
    if (!next->is_string()) malformed("GET /queue");
    next_after = next->get<std::string>();
  }
  if (as_json) {
    std::cout << document.dump(2) << std::endl;
    return 0;
  }
  if (messages->empty()) {
    std::cout << (page.after.empty() ? "the queue is empty" : "no more messages") << std::endl;
    return 0;
  }
  std::cout << plural(static_cast<std::int64_t>(messages->size()), "message", "messages")
            << (page.after.empty() ? " in the queue" : " further on") << ", oldest first"
            << (next_after.empty() ? "" : " (more follow)") << std::endl;
  for (const auto& m : *messages) {
    if (!m.is_object()) malformed("GET /queue");
    const auto next = number_of(m, "next_attempt_in_seconds");
    std::cout << text_of(m, "id") << "  from <" << text_of(m, "sender") << ">  via "
              << text_of(m, "account") << "  " << size_text(number_of(m, "size")) << "  age "
              << format_duration(number_of(m, "age_seconds")) << "  attempts "
              << number_of(m, "attempts") << "  next attempt "
              << (next <= 0 ? std::string("now") : "in " + format_duration(next)) << "\n";
    if (auto rcpts = m.find("recipients"); rcpts != m.end() && rcpts->is_array()) {
      for (const auto& r : *rcpts) {
        if (!r.is_object()) continue;
        const std::string reply = text_of(r, "last_reply");
        std::cout << "    to <" << text_of(r, "address") << ">: " << text_of(r, "state")
                  << (reply.empty() ? "" : " (" + reply + ")") << "\n";
      }
    }
    const std::string error = text_of(m, "last_error");
    if (!error.empty()) std::cout << "    last error: " << error << "\n";
  }
  if (!next_after.empty()) {
    std::cout << "next page: oauth-relayctl queue --after " << next_after
              << (page.limit == default_page_limit ? std::string()
                                                   : " --limit " + std::to_string(page.limit))
              << "\n";
  }
  std::cout.flush();
  return 0;
}

int run_queue_retry(const context& ctx, const std::vector<std::string>& ids, bool all,
                    bool as_json) {
  const json body = all ? json{{"all", true}} : json{{"ids", ids}};
  const auto document =
      answer(control_socket_client(ctx).post("/queue/retry", body), "POST /queue/retry");
  return report_ids(document, "changed", "due now", "POST /queue/retry", as_json);
}

int run_queue_delete(const context& ctx, const std::vector<std::string>& ids, bool as_json) {
  const auto document = answer(control_socket_client(ctx).post("/queue/delete", json{{"ids", ids}}),
                               "POST /queue/delete");
  return report_ids(document, "deleted", "deleted", "POST /queue/delete", as_json);
}

int run_status(const context& ctx, bool as_json) {
  const auto reply = health_socket_client(ctx).get("/health");
  if (reply.status != 200 && reply.status != 503) fail_with_reply("GET /health", reply);
  const auto document = reply.json();
  if (!document.is_object() || !document.contains("status")) malformed("GET /health");
  const std::string status = text_of(document, "status");
  std::vector<std::string> problems;
  if (auto it = document.find("problems"); it != document.end() && it->is_array()) {
    for (const auto& p : *it) {
      if (p.is_string()) problems.push_back(p.get<std::string>());
    }
  }

  if (as_json) {
    std::cout << document.dump(2) << std::endl;
  } else {
    std::cout << "oauth-relayd " << text_of(document, "version") << ": " << status << " (up "
              << format_duration(number_of(document, "uptime_seconds")) << ")\n";
    if (auto q = document.find("queue"); q != document.end() && q->is_object()) {
      const auto depth = number_of(*q, "depth");
      std::cout << "queue: " << plural(depth, "message", "messages") << ", "
                << number_of(*q, "deferred") << " deferred";
      if (depth > 0)
        std::cout << ", oldest " << format_duration(number_of(*q, "oldest_age_seconds"));
      std::cout << "\n";
    }
    if (auto accounts = document.find("accounts");
        accounts != document.end() && accounts->is_array() && !accounts->empty()) {
      std::cout << "accounts:\n";
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : *accounts) {
        if (!a.is_object()) continue;
        std::vector<std::string> row = {"  " + text_of(a, "address"), text_of(a, "token_state")};
        if (auto e = a.find("access_expires_in_seconds"); e != a.end() && e->is_number()) {
          row.push_back("access token expires in " + format_duration(e->get<std::int64_t>()));
        } else {
          row.push_back("no access token");
        }
        const std::string delivered = text_of(a, "last_delivery");
        row.push_back(delivered.empty() ? "no delivery yet" : "last delivery " + delivered);
        const std::string error = text_of(a, "last_error");
        if (!error.empty()) row.push_back("last error: " + error);
        rows.push_back(std::move(row));
      }
      print_table(std::cout, rows);
    }
    if (!problems.empty()) {
      std::cout << "problems:\n";
      for (const auto& p : problems) std::cout << "  - " << p << "\n";
    }
    std::cout.flush();
  }
  const bool degraded = status != "ok" || reply.status == 503;
  if (degraded) {
    throw failure("oauth-relayd is " + (status.empty() ? std::string("degraded") : status) + " (" +
                      plural(static_cast<std::int64_t>(problems.size()), "problem", "problems") +
                      ")",
                  problems.empty() ? "journalctl -u oauth-relay says more"
                                   : "each problem above says what to do");
  }
  return 0;
}

}  // namespace oauth_relay::ctl
