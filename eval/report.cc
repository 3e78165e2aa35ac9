// The evaluator's report writers (eval/report.h). Three views of one EvalReport:
//   report.json  every field under its struct name, non-finite numbers as null;
//   report.md    paper-style tables (summary, first-token attention, hidden states, quantisation);
//   report.html  one self-contained page: inline CSS, inline SVG plots, no scripts, no external
//                resources; every piece of text placed in it goes through html_escape.
// Rates (first-token mass and argmax, chance) are fractions in the struct and printed as percent.
#include "eval/report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>
#include <utility>

namespace om {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Numbers and text.

// JSON has no NaN or infinity: a missing or overflowed value (bits per byte without a tokenizer,
// exp of a huge loss) becomes null, explicitly, so consumers of the json object see it too.
json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }
json num_vec(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(num(x));
  return a;
}

constexpr const char* kNotAvailable = "n/a";

std::string printf_str(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, x);
  return buf;
}
std::string fixed(double x, int decimals) {
  if (!std::isfinite(x)) return kNotAvailable;
  return printf_str(("%." + std::to_string(decimals) + "f").c_str(), x);
}
std::string signed_fixed(double x, int decimals) {
  if (!std::isfinite(x)) return kNotAvailable;
  return printf_str(("%+." + std::to_string(decimals) + "f").c_str(), x);
}
// A fraction printed as a percentage with one decimal ("62.5%"), the paper's precision.
std::string percent(double fraction) { return std::isfinite(fraction) ? fixed(100.0 * fraction, 1) + "%" : kNotAvailable; }

// Mean of the finite entries (a layer's heads); NaN when there are none.
double finite_mean(const std::vector<double>& v) {
  double sum = 0.0;
  int64_t n = 0;
  for (double x : v) {
    if (std::isfinite(x)) { sum += x; ++n; }
  }
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}
double at_or_nan(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : NAN; }

