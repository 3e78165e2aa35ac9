#include "core/check.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace om {
namespace {
std::atomic<int> g_rank{-1};
}  // namespace

void set_process_rank(int rank) { g_rank.store(rank); }
int process_rank() { return g_rank.load(); }

std::string process_identity() {
  char host[256] = "unknown";
  gethostname(host, sizeof(host) - 1);
  int rank = g_rank.load();
  if (rank < 0) return std::string("host ") + host;
  return "rank " + std::to_string(rank) + " (host " + host + ")";
}

std::string format_message(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out;
  if (n > 0) {
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
    out.assign(buf.data(), static_cast<size_t>(n));
  }
  va_end(ap2);
  return out;
}

void fatal_error(const char* expr, const std::string& message, const char* file, int line) {
  std::fprintf(stderr, "[%s] FATAL %s:%d: check failed: %s%s%s\n", process_identity().c_str(), file, line,
               expr, message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace om
