// eval/report.h: the JSON, Markdown and HTML views of an EvalReport (2 layers, 2 heads, T = 8, values
// chosen so every printed digit is unambiguous: no value sits on a rounding tie), write_report, and
// the rendering of report.html in headless Chromium (skipped when `chromium` is not installed; the
// set-up installs Debian's `chromium`). OM_REPORT_RENDER_DIR=DIR keeps the rendered files there.
#include "eval/report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kLayers = 2, kHeads = 2, kSeq = 8;

// Chance of the first key under uniform causal attention, (H_T − 1)/(T − 1) (eval/metrics.h).
double chance_for(int T) {
  double h = 0.0;
  for (int k = 1; k <= T; ++k) h += 1.0 / k;
  return (h - 1.0) / (T - 1);
}

EvalReport make_report() {
  EvalReport r;
  r.meta = {{"checkpoint", "ckpt/step_100"}, {"step", 100}, {"model", "llama-tiny <&> \"x\""}};
  r.tokens = 448;  // 64 windows × 7 scored targets
  r.sequences = 64;
  r.loss = 3.25;
  r.ppl = std::exp(3.25);  // 25.790339917...
  r.bits_per_byte = 1.125;
  r.seq_length = kSeq;
  r.chance = chance_for(kSeq);  // 0.24540816...
  r.first_mass = {{0.75, 0.5}, {0.25, 0.16}};      // layer means 0.625, 0.205
  r.first_argmax = {{1.0, 0.75}, {0.5, 0.25}};     // layer means 0.875, 0.375
  r.first_mass_overall = 0.415;
  r.first_argmax_overall = 0.625;
  // key_share[l][h][j]: distinct, non-dyadic values (1/(j + 2 + l + h) / 3), a full-precision test of
  // the JSON numbers.
  r.key_share.assign(kLayers, std::vector<std::vector<double>>(kHeads, std::vector<double>(kSeq)));
  for (int l = 0; l < kLayers; ++l)
    for (int h = 0; h < kHeads; ++h)
      for (int j = 0; j < kSeq; ++j) r.key_share[l][h][j] = 1.0 / (j + 2 + l + h) / 3.0;
  r.kurtosis_first = {120.5, 350.3};
  r.kurtosis_rest = {4.5, 6.7};
  r.maxabs_first = {812.0, 1530.5};
  r.maxabs_rest = {3.2, 4.4};
  r.kurtosis_first_mean = 235.4;
  r.kurtosis_rest_mean = 5.6;
  r.maxabs_first_mean = 1171.25;
  r.maxabs_rest_mean = 3.8;
  r.quant = {{"w8a8-coarse", r.ppl + 1.0, 1.0}, {"w4-g128", r.ppl + 12.5, 12.5}};
  return r;
}

int count(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) ++n;
  return n;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The text of each <svg ...>...</svg> whose root carries `class="plot <kind>"`.
std::vector<std::string> svgs_of_kind(const std::string& html, const std::string& kind) {
  std::vector<std::string> out;
  const std::string open = "<svg class=\"plot " + kind + "\"";
  for (size_t p = html.find(open); p != std::string::npos; p = html.find(open, p + 1)) {
    const size_t end = html.find("</svg>", p);
    out.push_back(html.substr(p, end == std::string::npos ? std::string::npos : end - p));
  }
  return out;
}