// Penalty as a percentage of the full-precision perplexity; NaN when that is not positive.
double penalty_fraction(double penalty, double full_ppl) {
  return (std::isfinite(full_ppl) && full_ppl > 0.0) ? penalty / full_ppl : NAN;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// A Markdown table cell: '|' would end the cell and a newline the row.
std::string md_cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

// Meta values are printed as given: strings without quotes, everything else as compact JSON.
// Invalid UTF-8 is replaced rather than thrown on (meta comes from file names and flags).
std::string meta_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Layers counted by the longest per-layer vector, so a partly filled report still prints.
size_t attention_layers(const EvalReport& r) {
  return std::max({r.first_mass.size(), r.first_argmax.size(), r.key_share.size()});
}
size_t hidden_layers(const EvalReport& r) {
  return std::max({r.kurtosis_first.size(), r.kurtosis_rest.size(), r.maxabs_first.size(), r.maxabs_rest.size()});
}
const std::vector<double>& row_or_empty(const std::vector<std::vector<double>>& v, size_t l) {
  static const std::vector<double> kEmpty;
  return l < v.size() ? v[l] : kEmpty;
}

// ---------------------------------------------------------------------------------------------
// Inline SVG plots. A Plot is data plus two axes; render_svg lays it out in a fixed pixel box with a
// legend on the right. Every element written carries a class, so tests and CSS can find it.

enum class Scale : uint8_t {
  kLinear,
  kLog10,        // decades; only positive values are drawn
  kLog2OnePlus,  // log2(1 + x): key positions 0..T−1, spreading the first few keys apart
};
enum class TickFormat : uint8_t { kInteger, kFixed, kPercent, kGeneral };
enum class Mark : uint8_t { kLine, kLineWithDots, kBars };
enum class Stroke : uint8_t { kSolid, kDashed };

struct Axis {
  Scale scale = Scale::kLinear;
  double lo = 0.0, hi = 1.0;  // domain, data units
  std::vector<double> ticks;  // data units
  TickFormat format = TickFormat::kGeneral;
  int decimals = 0;           // kFixed / kPercent
  std::string label;

  double transform(double v) const {
    switch (scale) {
      case Scale::kLog10: return std::log10(v);
      case Scale::kLog2OnePlus: return std::log2(1.0 + v);
      case Scale::kLinear: break;
    }
    return v;
  }
  bool drawable(double v) const {
    if (!std::isfinite(v)) return false;
    if (scale == Scale::kLog10) return v > 0.0;
    if (scale == Scale::kLog2OnePlus) return v > -1.0;
    return true;
  }
  // Position in [0, 1] (clamped: a bar base below the domain sits on the axis).
  double unit(double v) const {
    const double a = transform(lo), b = transform(hi);
    const double t = (transform(v) - a) / (b - a);
    return std::clamp(t, -0.02, 1.02);
  }
  std::string tick_text(double v) const {
    switch (format) {
      case TickFormat::kInteger: return printf_str("%.0f", v);
      case TickFormat::kFixed: return fixed(v, decimals);
      case TickFormat::kPercent: return fixed(100.0 * v, decimals) + "%";
      case TickFormat::kGeneral: break;
    }
    return printf_str("%g", v);
  }
};

struct Series {
  std::string label;
  std::string color;  // "#rrggbb"
  std::vector<double> x, y;
  Mark mark = Mark::kLine;
  Stroke stroke = Stroke::kSolid;
};

struct Plot {
  std::string css_class;  // second class of the <svg>: "plot <css_class>"
  std::string title;
  int width = 420, height = 240;  // plot area plus margins, legend excluded
  Axis x, y;
  std::vector<Series> series;
};

// "Nice" linear ticks covering [lo, hi] with steps 1, 2 or 5 × 10^k (about `target` intervals);
// widens the axis to the outer ticks.
void nice_linear(Axis& a, double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + (lo != 0.0 ? std::fabs(lo) : 1.0);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  const double step = (r < 1.5 ? 1.0 : r < 3.0 ? 2.0 : r < 7.0 ? 5.0 : 10.0) * mag;
  a.scale = Scale::kLinear;
  a.lo = std::floor(lo / step + 1e-9) * step;
  a.hi = std::ceil(hi / step - 1e-9) * step;
  a.ticks.clear();
  for (double t = a.lo; t <= a.hi + 0.5 * step; t += step) a.ticks.push_back(std::fabs(t) < 1e-12 * step ? 0.0 : t);
  a.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
}

// Decade ticks covering [lo, hi] (both > 0).
void log_decades(Axis& a, double lo, double hi) {
  a.scale = Scale::kLog10;
  int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  int e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  if (e1 <= e0) e1 = e0 + 1;
  a.lo = std::pow(10.0, e0);
  a.hi = std::pow(10.0, e1);
  const int stride = (e1 - e0 + 5) / 6;  // at most ~6 labelled decades
  a.ticks.clear();
  for (int e = e0; e <= e1; e += stride) a.ticks.push_back(std::pow(10.0, e));
  a.format = TickFormat::kGeneral;
}

// A y axis for non-negative values spanning possibly several orders of magnitude (kurtosis, max
// |activation|): linear from 0, unless all values are positive and max/min ≥ 20, where a linear axis
// would squeeze the smaller series into the bottom 5% of the plot; then decades.
void value_axis(Axis& a, const std::vector<double>& values) {
  double mn = INFINITY, mx = -INFINITY;
  for (double v : values) {
    if (std::isfinite(v)) { mn = std::min(mn, v); mx = std::max(mx, v); }
  }
  if (!std::isfinite(mn)) { nice_linear(a, 0.0, 1.0, 4); a.format = TickFormat::kFixed; return; }
  constexpr double kLogRatio = 20.0;
  if (mn > 0.0 && mx / mn >= kLogRatio) { log_decades(a, mn, mx); return; }
  nice_linear(a, std::min(0.0, mn), mx, 4);
  a.format = TickFormat::kFixed;
}

// Categorical layer axis: layer l at x = l, one tick per layer (thinned past 16 layers).
Axis layer_axis(size_t n_layers) {
  Axis a;
  a.lo = -0.5;
  a.hi = std::max<double>(static_cast<double>(n_layers), 1.0) - 0.5;
  const size_t stride = (n_layers + 15) / 16;
  for (size_t l = 0; l < n_layers; l += std::max<size_t>(stride, 1)) a.ticks.push_back(static_cast<double>(l));
  a.format = TickFormat::kInteger;
  a.label = "layer";
  return a;
}

// Tableau-10 for up to 10 series; evenly spaced hues beyond (many heads).
std::string series_color(size_t i, size_t n) {
  static const char* kTableau[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  if (n <= 10) return kTableau[i % 10];
  // HSL(h, 65%, 45%) to RGB.
  const double h = 360.0 * static_cast<double>(i) / static_cast<double>(n), s = 0.65, l = 0.45;
  const double c = (1.0 - std::fabs(2.0 * l - 1.0)) * s, hp = h / 60.0;
  const double x = c * (1.0 - std::fabs(std::fmod(hp, 2.0) - 1.0)), m = l - c / 2.0;
  double r = 0, g = 0, b = 0;
  if (hp < 1) { r = c; g = x; } else if (hp < 2) { r = x; g = c; } else if (hp < 3) { g = c; b = x; }
  else if (hp < 4) { g = x; b = c; } else if (hp < 5) { r = x; b = c; } else { r = c; b = x; }
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", static_cast<int>(std::lround((r + m) * 255)),
                static_cast<int>(std::lround((g + m) * 255)), static_cast<int>(std::lround((b + m) * 255)));
  return buf;
}

std::string px(double v) { return printf_str("%.1f", v); }

std::string render_svg(const Plot& p) {
  // Margins: title on top, y tick labels on the left, x tick labels and axis label below.
  constexpr double kLeft = 58, kRight = 12, kTop = 26, kBottom = 40;
  constexpr double kLegendRow = 15, kCharWidth = 6.5, kSwatch = 18;
  const double plot_w = p.width - kLeft - kRight, plot_h = p.height - kTop - kBottom;

  // Legend on the right, in as many columns as the plot height needs.
  size_t max_label = 1;
  for (const Series& s : p.series) max_label = std::max(max_label, s.label.size());
  const size_t rows = std::max<size_t>(1, static_cast<size_t>((p.height - kTop) / kLegendRow) - 1);
  const size_t cols = p.series.empty() ? 0 : (p.series.size() + rows - 1) / rows;
  const double col_w = kSwatch + 6 + kCharWidth * static_cast<double>(max_label) + 8;
  const double total_w = p.width + col_w * static_cast<double>(cols);

  auto sx = [&](double v) { return kLeft + plot_w * p.x.unit(v); };
  auto sy = [&](double v) { return kTop + plot_h * (1.0 - p.y.unit(v)); };

  std::string o;
  o += "<svg class=\"plot " + html_escape(p.css_class) + "\" width=\"" + px(total_w) + "\" height=\"" + px(p.height) +
       "\" viewBox=\"0 0 " + px(total_w) + " " + px(p.height) + "\" role=\"img\" aria-label=\"" +
       html_escape(p.title) + "\">\n";
  o += "<title class=\"plot-tooltip\">" + html_escape(p.title) + "</title>\n";
  o += "<text class=\"plot-title\" x=\"" + px(kLeft) + "\" y=\"16\">" + html_escape(p.title) + "</text>\n";

  // Axes: grid lines at the y ticks, tick marks and labels, the frame's left and bottom edges.
  o += "<g class=\"axis y-axis\">\n";
  for (double t : p.y.ticks) {
    const std::string y = px(sy(t));
    o += "<line class=\"grid-line\" x1=\"" + px(kLeft) + "\" x2=\"" + px(kLeft + plot_w) + "\" y1=\"" + y +
         "\" y2=\"" + y + "\"/>";
    o += "<text class=\"tick-label\" x=\"" + px(kLeft - 5) + "\" y=\"" + y +
         "\" text-anchor=\"end\" dominant-baseline=\"middle\">" + html_escape(p.y.tick_text(t)) + "</text>\n";
  }
  o += "<line class=\"axis-line\" x1=\"" + px(kLeft) + "\" x2=\"" + px(kLeft) + "\" y1=\"" + px(kTop) + "\" y2=\"" +
       px(kTop + plot_h) + "\"/>\n";
  o += "<text class=\"axis-label\" transform=\"translate(13 " + px(kTop + plot_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(p.y.label) + "</text>\n</g>\n";
  o += "<g class=\"axis x-axis\">\n";
  for (double t : p.x.ticks) {
    const std::string x = px(sx(t));
    o += "<line class=\"tick-mark\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + px(kTop + plot_h) + "\" y2=\"" +
         px(kTop + plot_h + 4) + "\"/>";
    o += "<text class=\"tick-label\" x=\"" + x + "\" y=\"" + px(kTop + plot_h + 15) + "\" text-anchor=\"middle\">" +
         html_escape(p.x.tick_text(t)) + "</text>\n";
  }
  o += "<line class=\"axis-line\" x1=\"" + px(kLeft) + "\" x2=\"" + px(kLeft + plot_w) + "\" y1=\"" +
       px(kTop + plot_h) + "\" y2=\"" + px(kTop + plot_h) + "\"/>\n";
  o += "<text class=\"axis-label\" x=\"" + px(kLeft + plot_w / 2) + "\" y=\"" + px(p.height - 6) +
       "\" text-anchor=\"middle\">" + html_escape(p.x.label) + "</text>\n</g>\n";

  // Bars of the kBars series share each x slot: 80% of the slot, split evenly among them.
  size_t n_bar_series = 0;
  for (const Series& s : p.series) n_bar_series += s.mark == Mark::kBars;
  const double slot_px = plot_w / (p.x.hi - p.x.lo);  // the layer axis: one unit per slot, linear
  const double bar_px = n_bar_series ? 0.8 * slot_px / static_cast<double>(n_bar_series) : 0.0;

  size_t bar_index = 0;
  for (size_t si = 0; si < p.series.size(); ++si) {
    const Series& s = p.series[si];
    const std::string dash = s.stroke == Stroke::kDashed ? " stroke-dasharray=\"5 4\"" : "";
    o += "<g class=\"series s" + std::to_string(si) + "\">";
    if (s.mark == Mark::kBars) {
      const double base = sy(p.y.scale == Scale::kLog10 ? p.y.lo : std::max(0.0, p.y.lo));
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!p.x.drawable(s.x[i]) || !p.y.drawable(s.y[i])) continue;
        const double left = sx(s.x[i]) - 0.4 * slot_px + bar_px * static_cast<double>(bar_index);
        const double top = std::min(base, sy(s.y[i])), h = std::fabs(base - sy(s.y[i]));
        o += "<rect class=\"bar\" x=\"" + px(left) + "\" y=\"" + px(top) + "\" width=\"" + px(bar_px) +
             "\" height=\"" + px(h) + "\" fill=\"" + s.color + "\"/>";
      }
      ++bar_index;
    } else {
      // A polyline per run of drawable points: a NaN breaks the line instead of bridging it.
      std::string points;
      auto flush = [&] {
        if (!points.empty()) {
          o += "<polyline class=\"line\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.5\"" + dash +
               " points=\"" + points + "\"/>";
        }
        points.clear();
      };
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!p.x.drawable(s.x[i]) || !p.y.drawable(s.y[i])) { flush(); continue; }
        if (!points.empty()) points += ' ';
        points += px(sx(s.x[i])) + "," + px(sy(s.y[i]));
        if (s.mark == Mark::kLineWithDots) {
          o += "<circle class=\"dot\" cx=\"" + px(sx(s.x[i])) + "\" cy=\"" + px(sy(s.y[i])) + "\" r=\"2.5\" fill=\"" +
               s.color + "\"/>";
        }
      }
      flush();
    }
    o += "</g>\n";
  }

  // Legend: a swatch (a bar, or a line that is dashed like its series) and the series label.
  o += "<g class=\"legend\">\n";
  for (size_t si = 0; si < p.series.size(); ++si) {
    const Series& s = p.series[si];
    const double x0 = p.width + col_w * static_cast<double>(si / rows);
    const double y0 = kTop + kLegendRow * static_cast<double>(si % rows) + 6;
    o += "<g class=\"legend-entry\">";
    if (s.mark == Mark::kBars) {
      o += "<rect class=\"swatch\" x=\"" + px(x0) + "\" y=\"" + px(y0 - 5) + "\" width=\"" + px(kSwatch) +
           "\" height=\"10\" fill=\"" + s.color + "\"/>";
    } else {
      o += "<line class=\"swatch\" x1=\"" + px(x0) + "\" x2=\"" + px(x0 + kSwatch) + "\" y1=\"" + px(y0) + "\" y2=\"" +
           px(y0) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" +
           (s.stroke == Stroke::kDashed ? " stroke-dasharray=\"5 4\"" : "") + "/>";
    }
    o += "<text class=\"legend-label\" x=\"" + px(x0 + kSwatch + 5) + "\" y=\"" + px(y0) +
         "\" dominant-baseline=\"middle\">" + html_escape(s.label) + "</text></g>\n";
  }
  o += "</g>\n</svg>\n";
  return o;
}

