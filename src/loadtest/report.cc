#include "loadtest/report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

namespace qb::loadtest {

Result<Slo> ParseSlo(const std::string& spec) {
  Slo s;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    double v = 0;
    try {
      size_t used = 0;
      if (eq == std::string::npos) throw std::invalid_argument("no =");
      v = std::stod(item.substr(eq + 1), &used);
      if (used != item.size() - eq - 1 || !(v > 0)) throw std::invalid_argument("bad");
    } catch (...) {
      return InvalidArgument(fmt::format("--slo \"{}\": expected ttft=MS,tpot=MS,itl=MS,e2e=MS with positive numbers", spec));
    }
    if (key == "ttft") s.ttft_ms = v;
    else if (key == "tpot") s.tpot_ms = v;
    else if (key == "itl") s.itl_ms = v;
    else if (key == "e2e") s.e2e_ms = v;
    else return InvalidArgument(fmt::format("--slo: unknown objective \"{}\" (ttft, tpot, itl, e2e)", key));
  }
  return s;
}

LoadReport MakeReport(const LoadRun& run, const Slo& slo) {
  LoadReport r;
  r.duration_s = run.duration_s;
  r.slo = slo;
  r.max_in_flight = run.max_in_flight;
  std::vector<double> ttft, tpot, itl, e2e;
  const auto seconds = static_cast<size_t>(std::ceil(std::max(run.duration_s, 1e-9)));
  r.tokens_per_second.assign(seconds, 0);
  r.requests_per_second.assign(seconds, 0);
  double first = 1e300;
  for (const RequestResult& q : run.results) first = std::min(first, q.start_s);
  auto bucket = [&](double t) { return std::min(seconds - 1, static_cast<size_t>(std::max(0.0, t - first))); };
  for (const RequestResult& q : run.results) {
    if (!q.success) {
      ++r.failed;
      ++r.errors[q.error];
      continue;
    }
    ++r.completed;
    r.input_tokens += q.prompt_tokens;
    r.output_tokens += q.output_tokens;
    const double t_ttft = q.ttft_s * 1e3, t_e2e = (q.end_s - q.start_s) * 1e3;
    ttft.push_back(t_ttft);
    e2e.push_back(t_e2e);
    std::optional<double> t_tpot;
    if (q.output_tokens > 1) {
      t_tpot = (t_e2e - t_ttft) / static_cast<double>(q.output_tokens - 1);
      tpot.push_back(*t_tpot);
    }
    double worst_itl = 0;
    for (double g : q.itl_s) {
      itl.push_back(g * 1e3);
      worst_itl = std::max(worst_itl, g * 1e3);
    }
    // Tokens per chunk spread evenly over the chunks for the timeline.
    const double per_chunk = q.token_times_s.empty() ? 0
                                                     : static_cast<double>(q.output_tokens) /
                                                           static_cast<double>(q.token_times_s.size());
    for (double t : q.token_times_s) r.tokens_per_second[bucket(t)] += per_chunk;
    r.requests_per_second[bucket(q.end_s)] += 1;
    const bool good = (!slo.ttft_ms || t_ttft <= *slo.ttft_ms) && (!slo.tpot_ms || !t_tpot || *t_tpot <= *slo.tpot_ms) &&
                      (!slo.itl_ms || worst_itl <= *slo.itl_ms) && (!slo.e2e_ms || t_e2e <= *slo.e2e_ms);
    if (good) ++r.good;
  }
  r.ttft_ms = Summarize(ttft);
  r.tpot_ms = Summarize(tpot);
  r.itl_ms = Summarize(itl);
  r.e2e_ms = Summarize(e2e);
  if (r.duration_s > 0) {
    r.request_s = r.completed / r.duration_s;
    r.output_tok_s = static_cast<double>(r.output_tokens) / r.duration_s;
    r.total_tok_s = static_cast<double>(r.input_tokens + r.output_tokens) / r.duration_s;
    r.goodput_req_s = r.good / r.duration_s;
  }
  return r;
}

namespace {

Json SummaryJson(const Summary& s) {
  return {{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99},
          {"min", s.min},   {"max", s.max}, {"std", s.stddev}, {"count", s.count}};
}

}  // namespace

Json ReportJson(const LoadReport& r) {
  Json j;
  j["completed"] = r.completed;
  j["failed"] = r.failed;
  j["duration_s"] = r.duration_s;
  j["input_tokens"] = r.input_tokens;
  j["output_tokens"] = r.output_tokens;
  j["request_s"] = r.request_s;
  j["output_tok_s"] = r.output_tok_s;
  j["total_tok_s"] = r.total_tok_s;
  j["ttft_ms"] = SummaryJson(r.ttft_ms);
  j["tpot_ms"] = SummaryJson(r.tpot_ms);
  j["itl_ms"] = SummaryJson(r.itl_ms);
  j["e2e_ms"] = SummaryJson(r.e2e_ms);
  j["max_in_flight"] = r.max_in_flight;
  Json slo = Json::object();
  if (r.slo.ttft_ms) slo["ttft_ms"] = *r.slo.ttft_ms;
  if (r.slo.tpot_ms) slo["tpot_ms"] = *r.slo.tpot_ms;
  if (r.slo.itl_ms) slo["itl_ms"] = *r.slo.itl_ms;
  if (r.slo.e2e_ms) slo["e2e_ms"] = *r.slo.e2e_ms;
  j["slo"] = slo;
  j["good_requests"] = r.good;
  j["goodput_req_s"] = r.goodput_req_s;
  Json errors = Json::array();
  for (const auto& [msg, n] : r.errors) errors.push_back({{"error", msg}, {"count", n}});
  j["errors"] = errors;
  j["timeline"] = {{"output_tok_s", r.tokens_per_second}, {"completed_req_s", r.requests_per_second}};
  return j;
}

