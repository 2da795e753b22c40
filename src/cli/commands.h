// Each subcommand registers itself on the app; its callback stores the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace qb::cli {

void AddLogitsCommand(CLI::App& app, int* exit_code);
void AddGenerateCommand(CLI::App& app, int* exit_code);
void AddInfoCommand(CLI::App& app, int* exit_code);
void AddMakeModelCommand(CLI::App& app, int* exit_code);
void AddMakeLoraCommand(CLI::App& app, int* exit_code);
void AddTokenizeCommand(CLI::App& app, int* exit_code);
void AddDetokenizeCommand(CLI::App& app, int* exit_code);
void AddChatTemplateCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddQuantizeCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddPlanCommand(CLI::App& app, int* exit_code);
void AddLoadtestCommand(CLI::App& app, int* exit_code);
void AddTuneCommand(CLI::App& app, int* exit_code);
void AddPerplexityCommand(CLI::App& app, int* exit_code);

}  // namespace qb::cli