// (a) Attention share per key position for one layer: one line per head.
Plot key_share_plot(const EvalReport& r, size_t l) {
  Plot p;
  p.css_class = "key-share";
  p.title = "layer " + std::to_string(l) + ": attention per key position";
  p.width = 340;
  p.height = 220;
  const auto& heads = l < r.key_share.size() ? r.key_share[l] : std::vector<std::vector<double>>{};
  size_t n_keys = static_cast<size_t>(std::max<int64_t>(r.seq_length, 0));
  double mx = 0.0;
  for (const auto& h : heads) {
    n_keys = std::max(n_keys, h.size());
    for (double v : h) if (std::isfinite(v)) mx = std::max(mx, v);
  }
  p.x.scale = Scale::kLog2OnePlus;
  p.x.lo = 0.0;
  p.x.hi = std::max<double>(static_cast<double>(n_keys) - 1.0, 1.0);
  // Ticks at 0 and the powers of two, plus the last key when it is not crowded by the previous one.
  p.x.ticks.push_back(0.0);
  double last = 0.0;
  for (double t = 1.0; t <= p.x.hi; t *= 2.0) { p.x.ticks.push_back(t); last = t; }
  if (std::log2(1.0 + p.x.hi) - std::log2(1.0 + last) > 0.5) p.x.ticks.push_back(p.x.hi);
  p.x.format = TickFormat::kInteger;
  p.x.label = "key position (log scale)";
  nice_linear(p.y, 0.0, mx > 0.0 ? mx : 1.0, 4);
  p.y.format = TickFormat::kFixed;
  p.y.label = "mean weight";
  for (size_t h = 0; h < heads.size(); ++h) {
    Series s;
    s.label = "head " + std::to_string(h);
    s.color = series_color(h, heads.size());
    for (size_t j = 0; j < heads[h].size(); ++j) {
      s.x.push_back(static_cast<double>(j));
      s.y.push_back(heads[h][j]);
    }
    p.series.push_back(std::move(s));
  }
  return p;
}

