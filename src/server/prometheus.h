// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
// text exposition format (HELP and TYPE lines, sorted label sets, _bucket/_sum/_count).
// Thread-safe; observations are cheap (a mutex per metric family).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qb::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Family {
 public:
  Family(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  virtual ~Family() = default;
  virtual void Render(std::string& out) const = 0;
  const std::string& name() const { return name_; }

 protected:
  static std::string LabelText(const Labels& labels, const std::string& extra = "");
  std::string name_, help_;
  mutable std::mutex mu_;
};

class Counter : public Family {
 public:
  using Family::Family;
  void Add(double v, const Labels& labels = {});
  void Render(std::string& out) const override;

 private:
  std::map<std::string, double> values_;  // label text -> value
};

class Gauge : public Family {
 public:
  using Family::Family;
  void Set(double v, const Labels& labels = {});
  void Render(std::string& out) const override;

 private:
  std::map<std::string, double> values_;
};

class Histogram : public Family {
 public:
  Histogram(std::string name, std::string help, std::vector<double> buckets)
      : Family(std::move(name), std::move(help)), buckets_(std::move(buckets)) {}
  void Observe(double v, const Labels& labels = {});
  void Render(std::string& out) const override;

 private:
  struct Series {
    std::vector<double> counts;  // per bucket (not cumulative)
    double sum = 0;
    uint64_t count = 0;
  };
  std::vector<double> buckets_;
  std::map<std::string, Series> series_;
};

class Registry {
 public:
  Counter* AddCounter(const std::string& name, const std::string& help);
  Gauge* AddGauge(const std::string& name, const std::string& help);
  Histogram* AddHistogram(const std::string& name, const std::string& help, std::vector<double> buckets);
  std::string Render() const;

 private:
  std::vector<std::unique_ptr<Family>> families_;
};

// Bucket bounds start, start*factor, ... (count of them).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

}  // namespace qb::prom
