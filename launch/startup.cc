#include "launch/startup.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/check.h"

namespace om {
namespace {

// Each (name, seconds) through `item` (a format of a string and a double), `sep` between them.
std::string join(const std::vector<std::pair<std::string, double>>& pairs, const char* item, const char* sep) {
  std::string out;
  for (size_t i = 0; i < pairs.size(); ++i) {
    out += (i == 0 ? "" : sep) + format_message(item, pairs[i].first.c_str(), pairs[i].second);
  }
  return out;
}

}  // namespace

double process_age_seconds() {
  // /proc/self/stat: "pid (comm) state ..." — comm may hold spaces and ')', so fields are counted from
  // the last ')': starttime (field 22, clock ticks after boot) is the 20th field after it.
  std::ifstream stat("/proc/self/stat"), uptime_file("/proc/uptime");
  std::string line;
  double uptime = 0;
  if (!std::getline(stat, line) || !(uptime_file >> uptime)) return 0;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 0; i < 20 && rest >> field; ++i) {
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  if (!rest || ticks <= 0) return 0;
  const double start = std::strtod(field.c_str(), nullptr) / static_cast<double>(ticks);
  return std::max(0.0, uptime - start);
}

StartupTimeline::StartupTimeline() { phases_.emplace_back("exec", process_age_seconds()); }

void StartupTimeline::Mark(const char* phase) {
  phases_.emplace_back(phase, since_mark_.Seconds());
  since_mark_.Reset();
}

void StartupTimeline::Note(const char* what, double seconds) { notes_.emplace_back(what, seconds); }

double StartupTimeline::Total() const {
  double s = 0;
  for (const auto& p : phases_) s += p.second;
  return s;
}

std::string StartupTimeline::Summary() const {
  const std::string notes = notes_.empty() ? "" : " (" + join(notes_, "%s %.2f", ", ") + ")";
  return format_message("%.2f s: ", Total()) + join(phases_, "%s %.2f", ", ") + notes;
}

std::string StartupTimeline::Json() const {
  const std::string notes = notes_.empty() ? "" : ", \"notes\": [" + join(notes_, "[\"%s\", %.4f]", ", ") + "]";
  return format_message("{\"total_s\": %.4f, \"phases\": [", Total()) + join(phases_, "[\"%s\", %.4f]", ", ") + "]" +
         notes + "}";
}

}  // namespace om