// A dashed horizontal reference line across the whole x domain.
Series reference_line(std::string label, double y, const Axis& x) {
  Series s;
  s.label = std::move(label);
  s.color = "#555555";
  s.x = {x.lo, x.hi};
  s.y = {y, y};
  s.stroke = Stroke::kDashed;
  return s;
}

// (b) First-token mass and argmax rate per layer (mean over heads), chance dashed.
Plot first_token_plot(const EvalReport& r) {
  Plot p;
  p.css_class = "first-token";
  p.title = "attention on the first token, per layer (mean over heads)";
  const size_t L = attention_layers(r);
  p.width = std::max(420, 60 + 34 * static_cast<int>(L));
  p.x = layer_axis(L);
  Series mass{"mass on key 0", "#4e79a7", {}, {}, Mark::kBars, Stroke::kSolid};
  Series argmax{"argmax rate", "#f28e2b", {}, {}, Mark::kBars, Stroke::kSolid};
  double mx = std::isfinite(r.chance) ? r.chance : 0.0;
  for (size_t l = 0; l < L; ++l) {
    const double m = finite_mean(row_or_empty(r.first_mass, l)), a = finite_mean(row_or_empty(r.first_argmax, l));
    mass.x.push_back(static_cast<double>(l)); mass.y.push_back(m);
    argmax.x.push_back(static_cast<double>(l)); argmax.y.push_back(a);
    if (std::isfinite(m)) mx = std::max(mx, m);
    if (std::isfinite(a)) mx = std::max(mx, a);
  }
  nice_linear(p.y, 0.0, std::min(1.0, mx > 0.0 ? mx : 1.0), 4);
  p.y.format = TickFormat::kPercent;
  p.y.decimals = std::max(0, p.y.decimals - 2);
  p.y.label = "share";
  p.series.push_back(std::move(mass));
  p.series.push_back(std::move(argmax));
  p.series.push_back(reference_line("chance " + percent(r.chance), r.chance, p.x));
  return p;
}

