// The alias table: resolved depth-first once per configuration, so a loop
// or a target nobody maps is found before any mail arrives; lookups at RCPT
// are then one hash lookup or three.
#include "relay/smtp/local_addresses.hpp"

#include <algorithm>
#include <unordered_map>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::relay {
namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// Appends `address` unless it is there already (compared without case).
void add_unique(std::vector<std::string>& list, const std::string& address) {
  const std::string key = lowercase(address);
  for (const auto& a : list) {
    if (lowercase(a) == key) return;
  }
  list.push_back(address);
}

}  // namespace

// The resolution of the whole table, depth first with memory: each alias is
// resolved once, an alias met again while its own resolution is under way
// is a loop.
class alias_resolver {
 public:
  struct node {
    std::string name;
    std::vector<std::string> targets;
    std::string origin;
  };

  alias_resolver(const local_addresses& table, std::vector<node> nodes,
                 std::vector<std::string>& errors)
      : table_(table),
        nodes_(std::move(nodes)),
        errors_(errors),
        marks_(nodes_.size(), mark::unvisited),
        ok_(nodes_.size(), false),
        height_(nodes_.size(), 0),
        result_(nodes_.size()) {}

  // Resolves every alias; false when any failed (the errors say why).
  bool run() {
    bool all = true;
    for (std::size_t i = 0; i < nodes_.size(); ++i) all = resolve(i) && all;
    return all;
  }
  std::size_t size() const { return nodes_.size(); }
  const std::vector<std::string>& result(std::size_t i) const { return result_[i]; }
  const node& at(std::size_t i) const { return nodes_[i]; }

 private:
  enum class mark { unvisited, active, done };

  bool resolve(std::size_t i) {
    if (marks_[i] == mark::done) return ok_[i];
    if (marks_[i] == mark::active) {
      // The path from the first visit of `i` back to it.
      const auto from = std::find(stack_.begin(), stack_.end(), i);
      std::vector<std::string> names;
      std::vector<std::string> origins;
      for (auto it = from; it != stack_.end(); ++it) {
        names.push_back(nodes_[*it].name);
        add_unique(origins, nodes_[*it].origin);
      }
      names.push_back(nodes_[i].name);
      errors_.push_back(nodes_[i].origin + ": alias loop: " + join(names, " -> ") + " (" +
                        join(origins, ", ") + ")");
      return false;
    }
    marks_[i] = mark::active;
    stack_.push_back(i);
    bool ok = true;
    std::size_t height = 1;
    for (const auto& target : nodes_[i].targets) {
      const std::string address = table_.qualify(target);
      if (!table_.is_local_domain(domain_of(address))) {
        add_unique(result_[i], address);
        continue;
      }
      const long j = table_.find(lowercase(address));
      if (j < 0) {
        errors_.push_back(nodes_[i].origin + ": alias " + quoted(nodes_[i].name) + ": " +
                          quoted(target) +
                          " is a local address that no alias maps (give a full address, or an "
                          "alias for it)");
        ok = false;
        continue;
      }
      if (!resolve(static_cast<std::size_t>(j))) {
        ok = false;
        continue;
      }
      height = std::max(height, height_[static_cast<std::size_t>(j)] + 1);
      for (const auto& a : result_[static_cast<std::size_t>(j)]) add_unique(result_[i], a);
    }
    stack_.pop_back();
    marks_[i] = mark::done;
    height_[i] = height;
    if (ok && height > max_alias_depth) {
      errors_.push_back(nodes_[i].origin + ": alias " + quoted(nodes_[i].name) +
                        " goes through more than " + std::to_string(max_alias_depth) +
                        " aliases before it reaches an address");
      ok = false;
    }
    ok_[i] = ok;
    return ok;
  }

  static std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

