#include "launch/preemption.h"

#include <csignal>

namespace om {
namespace {

volatile std::sig_atomic_t g_preempt = 0;

extern "C" void on_preempt_signal(int) { g_preempt = 1; }

}  // namespace

void install_preemption_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_preempt_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal must not fail an in-flight read or write
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool preemption_requested() { return g_preempt != 0; }
void request_preemption() { g_preempt = 1; }
void clear_preemption() { g_preempt = 0; }

}  // namespace om