// (c), (d) A per-layer first-token-vs-rest line plot.
Plot first_vs_rest_plot(const std::string& css_class, const std::string& title, const std::string& y_label,
                        const std::vector<double>& first, const std::vector<double>& rest, size_t L) {
  Plot p;
  p.css_class = css_class;
  p.title = title;
  p.width = std::max(420, 60 + 30 * static_cast<int>(L));
  p.x = layer_axis(L);
  Series f{"first token", "#e15759", {}, {}, Mark::kLineWithDots, Stroke::kSolid};
  Series o{"other tokens", "#4e79a7", {}, {}, Mark::kLineWithDots, Stroke::kSolid};
  std::vector<double> all;
  for (size_t l = 0; l < L; ++l) {
    f.x.push_back(static_cast<double>(l)); f.y.push_back(at_or_nan(first, l));
    o.x.push_back(static_cast<double>(l)); o.y.push_back(at_or_nan(rest, l));
    all.push_back(at_or_nan(first, l));
    all.push_back(at_or_nan(rest, l));
  }
  const bool kurtosis = css_class == "kurtosis";
  if (kurtosis) all.push_back(3.0);  // keep the Gaussian reference in view
  value_axis(p.y, all);
  p.y.label = y_label;
  p.series.push_back(std::move(f));
  p.series.push_back(std::move(o));
  if (kurtosis) p.series.push_back(reference_line("Gaussian (3)", 3.0, p.x));
  return p;
}