// Doubles are written with 17 significant digits (nlohmann: max_digits10), which round-trips an IEEE
// double exactly: the comparison is exact (tolerance rule 1, exact by construction).
TEST(ReportJson, NumbersRoundTripExactly) {
  const EvalReport r = make_report();
  const json j = json::parse(report_to_json(r).dump(2));
  EXPECT_EQ(j["meta"], r.meta);
  EXPECT_EQ(j["tokens"].get<int64_t>(), r.tokens);
  EXPECT_EQ(j["sequences"].get<int64_t>(), r.sequences);
  EXPECT_EQ(j["seq_length"].get<int64_t>(), r.seq_length);
  for (const auto& [key, want] : std::vector<std::pair<std::string, double>>{
           {"loss", r.loss}, {"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte}, {"chance", r.chance},
           {"first_mass_overall", r.first_mass_overall}, {"first_argmax_overall", r.first_argmax_overall},
           {"kurtosis_first_mean", r.kurtosis_first_mean}, {"kurtosis_rest_mean", r.kurtosis_rest_mean},
           {"maxabs_first_mean", r.maxabs_first_mean}, {"maxabs_rest_mean", r.maxabs_rest_mean}}) {
    EXPECT_EQ(j[key].get<double>(), want) << key;
  }
  EXPECT_EQ(j["first_mass"].get<std::vector<std::vector<double>>>(), r.first_mass);
  EXPECT_EQ(j["first_argmax"].get<std::vector<std::vector<double>>>(), r.first_argmax);
  EXPECT_EQ(j["key_share"].get<std::vector<std::vector<std::vector<double>>>>(), r.key_share);
  EXPECT_EQ(j["kurtosis_first"].get<std::vector<double>>(), r.kurtosis_first);
  EXPECT_EQ(j["kurtosis_rest"].get<std::vector<double>>(), r.kurtosis_rest);
  EXPECT_EQ(j["maxabs_first"].get<std::vector<double>>(), r.maxabs_first);
  EXPECT_EQ(j["maxabs_rest"].get<std::vector<double>>(), r.maxabs_rest);
  ASSERT_EQ(j["quant"].size(), r.quant.size());
  for (size_t i = 0; i < r.quant.size(); ++i) {
    EXPECT_EQ(j["quant"][i]["scheme"].get<std::string>(), r.quant[i].scheme);
    EXPECT_EQ(j["quant"][i]["ppl"].get<double>(), r.quant[i].ppl);
    EXPECT_EQ(j["quant"][i]["penalty"].get<double>(), r.quant[i].penalty);
  }
}

TEST(ReportJson, NonFiniteNumbersAreNull) {
  EvalReport r = make_report();
  r.bits_per_byte = NAN;
  r.ppl = INFINITY;
  r.kurtosis_first[1] = NAN;
  r.key_share[0][1][3] = NAN;
  const json j = report_to_json(r);
  EXPECT_TRUE(j["bits_per_byte"].is_null());
  EXPECT_TRUE(j["ppl"].is_null());
  EXPECT_TRUE(j["kurtosis_first"][1].is_null());
  EXPECT_EQ(j["kurtosis_first"][0].get<double>(), r.kurtosis_first[0]);
  EXPECT_TRUE(j["key_share"][0][1][3].is_null());
  const std::string text = j.dump();
  EXPECT_EQ(text.find("NaN"), std::string::npos) << text;
  EXPECT_EQ(text.find("nan"), std::string::npos) << text;
  EXPECT_EQ(text.find("inf"), std::string::npos) << text;
  EXPECT_TRUE(json::accept(text)) << text;
}

TEST(ReportMarkdown, TablesHoldTheFormattedNumbers) {
  const EvalReport r = make_report();
  const std::string md = report_to_markdown(r);
  // Summary: loss 4 decimals, perplexity 2, bits per byte 4.
  EXPECT_NE(md.find("| tokens | sequences | loss (nats) | perplexity | bits per byte |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 448 | 64 | 3.2500 | 25.79 | 1.1250 |"), std::string::npos) << md;
  // First-token attention: percent with one decimal; chance (H_8 − 1)/7 = 24.54%; layers are head means.
  EXPECT_NE(md.find("| overall | 41.5% | 62.5% | 24.5% |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0 | 62.5% | 87.5% |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | 20.5% | 37.5% |"), std::string::npos) << md;
  EXPECT_NE(md.find("T = 8"), std::string::npos) << md;
  // Hidden states per layer and mean.
  EXPECT_NE(md.find("| 0 | 120.50 | 4.50 | 812.00 | 3.20 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | 350.30 | 6.70 | 1530.50 | 4.40 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| mean | 235.40 | 5.60 | 1171.25 | 3.80 |"), std::string::npos) << md;
  // Quantisation: penalty 1.0 / 25.790 = 3.877% and 12.5 / 25.790 = 48.47% of the full perplexity.
  EXPECT_NE(md.find("| full precision | 25.79 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| w8a8-coarse | 26.79 | +1.00 | +3.9% |"), std::string::npos) << md;
  EXPECT_NE(md.find("| w4-g128 | 38.29 | +12.50 | +48.5% |"), std::string::npos) << md;
  // Meta printed as given (strings unquoted).
  EXPECT_NE(md.find("- **checkpoint**: ckpt/step_100"), std::string::npos) << md;
  EXPECT_NE(md.find("- **step**: 100"), std::string::npos) << md;
}

TEST(ReportMarkdown, MissingValuesPrintAsNotAvailable) {
  EvalReport r = make_report();
  r.bits_per_byte = NAN;
  r.quant.clear();
  r.quant.push_back({"a|b", 30.0, 4.0});
  const std::string md = report_to_markdown(r);
  EXPECT_NE(md.find("| 448 | 64 | 3.2500 | 25.79 | n/a |"), std::string::npos) << md;
  EXPECT_NE(md.find("| a\\|b | 30.00 | +4.00 |"), std::string::npos) << md;  // '|' escaped in a cell
}

TEST(ReportHtml, SectionsPlotsAndNoScripts) {
  const EvalReport r = make_report();
  const std::string html = report_to_html(r);
  for (const char* id : {"summary", "attention", "hidden", "quantisation"}) {
    EXPECT_EQ(count(html, std::string("<section id=\"") + id + "\""), 1) << id;
  }
  // One key-share small multiple per layer, then first-token, kurtosis and max |activation|.
  EXPECT_EQ(count(html, "<svg"), kLayers + 3);
  EXPECT_EQ(count(html, "<svg class=\"plot key-share\""), kLayers);
  EXPECT_EQ(count(html, "<svg class=\"plot first-token\""), 1);
  EXPECT_EQ(count(html, "<svg class=\"plot kurtosis\""), 1);
  EXPECT_EQ(count(html, "<svg class=\"plot maxabs\""), 1);
  // Each key-share plot: one unbroken line per head (no NaN), a legend entry per head, axes.
  for (const std::string& svg : svgs_of_kind(html, "key-share")) {
    EXPECT_EQ(count(svg, "<polyline"), kHeads);
    EXPECT_EQ(count(svg, "class=\"legend-entry\""), kHeads);
    EXPECT_EQ(count(svg, "class=\"axis x-axis\""), 1);
    EXPECT_EQ(count(svg, "class=\"axis y-axis\""), 1);
    EXPECT_GE(count(svg, "class=\"tick-label\""), 4);
  }
  // First-token: two bars per layer (mass, argmax) and the dashed chance line; legend of three.
  const std::vector<std::string> first = svgs_of_kind(html, "first-token");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(count(first[0], "<rect class=\"bar\""), 2 * kLayers);
  EXPECT_EQ(count(first[0], "stroke-dasharray"), 2);  // the line and its legend swatch
  EXPECT_EQ(count(first[0], "class=\"legend-entry\""), 3);
  EXPECT_NE(first[0].find("chance 24.5%"), std::string::npos);
  // Kurtosis: first vs rest (a dot per layer each) plus the Gaussian reference; max |act|: first vs rest.
  const std::vector<std::string> kurt = svgs_of_kind(html, "kurtosis"), maxabs = svgs_of_kind(html, "maxabs");
  ASSERT_EQ(kurt.size(), 1u);
  ASSERT_EQ(maxabs.size(), 1u);
  EXPECT_EQ(count(kurt[0], "<circle class=\"dot\""), 2 * kLayers);
  EXPECT_EQ(count(kurt[0], "class=\"legend-entry\""), 3);
  EXPECT_EQ(count(maxabs[0], "<circle class=\"dot\""), 2 * kLayers);
  EXPECT_EQ(count(maxabs[0], "class=\"legend-entry\""), 2);
  // Self-contained: no scripts, no external resources.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  for (const char* external : {"src=", "href=", "url(", "@import", "<link"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
  // The quantisation table is an HTML table.
  EXPECT_NE(html.find("<table class=\"quantisation\">"), std::string::npos);
  EXPECT_NE(html.find("<td>w4-g128</td><td>38.29</td><td>+12.50</td><td>+48.5%</td>"), std::string::npos);
}

TEST(ReportHtml, TextIsEscaped) {
  EvalReport r = make_report();
  r.quant[0].scheme = "<b>w8</b>";
  const std::string html = report_to_html(r);
  EXPECT_NE(html.find("llama-tiny &lt;&amp;&gt; &quot;x&quot;"), std::string::npos);
  EXPECT_EQ(html.find("<&>"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;w8&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
}

class ReportFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::temp_directory_path() / ("om_report_" + std::to_string(::getpid())); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ReportFiles, WritesTheThreeViews) {
  const EvalReport r = make_report();
  const fs::path out = dir_ / "nested" / "eval";
  const Status st = write_report(out.string(), r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(json::parse(read_text(out / "report.json")), report_to_json(r));
  EXPECT_EQ(read_text(out / "report.md"), report_to_markdown(r));
  EXPECT_EQ(read_text(out / "report.html"), report_to_html(r));
}

TEST_F(ReportFiles, UnwritableDirectoryIsAnIOErrorNamingIt) {
  fs::create_directories(dir_);
  const fs::path blocker = dir_ / "a_file";
  std::ofstream(blocker) << "x";
  const Status st = write_report((blocker / "eval").string(), make_report());
  EXPECT_EQ(st.code(), StatusCode::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("a_file"), std::string::npos) << st.ToString();
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium: screenshot and serialised DOM of report.html.

std::string find_chromium() {
  if (const char* env = std::getenv("OM_CHROMIUM"); env != nullptr && *env) return env;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');) {
    const fs::path p = fs::path(d) / "chromium";
    if (!d.empty() && ::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

std::string quoted(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

// Runs headless Chromium on `url` with `mode` (--screenshot=... or --dump-dom) in a fresh profile
// under `work`; stdout goes to `stdout_path`, stderr (D-Bus noise on a headless server) to a log.
// Returns the exit status; 124 from `timeout` when it hangs.
int run_chromium(const std::string& chromium, const fs::path& work, const std::string& tag, const std::string& mode,
                 const std::string& url, const fs::path& stdout_path) {
  const fs::path profile = work / ("profile-" + tag), home = work / "home";
  fs::create_directories(home);
  // A hung browser must not hang ctest: 60 s is 20× the ~1-3 s a render takes on the 2-core CI machine.
  const std::string cmd = "HOME=" + quoted(home.string()) + " timeout 60 " + quoted(chromium) +
                          " --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" +
                          quoted(profile.string()) + " --window-size=1200,3000 " + mode + " " + quoted(url) + " >" +
                          quoted(stdout_path.string()) + " 2>" + quoted((work / ("chromium-" + tag + ".log")).string());
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct PngHeader {
  bool valid = false;
  uint32_t width = 0, height = 0;
};
// The 8-byte PNG signature, then the IHDR chunk: length 13, "IHDR", width and height big-endian.
PngHeader read_png_header(const fs::path& p) {
  const std::string b = read_text(p);
  PngHeader h;
  static const unsigned char kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 24 || b.compare(0, 8, reinterpret_cast<const char*>(kSig), 8) != 0 || b.compare(12, 4, "IHDR") != 0)
    return h;
  auto be32 = [&](size_t o) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[o + i]);
    return v;
  };
  h.valid = true;
  h.width = be32(16);
  h.height = be32(20);
  return h;
}

TEST(ReportRender, ChromiumScreenshotAndDom) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not on PATH (Debian package `chromium`; or set OM_CHROMIUM)";
  const char* keep = std::getenv("OM_REPORT_RENDER_DIR");
  const fs::path work = (keep && *keep) ? fs::absolute(keep)
                                        : fs::temp_directory_path() / ("om_report_render_" + std::to_string(::getpid()));
  fs::remove_all(work);
  ASSERT_TRUE(write_report(work.string(), make_report()).ok());
  // The baseline: the same window rendering an empty page. The report must compress to a larger PNG
  // (text, tables and plots add entropy to a white page).
  std::ofstream(work / "empty.html") << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body></body></html>\n";

  const std::string url = "file://" + (work / "report.html").string();
  ASSERT_EQ(run_chromium(chromium, work, "shot", "--screenshot=" + quoted((work / "report.png").string()), url,
                         work / "shot.out"), 0)
      << read_text(work / "chromium-shot.log");
  ASSERT_EQ(run_chromium(chromium, work, "empty", "--screenshot=" + quoted((work / "empty.png").string()),
                         "file://" + (work / "empty.html").string(), work / "empty.out"), 0);
  ASSERT_EQ(run_chromium(chromium, work, "dom", "--dump-dom", url, work / "dom.html"), 0)
      << read_text(work / "chromium-dom.log");

  ASSERT_TRUE(fs::exists(work / "report.png"));
  const PngHeader png = read_png_header(work / "report.png");
  ASSERT_TRUE(png.valid) << "report.png is not a PNG";
  EXPECT_EQ(png.width, 1200u);   // --window-size
  EXPECT_EQ(png.height, 3000u);
  const auto report_bytes = fs::file_size(work / "report.png"), empty_bytes = fs::file_size(work / "empty.png");
  EXPECT_GT(report_bytes, empty_bytes) << "the screenshot looks blank";
  std::printf("report.png %ux%u, %ju bytes (empty page: %ju bytes)\n", png.width, png.height,
              static_cast<uintmax_t>(report_bytes), static_cast<uintmax_t>(empty_bytes));

  // The DOM Chromium built from the file: sections and plots survived parsing (an unbalanced tag or a
  // stray '<' in the text would swallow or reorder them).
  const std::string dom = read_text(work / "dom.html");
  for (const char* id : {"summary", "attention", "hidden", "quantisation"}) {
    EXPECT_EQ(count(dom, std::string("<section id=\"") + id + "\""), 1) << id;
  }
  EXPECT_EQ(count(dom, "<svg class=\"plot key-share\""), kLayers);
  EXPECT_EQ(count(dom, "<svg class=\"plot first-token\""), 1);
  EXPECT_EQ(count(dom, "<svg class=\"plot kurtosis\""), 1);
  EXPECT_EQ(count(dom, "<svg class=\"plot maxabs\""), 1);
  for (const std::string& svg : svgs_of_kind(dom, "key-share")) EXPECT_EQ(count(svg, "<polyline"), kHeads);
  EXPECT_EQ(count(dom, "<table class=\"quantisation\">"), 1);
  EXPECT_NE(dom.find("llama-tiny &lt;&amp;&gt;"), std::string::npos);
  if (!(keep && *keep)) fs::remove_all(work);
}

}  // namespace
}  // namespace om