  const local_addresses& table_;
  std::vector<node> nodes_;
  std::vector<std::string>& errors_;
  std::vector<mark> marks_;
  std::vector<bool> ok_;
  std::vector<std::size_t> height_;
  std::vector<std::vector<std::string>> result_;
  std::vector<std::size_t> stack_;
};

local_addresses::build_result local_addresses::build(
    std::vector<std::string> domains, const std::vector<config::alias_entry>& aliases,
    std::size_t max_recipients) {
  build_result out;
  auto table = std::make_shared<local_addresses>();
  for (auto& d : domains) d = lowercase(d);
  table->domains_ = std::move(domains);
  if (table->domains_.empty()) table->domains_.push_back("localhost");

  std::vector<alias_resolver::node> nodes;
  std::unordered_map<std::string, std::size_t> keys;
  for (const auto& a : aliases) {
    const std::string origin = a.file + ":" + std::to_string(a.line);
    const std::string key = lowercase(a.name);
    const auto domain = domain_of(key);
    if (key.find('@') != std::string::npos && !table->is_local_domain(domain)) {
      out.errors.push_back(origin + ": alias \"" + a.name + "\": \"" + std::string(domain) +
                           "\" is not one of the local domains (" + join(table->domains_, ", ") +
                           "); only local addresses are aliased");
      continue;
    }
    if (const auto it = keys.find(key); it != keys.end()) {
      out.warnings.push_back(origin + ": alias \"" + a.name + "\" is also given at " +
                             nodes[it->second].origin + ", which is the one used");
      continue;
    }
    keys.emplace(key, nodes.size());
    if (key == "*") table->catch_all_ = static_cast<long>(nodes.size());
    nodes.push_back({a.name, a.targets, origin});
  }

  table->by_key_ = std::move(keys);
  alias_resolver r(*table, std::move(nodes), out.errors);
  r.run();
  for (std::size_t i = 0; i < r.size(); ++i) {
    const auto& n = r.at(i);
    table->resolved_.push_back({n.name, r.result(i), n.origin});
    if (r.result(i).size() > max_recipients) {
      out.errors.push_back(n.origin + ": alias \"" + n.name + "\" stands for " +
                           std::to_string(r.result(i).size()) + " addresses, more than " +
                           "limits.max_recipients (" + std::to_string(max_recipients) +
                           "): no message to it could be taken");
    }
  }
  if (!out.errors.empty()) return out;
  for (const char* name : {"root", "postmaster"}) {
    const std::string address = table->qualify(name);
    if (table->expand(address).what == expansion::kind::unknown) {
      out.warnings.push_back(std::string("no alias for ") + name + ": mail for <" + address +
                             "> is refused (550 5.1.1); give it one in `aliases`");
    }
  }
  out.table = std::move(table);
  return out;
}

bool local_addresses::is_local_domain(std::string_view domain) const {
  const std::string lowered = lowercase(domain);
  return std::find(domains_.begin(), domains_.end(), lowered) != domains_.end();
}

std::string local_addresses::qualify(std::string_view address) const {
  if (address.find('@') != std::string_view::npos) return std::string(address);
  return std::string(address) + "@" + domains_.front();
}

long local_addresses::find(std::string_view lowered) const {
  if (auto it = by_key_.find(std::string(lowered)); it != by_key_.end()) {
    return static_cast<long>(it->second);
  }
  const auto at = lowered.rfind('@');
  if (auto it = by_key_.find(std::string(lowered.substr(0, at))); it != by_key_.end()) {
    return static_cast<long>(it->second);
  }
  return catch_all_;
}

local_addresses::expansion local_addresses::expand(std::string_view address) const {
  const std::string qualified = qualify(address);
  if (!is_local_domain(domain_of(qualified))) return {expansion::kind::not_local, {}};
  const long i = find(lowercase(qualified));
  if (i < 0) return {expansion::kind::unknown, {}};
  return {expansion::kind::expanded, resolved_[static_cast<std::size_t>(i)].addresses};
}

