#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <string>

#include "core/check.h"

namespace om {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_all_ranks{false};
const char* level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "D";
    case LogLevel::kInfo: return "I";
    case LogLevel::kWarn: return "W";
    case LogLevel::kError: return "E";
  }
  return "?";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
void set_log_all_ranks(bool all_ranks) { g_all_ranks.store(all_ranks); }

void log_message(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) < g_level.load()) return;
  int rank = process_rank();
  if (level < LogLevel::kWarn && rank > 0 && !g_all_ranks.load()) return;
  va_list ap;
  va_start(ap, fmt);
  char body[4096];
  std::vsnprintf(body, sizeof(body), fmt, ap);
  va_end(ap);
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
  std::FILE* out = level >= LogLevel::kWarn ? stderr : stdout;
  std::string who = rank >= 0 ? " r" + std::to_string(rank) : std::string();
  // One fprintf: lines from different threads do not interleave.
  std::fprintf(out, "%s %s%s] %s\n", level_tag(level), stamp, who.c_str(), body);
  std::fflush(out);
}

}  // namespace om
