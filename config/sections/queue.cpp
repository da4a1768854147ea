// The `queue` section: how long the relay retries a message it could not
// deliver, and how the retries are spaced.
#include <string>

#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"queue"};

std::string seconds_text(std::chrono::seconds s) {
  return std::to_string(s.count()) + "s";
}

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("queue");
  if (!f) return;
  const mapping m(r, *f, {"retry_initial", "retry_max", "lifetime", "delay_warning"});
  if (!m.ok()) return;
  queue_settings& s = all.queue;
  const auto initial = m.find("retry_initial");
  const auto max = m.find("retry_max");
  bool ok = true;
  if (initial) {
    if (auto d = r.duration(*initial))
      s.retry_initial = *d;
    else
      ok = false;
  }
  if (max) {
    if (auto d = r.duration(*max))
      s.retry_max = *d;
    else
      ok = false;
  }
  r.read_into(m, "lifetime", s.lifetime, &reader::duration);
  r.read_into(m, "delay_warning", s.delay_warning, &reader::duration);
  // The backoff doubles from retry_initial up to retry_max; the other way
  // round, the first retry would already be past the cap.
  if (ok && s.retry_max < s.retry_initial) {
    const field& at = max ? *max : *initial;
    r.add(at.where(), "queue.retry_max: expected at least queue.retry_initial (" +
                          seconds_text(s.retry_initial) + "), got " + seconds_text(s.retry_max));
  }
}

}  // namespace

extern const section queue_section{keys, read};

}  // namespace oauth_relay::config
