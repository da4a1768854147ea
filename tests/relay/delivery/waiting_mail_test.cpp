#include "relay/delivery/waiting_mail.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oauth_relay::relay {
namespace {

queued_message message(std::string id) {
  queued_message m;
  m.id = std::move(id);
  return m;
}

std::vector<std::string> pop_all(waiting_mail& w) {
  std::vector<std::string> out;
  while (!w.empty()) out.push_back(w.pop().id);
  return out;
}

TEST(waiting_mail, one_line_alone_goes_in_its_order) {
  waiting_mail w;
  for (const auto* id : {"o1", "o2", "o3"}) w.push(message(id), false);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(pop_all(w), (std::vector<std::string>{"o1", "o2", "o3"}));
  for (const auto* id : {"f1", "f2"}) w.push(message(id), true);
  EXPECT_EQ(pop_all(w), (std::vector<std::string>{"f1", "f2"}));
}

TEST(waiting_mail, two_lines_take_turns_fresh_first_until_one_runs_out) {
  waiting_mail w;
  for (const auto* id : {"o1", "o2", "o3", "o4"}) w.push(message(id), false);
  for (const auto* id : {"f1", "f2"}) w.push(message(id), true);
  EXPECT_EQ(pop_all(w), (std::vector<std::string>{"f1", "o1", "f2", "o2", "o3", "o4"}));
}

TEST(waiting_mail, take_all_gives_the_oldest_line_first_and_empties_both) {
  waiting_mail w;
  w.push(message("o1"), false);
  w.push(message("f1"), true);
  w.push(message("o2"), false);
  std::vector<std::string> ids;
  for (auto& m : w.take_all()) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"o1", "o2", "f1"}));
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.size(), 0u);
}

TEST(waiting_mail, erase_finds_a_message_in_either_line) {
  waiting_mail w;
  w.push(message("o1"), false);
  w.push(message("f1"), true);
  EXPECT_TRUE(w.erase("f1"));
  EXPECT_FALSE(w.erase("f1"));
  EXPECT_TRUE(w.erase("o1"));
  EXPECT_TRUE(w.empty());
}

}  // namespace
}  // namespace oauth_relay::relay