// ---------------------------------------------------------------------------------------------
// Tables shared by the Markdown and HTML writers: a header row and body rows of text cells.

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

Table summary_table(const EvalReport& r) {
  return {{"tokens", "sequences", "loss (nats)", "perplexity", "bits per byte"},
          {{std::to_string(r.tokens), std::to_string(r.sequences), fixed(r.loss, 4), fixed(r.ppl, 2),
            fixed(r.bits_per_byte, 4)}}};
}

Table first_token_overall_table(const EvalReport& r) {
  return {{"", "mass on key 0", "argmax rate", "chance"},
          {{"overall", percent(r.first_mass_overall), percent(r.first_argmax_overall), percent(r.chance)}}};
}

Table first_token_layer_table(const EvalReport& r) {
  Table t{{"layer", "mass on key 0", "argmax rate"}, {}};
  for (size_t l = 0; l < attention_layers(r); ++l) {
    t.rows.push_back({std::to_string(l), percent(finite_mean(row_or_empty(r.first_mass, l))),
                      percent(finite_mean(row_or_empty(r.first_argmax, l)))});
  }
  return t;
}

Table hidden_table(const EvalReport& r) {
  Table t{{"layer", "kurtosis first", "kurtosis rest", "max |act| first", "max |act| rest"}, {}};
  for (size_t l = 0; l < hidden_layers(r); ++l) {
    t.rows.push_back({std::to_string(l), fixed(at_or_nan(r.kurtosis_first, l), 2),
                      fixed(at_or_nan(r.kurtosis_rest, l), 2), fixed(at_or_nan(r.maxabs_first, l), 2),
                      fixed(at_or_nan(r.maxabs_rest, l), 2)});
  }
  t.rows.push_back({"mean", fixed(r.kurtosis_first_mean, 2), fixed(r.kurtosis_rest_mean, 2),
                    fixed(r.maxabs_first_mean, 2), fixed(r.maxabs_rest_mean, 2)});
  return t;
}

Table quant_table(const EvalReport& r) {
  Table t{{"scheme", "perplexity", "penalty", "penalty (% of full)"}, {}};
  t.rows.push_back({"full precision", fixed(r.ppl, 2), "—", "—"});
  for (const QuantResult& q : r.quant) {
    const double frac = penalty_fraction(q.penalty, r.ppl);
    t.rows.push_back({q.scheme, fixed(q.ppl, 2), signed_fixed(q.penalty, 2),
                      std::isfinite(frac) ? signed_fixed(100.0 * frac, 1) + "%" : kNotAvailable});
  }
  return t;
}

