// qwenbox: one binary, one subcommand per task.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries the commands' output (JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt("qwenbox"));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");

  CLI::App app{"qwenbox: a Qwen2.5 inference server for resource-limited containers"};
  app.set_version_flag("--version", QWENBOX_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
  app.parse_complete_callback([&] { spdlog::set_level(spdlog::level::from_str(log_level)); });

  int exit_code = 0;
  qb::cli::AddServeCommand(app, &exit_code);
  qb::cli::AddLogitsCommand(app, &exit_code);
  qb::cli::AddGenerateCommand(app, &exit_code);
  qb::cli::AddInfoCommand(app, &exit_code);
  qb::cli::AddTokenizeCommand(app, &exit_code);
  qb::cli::AddDetokenizeCommand(app, &exit_code);
  qb::cli::AddChatTemplateCommand(app, &exit_code);
  qb::cli::AddMakeModelCommand(app, &exit_code);
  qb::cli::AddMakeLoraCommand(app, &exit_code);
  qb::cli::AddBenchCommand(app, &exit_code);
  qb::cli::AddQuantizeCommand(app, &exit_code);
  qb::cli::AddPlanCommand(app, &exit_code);
  qb::cli::AddLoadtestCommand(app, &exit_code);
  qb::cli::AddTuneCommand(app, &exit_code);
  qb::cli::AddPerplexityCommand(app, &exit_code);

  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
