#include "server/prometheus.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace qb::prom {

namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

void Header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string Family::LabelText(const Labels& labels, const std::string& extra) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& [k, v] : sorted) out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", k, Escape(v));
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

void Counter::Add(double v, const Labels& labels) {
  const std::string key = LabelText(labels);
  std::lock_guard<std::mutex> lock(mu_);
  values_[key] += v;
}

void Counter::Render(std::string& out) const {
  Header(out, name_, help_, "counter");
  std::lock_guard<std::mutex> lock(mu_);
  if (values_.empty()) out += name_ + " 0\n";
  for (const auto& [labels, v] : values_) out += name_ + labels + " " + Number(v) + "\n";
}

void Gauge::Set(double v, const Labels& labels) {
  const std::string key = LabelText(labels);
  std::lock_guard<std::mutex> lock(mu_);
  values_[key] = v;
}

void Gauge::Render(std::string& out) const {
  Header(out, name_, help_, "gauge");
  std::lock_guard<std::mutex> lock(mu_);
  if (values_.empty()) out += name_ + " 0\n";
  for (const auto& [labels, v] : values_) out += name_ + labels + " " + Number(v) + "\n";
}

void Histogram::Observe(double v, const Labels& labels) {
  const std::string key = LabelText(labels);
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[key];
  if (s.counts.empty()) s.counts.assign(buckets_.size(), 0);
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (v <= buckets_[i]) {
      s.counts[i] += 1;
      break;
    }
  s.sum += v;
  ++s.count;
}

void Histogram::Render(std::string& out) const {
  Header(out, name_, help_, "histogram");
  std::lock_guard<std::mutex> lock(mu_);
  auto render = [&](const std::string& labels, const Series& s) {
    // `labels` is "{a="b"}" or "": insert le into it.
    const std::string inner = labels.empty() ? "" : labels.substr(1, labels.size() - 2);
    double cum = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      cum += s.counts.empty() ? 0 : s.counts[i];
      out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name_, inner, inner.empty() ? "" : ",", Number(buckets_[i]),
                         Number(cum));
    }
    out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name_, inner, inner.empty() ? "" : ",", s.count);
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name_, labels, Number(s.sum), name_, labels, s.count);
  };
  if (series_.empty()) render("", Series{});
  for (const auto& [labels, s] : series_) render(labels, s);
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help) {
  auto c = std::make_unique<Counter>(name, help);
  Counter* p = c.get();
  families_.push_back(std::move(c));
  return p;
}

Gauge* Registry::AddGauge(const std::string& name, const std::string& help) {
  auto g = std::make_unique<Gauge>(name, help);
  Gauge* p = g.get();
  families_.push_back(std::move(g));
  return p;
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help, std::vector<double> buckets) {
  auto h = std::make_unique<Histogram>(name, help, std::move(buckets));
  Histogram* p = h.get();
  families_.push_back(std::move(h));
  return p;
}

std::string Registry::Render() const {
  std::string out;
  for (const auto& f : families_) f->Render(out);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

}  // namespace qb::prom