std::string md_table(const Table& t) {
  // Appends only: GCC 12 warns falsely (-Wrestrict) on `"literal" + std::string&&`.
  auto row_text = [](std::string& o, const std::vector<std::string>& cells) {
    o += '|';
    for (const auto& c : cells) { o += ' '; o += md_cell(c); o += " |"; }
    o += '\n';
  };
  std::string o;
  row_text(o, t.header);
  o += '|';
  for (size_t i = 0; i < t.header.size(); ++i) o += i == 0 ? "---|" : "---:|";
  o += '\n';
  for (const auto& row : t.rows) row_text(o, row);
  return o;
}

std::string html_table(const Table& t, const std::string& css_class) {
  std::string o = "<table class=\"" + html_escape(css_class) + "\">\n<thead><tr>";
  for (const auto& h : t.header) o += "<th>" + html_escape(h) + "</th>";
  o += "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    o += "<tr>";
    for (const auto& c : row) o += "<td>" + html_escape(c) + "</td>";
    o += "</tr>\n";
  }
  return o + "</tbody>\n</table>\n";
}

std::string chance_note(const EvalReport& r) {
  return "Sequence length T = " + std::to_string(r.seq_length) + "; query 0 excluded; chance level " +
         percent(r.chance) + " (uniform causal attention, (H_T − 1)/(T − 1)).";
}

