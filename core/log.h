// Logging: printf-style, one line per call, prefixed with time and (when known) rank.
// By default info lines come only from rank 0 (or a process whose rank is not yet known);
// warnings and errors come from every rank. Thread safety: each call writes one line atomically.
#pragma once

namespace om {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
void set_log_all_ranks(bool all_ranks);  // info/debug from every rank, not only rank 0
void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace om

#define OM_LOG_DEBUG(...) ::om::log_message(::om::LogLevel::kDebug, __VA_ARGS__)
#define OM_LOG_INFO(...) ::om::log_message(::om::LogLevel::kInfo, __VA_ARGS__)
#define OM_LOG_WARN(...) ::om::log_message(::om::LogLevel::kWarn, __VA_ARGS__)
#define OM_LOG_ERROR(...) ::om::log_message(::om::LogLevel::kError, __VA_ARGS__)
