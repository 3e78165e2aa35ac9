// Programmer-error checks that are always on, and the one fatal-error path.
// Every message carries the process identity ("rank 3 (host gpu07)") so a failure in an 8-rank job
// says where it happened. fatal_error prints to stderr and aborts (so a core or stack trace can be
// taken); it never returns and never throws.
//   OM_CHECK(cond, "fmt", args...)    always on; printf-style message
//   OM_DCHECK(cond, "fmt", args...)   debug builds only
//   OM_CHECK_GEN(expr, ok, to_str)    library calls returning a code (CUDA, NCCL, cuBLAS, MPI)
#pragma once

#include <string>

namespace om {

// Set once per process after MPI init (rank -1 = not yet known / single process).
void set_process_rank(int rank);
int process_rank();
// "rank 3 (host gpu07)", or "host gpu07" before the rank is known.
std::string process_identity();

[[noreturn]] void fatal_error(const char* expr, const std::string& message, const char* file, int line);
std::string format_message(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format_message() { return std::string(); }

}  // namespace om

#define OM_CHECK(cond, ...)                                                                 \
  do {                                                                                      \
    if (!(cond)) [[unlikely]]                                                               \
      ::om::fatal_error(#cond, ::om::format_message(__VA_ARGS__), __FILE__, __LINE__);      \
  } while (0)

#ifdef NDEBUG
#define OM_DCHECK(cond, ...) \
  do {                       \
  } while (0)
#else
#define OM_DCHECK(cond, ...) OM_CHECK(cond, __VA_ARGS__)
#endif

#define OM_CHECK_GEN(expr, ok, to_str)                                           \
  do {                                                                           \
    auto om_e_ = (expr);                                                         \
    if (om_e_ != (ok)) [[unlikely]]                                              \
      ::om::fatal_error(#expr, to_str(om_e_), __FILE__, __LINE__);               \
  } while (0)