// --- aliases(5) --------------------------------------------------------------

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"')
    return std::string(s.substr(1, s.size() - 2));
  return std::string(s);
}

// A local name as aliases(5) and RFC 5322 §3.2.3 write one: a dot-atom.
bool is_local_name(std::string_view name) {
  if (name.empty() || name.size() > smtp::max_local_part) return false;
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c == '.' || smtp::is_atext(c); });
}

// Splits at commas outside double quotes.
std::vector<std::string_view> split_targets(std::string_view value) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size() && value[i] == '"') quoted = !quoted;
    if (i == value.size() || (value[i] == ',' && !quoted)) {
      const auto t = trim(value.substr(start, i - start));
      if (!t.empty()) out.push_back(t);
      start = i + 1;
    }
  }
  return out;
}

// Where a target the relay cannot deliver to would have gone; empty: an address.
std::string undeliverable(std::string_view target) {
  const std::string t = unquote(target);
  if (t.starts_with("|")) return "the command";
  if (t.starts_with("/")) return "the file";
  if (t.size() >= 9 && lowercase(t.substr(0, 9)) == ":include:") return "the include";
  if (t.starts_with("\\")) return "the local mailbox";
  return {};
}

}  // namespace

aliases_file_result parse_aliases_file(std::string_view text, const std::string& file) {
  aliases_file_result out;
  // Logical lines: a line that starts with white space continues the one before.
  struct logical {
    int line;
    std::string text;
  };
  std::vector<logical> lines;
  int number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++number;
    const auto content = trim(line);
    if (content.empty() || content.front() == '#') continue;
    if (is_blank(line.front()) && !lines.empty()) {
      lines.back().text += " ";
      lines.back().text += content;
    } else {
      lines.push_back({number, std::string(content)});
    }
  }

  std::vector<std::string> seen;
  for (const auto& l : lines) {
    const std::string origin = file + ":" + std::to_string(l.line);
    std::string_view s = l.text;
    std::size_t colon = std::string_view::npos;
    if (!s.empty() && s.front() == '"') {
      const auto close = s.find('"', 1);
      if (close != std::string_view::npos && close + 1 < s.size() && s[close + 1] == ':') {
        colon = close + 1;
      }
    } else {
      colon = s.find(':');
    }
    if (colon == std::string_view::npos) {
      out.errors.push_back(origin + ": expected \"name: address, ...\"");
      continue;
    }
    const std::string name = unquote(trim(s.substr(0, colon)));
    if (!is_local_name(name) && !smtp::is_valid_mailbox(name, true)) {
      out.errors.push_back(origin + ": \"" + name + "\" is not a local name");
      continue;
    }
    config::alias_entry entry{name, {}, file, l.line};
    bool ok = true;
    for (const auto target : split_targets(s.substr(colon + 1))) {
      if (const auto what = undeliverable(target); !what.empty()) {
        out.warnings.push_back(origin + ": alias \"" + name + "\": " + what + " " +
                               std::string(target) +
                               " is skipped: the relay delivers no mail on this host itself");
        continue;
      }
      const std::string t = std::string(target);
      if (!is_local_name(t) && !smtp::is_valid_mailbox(t, true)) {
        out.errors.push_back(origin + ": alias \"" + name + "\": \"" + t +
                             "\" is not an address or a local name");
        ok = false;
        continue;
      }
      entry.targets.push_back(t);
    }
    if (!ok) continue;
    if (entry.targets.empty()) {
      out.warnings.push_back(origin + ": alias \"" + name +
                             "\" is left out: it has no address the relay can send to");
      continue;
    }
    const std::string key = lowercase(name);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      out.warnings.push_back(origin + ": alias \"" + name +
                             "\" is given again; the first one is used");
      continue;
    }
    seen.push_back(key);
    out.entries.push_back(std::move(entry));
  }
  return out;
}

}  // namespace oauth_relay::relay
