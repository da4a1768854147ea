// The two route tables: the health socket answers GET /health and GET
// /metrics and nothing else; the control socket has the queue and the
// accounts. Checked on the tables the daemon serves, without a daemon.
#include <gtest/gtest.h>

#include <string>

#include "daemon/control_routes.hpp"
#include "daemon/health_routes.hpp"

namespace oauth_relay::daemon {
namespace {

template <typename Owner>
http_reply refusal_of(std::string_view method, std::string_view path) {
  http_reply refusal;
  const auto* r = find_route<Owner>(Owner::table, method, path, refusal);
  EXPECT_EQ(r, nullptr) << method << " " << path << " is served";
  return refusal;
}

template <typename Owner>
bool served(std::string_view method, std::string_view path) {
  http_reply refusal;
  return find_route<Owner>(Owner::table, method, path, refusal) != nullptr;
}

TEST(health_routes, serve_health_and_metrics_by_get_only) {
  EXPECT_TRUE(served<health_routes>("GET", "/health"));
  EXPECT_TRUE(served<health_routes>("GET", "/metrics"));
  for (const char* path : {"/health", "/metrics"}) {
    for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
      const auto r = refusal_of<health_routes>(method, path);
      EXPECT_EQ(r.status, 405u) << method << " " << path;
      EXPECT_EQ(r.allow, "GET");
      EXPECT_EQ(r.body, "{\"error\":\"method not allowed\"}\n");
    }
  }
}

TEST(health_routes, know_nothing_of_the_queue_or_the_accounts) {
  for (const auto& route : control_routes::table) {
    for (const char* method : {"GET", "POST"}) {
      const auto r = refusal_of<health_routes>(method, route.path);
      EXPECT_EQ(r.status, 404u) << method << " " << route.path;
      EXPECT_EQ(r.body, "{\"error\":\"not found\"}\n");
      EXPECT_EQ(r.allow, "");
    }
  }
  EXPECT_EQ(refusal_of<health_routes>("GET", "/").status, 404u);
  EXPECT_EQ(refusal_of<health_routes>("GET", "/health/").status, 404u);
  EXPECT_EQ(refusal_of<health_routes>("GET", "/HEALTH").status, 404u);
}

TEST(control_routes, serve_the_queue_and_the_accounts) {
  EXPECT_TRUE(served<control_routes>("GET", "/queue"));
  EXPECT_TRUE(served<control_routes>("POST", "/queue/retry"));
  EXPECT_TRUE(served<control_routes>("POST", "/queue/delete"));
  EXPECT_TRUE(served<control_routes>("POST", "/accounts/reload"));
  EXPECT_TRUE(served<control_routes>("GET", "/accounts"));
  EXPECT_TRUE(served<control_routes>("POST", "/accounts/import"));
  EXPECT_EQ(control_routes::table.size(), 6u);

  auto r = refusal_of<control_routes>("POST", "/queue");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.allow, "GET");
  r = refusal_of<control_routes>("GET", "/queue/delete");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.allow, "POST");
  r = refusal_of<control_routes>("DELETE", "/accounts");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.allow, "GET");
}

TEST(control_routes, leave_health_and_metrics_to_the_health_socket) {
  for (const auto& route : health_routes::table) {
    EXPECT_EQ(refusal_of<control_routes>("GET", route.path).status, 404u) << route.path;
  }
}

}  // namespace
}  // namespace oauth_relay::daemon