std::string ReportTable(const LoadReport& r) {
  std::string s;
  s += fmt::format("{:<34}{:>12}\n", "completed requests", r.completed);
  s += fmt::format("{:<34}{:>12}\n", "failed requests", r.failed);
  s += fmt::format("{:<34}{:>12.2f}\n", "duration (s)", r.duration_s);
  s += fmt::format("{:<34}{:>12}\n", "input tokens", r.input_tokens);
  s += fmt::format("{:<34}{:>12}\n", "output tokens", r.output_tokens);
  s += fmt::format("{:<34}{:>12.2f}\n", "requests/s", r.request_s);
  s += fmt::format("{:<34}{:>12.2f}\n", "output tokens/s", r.output_tok_s);
  s += fmt::format("{:<34}{:>12.2f}\n", "total tokens/s", r.total_tok_s);
  if (!r.slo.empty()) s += fmt::format("{:<34}{:>12.2f}  ({} of {} within the SLO)\n", "goodput (requests/s)", r.goodput_req_s, r.good, r.completed);
  s += fmt::format("{:<10}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "ms", "mean", "p50", "p90", "p99", "max");
  for (const auto& [name, m] : {std::pair<const char*, const Summary*>{"TTFT", &r.ttft_ms}, {"TPOT", &r.tpot_ms},
                                {"ITL", &r.itl_ms}, {"E2E", &r.e2e_ms}})
    s += fmt::format("{:<10}{:>10.1f}{:>10.1f}{:>10.1f}{:>10.1f}{:>10.1f}\n", name, m->mean, m->p50, m->p90, m->p99, m->max);
  for (const auto& [msg, n] : r.errors) s += fmt::format("error x{}: {}\n", n, msg);
  return s;
}

std::string XmlEscape(const std::string& in) {
  std::string out;
  for (char c : in) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string ReportSvg(const LoadReport& r, const std::string& title) {
  constexpr int kW = 860, kH = 560;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"20\" y=\"24\" font-size=\"15\">{}</text>\n",
      kW, kH, XmlEscape(title));
  // Panel 1: latency percentiles (p50, p90, p99) of the four metrics, one bar group each.
  const Summary* metrics[] = {&r.ttft_ms, &r.tpot_ms, &r.itl_ms, &r.e2e_ms};
  const char* names[] = {"TTFT", "TPOT", "ITL", "E2E"};
  const char* colors[] = {"#4c78a8", "#f58518", "#e45756"};
  s += "<text x=\"20\" y=\"50\">latency percentiles (ms; each group on its own scale)</text>\n";
  for (int m = 0; m < 4; ++m) {
    const double vals[] = {metrics[m]->p50, metrics[m]->p90, metrics[m]->p99};
    const double top = std::max(vals[2], 1e-9);
    const int x0 = 40 + m * 200, y0 = 230, h = 150;
    for (int k = 0; k < 3; ++k) {
      const int bh = static_cast<int>(vals[k] / top * h);
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"40\" height=\"{}\" fill=\"{}\"/>\n", x0 + k * 48, y0 - bh, bh, colors[k]);
      s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">{:.1f}</text>\n", x0 + k * 48, y0 - bh - 4, vals[k]);
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", x0 + 50, y0 + 18, names[m]);
  }
  s += "<text x=\"40\" y=\"272\" fill=\"#4c78a8\">p50</text><text x=\"80\" y=\"272\" fill=\"#f58518\">p90</text>"
       "<text x=\"120\" y=\"272\" fill=\"#e45756\">p99</text>\n";
  // Panel 2: output tokens/s per second of the run.
  const auto& tps = r.tokens_per_second;
  const double peak = tps.empty() ? 1 : std::max(1.0, *std::max_element(tps.begin(), tps.end()));
  const int px = 60, py = 520, pw = 760, ph = 200;
  s += fmt::format("<text x=\"20\" y=\"300\">output tokens/s over the run (peak {:.0f}, mean {:.1f})</text>\n", peak, r.output_tok_s);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", px, py, px + pw, py);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", px, py, px, py - ph);
  if (!tps.empty()) {
    std::string pts;
    for (size_t i = 0; i < tps.size(); ++i) {
      const double x = px + (tps.size() == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(tps.size() - 1) * pw);
      const double y = py - tps[i] / peak * ph;
      pts += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#4c78a8\" stroke-width=\"2\"/>\n", pts);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\">{:.0f}</text><text x=\"{}\" y=\"{}\">0</text>\n", 20, py - ph + 4, peak, 40, py + 4);
  s += fmt::format("<text x=\"{}\" y=\"{}\">{:.0f} s</text>\n", px + pw - 20, py + 18, r.duration_s);
  s += "</svg>\n";
  return s;
}

}  // namespace qb::loadtest
