// Op profiler (core/profiler.h).
#include "core/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "core/buffer.h"
#include "core/status.h"

namespace om::profiler {
namespace {

std::atomic<bool> g_on{false};
thread_local int t_depth = 0;  // open Scopes of this thread (only the outermost records)

struct Pending {
  std::string name, detail;
  void* start;
  void* end;
  double flops, bytes;
};

std::mutex g_mu;
std::map<std::string, OpStats> g_totals;   // by name
std::map<std::string, OpStats> g_details;  // by "name detail"
std::vector<Pending> g_pending;            // CUDA event pairs not yet read
std::vector<void*> g_free_events;          // recorded-and-read events for reuse

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void* take_event() {  // REQUIRES g_mu
  if (g_free_events.empty()) return device_memory::cuda_event_create();
  void* e = g_free_events.back();
  g_free_events.pop_back();
  return e;
}

void add_to(std::map<std::string, OpStats>& totals, const std::string& name, double seconds, double flops,
            double bytes) {  // REQUIRES g_mu
  OpStats& s = totals[name];
  s.name = name;
  s.calls += 1;
  s.seconds += seconds;
  s.flops += flops;
  s.bytes += bytes;
}

void add(const std::string& name, const std::string& detail, double seconds, double flops,
         double bytes) {  // REQUIRES g_mu
  add_to(g_totals, name, seconds, flops, bytes);
  if (!detail.empty()) add_to(g_details, name + " " + detail, seconds, flops, bytes);
}

void resolve_pending() {  // REQUIRES g_mu
  for (const Pending& p : g_pending) {
    add(p.name, p.detail, device_memory::cuda_event_elapsed_s(p.start, p.end), p.flops, p.bytes);
    g_free_events.push_back(p.start);
    g_free_events.push_back(p.end);
  }
  g_pending.clear();
}

}  // namespace

bool enabled() { return g_on.load(std::memory_order_relaxed); }
void set_enabled(bool on) { g_on.store(on, std::memory_order_relaxed); }

Scope::Scope(const ExecContext& ctx, const char* name, double flops, double bytes, std::string detail) {
  if (!enabled()) return;
  if (t_depth++ > 0) {  // inside another op: that one is timed
    name_ = nullptr;
    active_ = true;     // still pairs the depth decrement below
    return;
  }
  active_ = true;
  ctx_ = ctx;
  name_ = name;
  detail_ = std::move(detail);
  flops_ = flops;
  bytes_ = bytes;
  if (ctx.device.kind == DeviceKind::kCpu) {
    start_s_ = now_s();
    return;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  start_event_ = take_event();
  device_memory::cuda_event_record(start_event_, ctx.stream.handle);
}

Scope::~Scope() {
  if (!active_) return;
  --t_depth;
  if (name_ == nullptr) return;
  if (ctx_.device.kind == DeviceKind::kCpu) {
    const double seconds = now_s() - start_s_;
    std::lock_guard<std::mutex> lock(g_mu);
    add(name_, detail_, seconds, flops_, bytes_);
    return;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  void* end = take_event();
  device_memory::cuda_event_record(end, ctx_.stream.handle);
  g_pending.push_back(Pending{name_, std::move(detail_), start_event_, end, flops_, bytes_});
}

namespace {
std::vector<OpStats> sorted(const std::map<std::string, OpStats>& totals) {  // REQUIRES g_mu
  std::vector<OpStats> out;
  for (const auto& [name, s] : totals) out.push_back(s);
  std::sort(out.begin(), out.end(), [](const OpStats& a, const OpStats& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.name < b.name;
  });
  return out;
}
}  // namespace

std::vector<OpStats> Collect() {
  std::lock_guard<std::mutex> lock(g_mu);
  resolve_pending();
  return sorted(g_totals);
}

std::vector<OpStats> CollectDetails() {
  std::lock_guard<std::mutex> lock(g_mu);
  resolve_pending();
  return sorted(g_details);
}

void Reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  resolve_pending();
  g_totals.clear();
  g_details.clear();
}

std::string FormatTable(const std::vector<OpStats>& ops, int64_t steps, double step_seconds, double peak_flops,
                        double peak_bytes_per_s, const std::vector<OpStats>& details) {
  const double n = static_cast<double>(std::max<int64_t>(steps, 1));
  const auto header = [](int width, const char* first) {
    return format_message("%-*s %10s %10s %6s %9s %6s %9s %6s\n", width, first, "calls/step", "ms/step", "step%",
                          "TFLOP/s", "peak%", "GB/s", "peak%");
  };
  const auto row = [&](int width, const OpStats& s) {
    // Rates only where a call took a measurable time (≥ 1 µs): a no-op (a one-rank collective) has none.
    const bool timed = s.calls > 0 && s.seconds / static_cast<double>(s.calls) >= 1e-6;
    const double flops = timed ? s.flops / s.seconds : 0, bw = timed ? s.bytes / s.seconds : 0;
    const auto rate = [](double v, double scale) { return v > 0 ? format_message("%.1f", v / scale) : std::string("-"); };
    const auto share = [](double v, double peak) {
      return v > 0 && peak > 0 ? format_message("%.1f", 100 * v / peak) : std::string("-");
    };
    return format_message("%-*s %10.1f %10.3f %6.1f %9s %6s %9s %6s\n", width, s.name.c_str(),
                          static_cast<double>(s.calls) / n, 1e3 * s.seconds / n, 100 * s.seconds / n / step_seconds,
                          rate(flops, 1e12).c_str(), share(flops, peak_flops).c_str(), rate(bw, 1e9).c_str(),
                          share(bw, peak_bytes_per_s).c_str());
  };
  std::string out = header(30, "op");
  double sum = 0;
  for (const OpStats& s : ops) {
    sum += s.seconds;
    out += row(30, s);
  }
  out += format_message("%-30s %10s %10.3f %6.1f\n", "all ops", "", 1e3 * sum / n, 100 * sum / n / step_seconds);
  out += format_message("%-30s %10s %10.3f %6.1f\n", "outside ops (host, waits)", "", 1e3 * (step_seconds - sum / n),
                        100 * (1 - sum / n / step_seconds));
  if (details.empty()) return out;
  int width = 30;
  for (const OpStats& s : details) width = std::max(width, static_cast<int>(s.name.size()));
  out += '\n';
  out += header(width, "op detail");
  for (const OpStats& s : details) out += row(width, s);
  return out;
}

}  // namespace om::profiler