constexpr const char* kCss = R"css(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1180px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
th { background: #f3f3f3; }
th:first-child, td:first-child, table.meta td { text-align: left; }
.note { color: #555; font-size: 13px; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
svg.plot { background: #fff; border: 1px solid #e2e2e2; }
svg.plot text { font-size: 11px; fill: #333; }
svg.plot .plot-title { font-size: 12px; font-weight: bold; }
svg.plot .axis-label { font-size: 11px; fill: #555; }
svg.plot .grid-line { stroke: #ececec; stroke-width: 1; }
svg.plot .axis-line, svg.plot .tick-mark { stroke: #888; stroke-width: 1; }
)css";

}  // namespace

json report_to_json(const EvalReport& r) {
  json j;
  j["meta"] = r.meta.is_null() ? json::object() : r.meta;
  j["tokens"] = r.tokens;
  j["sequences"] = r.sequences;
  j["loss"] = num(r.loss);
  j["ppl"] = num(r.ppl);
  j["bits_per_byte"] = num(r.bits_per_byte);
  j["seq_length"] = r.seq_length;
  j["chance"] = num(r.chance);
  json mass = json::array(), argmax = json::array(), share = json::array();
  for (const auto& v : r.first_mass) mass.push_back(num_vec(v));
  for (const auto& v : r.first_argmax) argmax.push_back(num_vec(v));
  for (const auto& layer : r.key_share) {
    json heads = json::array();
    for (const auto& v : layer) heads.push_back(num_vec(v));
    share.push_back(std::move(heads));
  }
  j["first_mass"] = std::move(mass);
  j["first_argmax"] = std::move(argmax);
  j["first_mass_overall"] = num(r.first_mass_overall);
  j["first_argmax_overall"] = num(r.first_argmax_overall);
  j["key_share"] = std::move(share);
  j["kurtosis_first"] = num_vec(r.kurtosis_first);
  j["kurtosis_rest"] = num_vec(r.kurtosis_rest);
  j["maxabs_first"] = num_vec(r.maxabs_first);
  j["maxabs_rest"] = num_vec(r.maxabs_rest);
  j["kurtosis_first_mean"] = num(r.kurtosis_first_mean);
  j["kurtosis_rest_mean"] = num(r.kurtosis_rest_mean);
  j["maxabs_first_mean"] = num(r.maxabs_first_mean);
  j["maxabs_rest_mean"] = num(r.maxabs_rest_mean);
  json quant = json::array();
  for (const QuantResult& q : r.quant) quant.push_back({{"scheme", q.scheme}, {"ppl", num(q.ppl)}, {"penalty", num(q.penalty)}});
  j["quant"] = std::move(quant);
  return j;
}

std::string report_to_markdown(const EvalReport& r) {
  std::string o = "# Evaluation report\n\n";
  if (r.meta.is_object()) {
    for (const auto& [k, v] : r.meta.items()) o += "- **" + k + "**: " + meta_text(v) + "\n";
    if (!r.meta.empty()) o += "\n";
  } else if (!r.meta.is_null()) {
    o += "- **meta**: " + meta_text(r.meta) + "\n\n";
  }
  o += "## Summary\n\n" + md_table(summary_table(r));
  o += "\n## First-token attention\n\n" + chance_note(r) + "\n\n" + md_table(first_token_overall_table(r));
  o += "\nPer layer (mean over heads):\n\n" + md_table(first_token_layer_table(r));
  o += "\n## Hidden states\n\nEach block's output: kurtosis across channels (Gaussian 3) and max |activation|, "
       "first token vs the other tokens.\n\n" +
       md_table(hidden_table(r));
  o += "\n## Quantisation\n\nPenalty = ppl(quantised) − ppl(full precision), in perplexity points.\n\n";
  o += r.quant.empty() ? "Not run.\n" : md_table(quant_table(r));
  return o;
}

std::string report_to_html(const EvalReport& r) {
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<title>ortho-megatron evaluation report</title>\n<style>" +
                   std::string(kCss) + "</style>\n</head>\n<body>\n<h1>Evaluation report</h1>\n";

  o += "<section id=\"meta\">\n";
  if (r.meta.is_object() && !r.meta.empty()) {
    Table meta{{"key", "value"}, {}};
    for (const auto& [k, v] : r.meta.items()) meta.rows.push_back({k, meta_text(v)});
    o += html_table(meta, "meta");
  } else if (!r.meta.is_null() && !(r.meta.is_object() && r.meta.empty())) {
    o += "<p class=\"note\">" + html_escape(meta_text(r.meta)) + "</p>\n";
  }
  o += "</section>\n";

  o += "<section id=\"summary\">\n<h2>Summary</h2>\n" + html_table(summary_table(r), "summary") + "</section>\n";

  o += "<section id=\"attention\">\n<h2>First-token attention</h2>\n<p class=\"note\">" + html_escape(chance_note(r)) +
       "</p>\n" + html_table(first_token_overall_table(r), "first-token-overall");
  o += "<div class=\"plots\">\n" + render_svg(first_token_plot(r)) + html_table(first_token_layer_table(r), "first-token-layers") + "</div>\n";
  o += "<h3>Mean attention weight per key position (queries i ≥ max(j, 1)), one line per head</h3>\n<div class=\"plots\">\n";
  for (size_t l = 0; l < attention_layers(r); ++l) o += render_svg(key_share_plot(r, l));
  o += "</div>\n</section>\n";

  const size_t L = hidden_layers(r);
  o += "<section id=\"hidden\">\n<h2>Hidden states</h2>\n<p class=\"note\">Each block's output: kurtosis across "
       "channels (Gaussian 3) and max |activation|, first token vs the other tokens.</p>\n" +
       html_table(hidden_table(r), "hidden");
  o += "<div class=\"plots\">\n" +
       render_svg(first_vs_rest_plot("kurtosis", "kurtosis per layer", "kurtosis", r.kurtosis_first, r.kurtosis_rest, L)) +
       render_svg(first_vs_rest_plot("maxabs", "max |activation| per layer", "max |activation|", r.maxabs_first,
                                     r.maxabs_rest, L)) +
       "</div>\n</section>\n";

  o += "<section id=\"quantisation\">\n<h2>Quantisation</h2>\n<p class=\"note\">Fake-quantised linear layers; penalty = "
       "ppl(quantised) − ppl(full precision), in perplexity points.</p>\n";
  o += r.quant.empty() ? "<p class=\"note\">Not run.</p>\n" : html_table(quant_table(r), "quantisation");
  o += "</section>\n</body>\n</html>\n";
  return o;
}

Status write_report(const std::string& dir, const EvalReport& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create report directory '" + dir + "': " + ec.message());
  const std::string json_text =
      report_to_json(r).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  const std::pair<const char*, std::string> files[] = {
      {"report.json", json_text}, {"report.md", report_to_markdown(r)}, {"report.html", report_to_html(r)}};
  for (const auto& [name, text] : files) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError("cannot open '" + path + "' for writing: " + std::strerror(errno));
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) return Status::IOError("writing '" + path + "' failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace om
