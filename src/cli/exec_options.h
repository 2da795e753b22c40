// --threads and --kernels, shared by the commands that run the model.
#pragma once

#include <functional>

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "kernels/exec_context.h"
#include "model/loader.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace qb::cli {

struct ExecOptions {
  int threads = 0;               // 0: DefaultThreads()
  std::string kernels = "fast";  // "fast", an ISA path by name (kernels::IsaName) or "reference"
  std::string quant;             // --quant: convert the weights at load
  int tensor_parallel = 1;       // --tensor-parallel-size (commands that call AddTensorParallel)

  void Add(CLI::App* cmd, const std::string& default_kernels);
  // --tensor-parallel-size, for the commands that run the model through a StepModel.
  void AddTensorParallel(CLI::App* cmd);
  // Builds the pool and context (the context points into the pool: keep both alive).
  Status Make(std::unique_ptr<ThreadPool>* pool, kernels::ExecContext* ctx) const;
  // Loads PATH with --quant applied, quantizing on `pool`.
  Result<LoadedModel> Load(const std::string& path, ThreadPool* pool,
                           std::function<void(const std::string&, double)> progress = {}) const;
};

// Threads by default: floor(the cgroup CPU quota), at least 1, at most the cpuset and cores.
int DefaultThreads();

}  // namespace qb::cli
