#include "cli/lora_options.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "util/json.h"

namespace qb::cli {

namespace {

std::string DirectoryName(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

Result<std::shared_ptr<const LoraAdapters>> LoadLoraModules(const std::vector<std::string>& specs,
                                                           const ModelConfig& config, const std::string& served_name,
                                                           int64_t max_rank) {
  auto set = std::make_shared<LoraAdapters>();
  std::set<std::string> names;
  for (const std::string& spec : specs) {
    std::string name, path;
    if (spec.starts_with("{")) {  // vLLM's JSON form: {"name": ..., "path": ..., "base_model_name": ...}
      QB_ASSIGN_OR_RETURN(const Json j, ParseJson(spec, "--lora-modules"));
      QB_ASSIGN_OR_RETURN(auto n, JsonString(j, "name", "--lora-modules"));
      QB_ASSIGN_OR_RETURN(auto p, JsonString(j, "path", "--lora-modules"));
      name = n.value_or("");
      path = p.value_or("");
    } else {
      const auto eq = spec.find('=');
      name = eq == std::string::npos ? DirectoryName(spec) : spec.substr(0, eq);
      path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    }
    if (name.empty() || path.empty())
      return InvalidArgument(fmt::format("--lora-modules: \"{}\" is not NAME=PATH", spec));
    if (served_name.empty())
      return InvalidArgument("--lora-modules needs a --served-model-name (with none, every name is the model)");
    if (name == served_name)
      return InvalidArgument(
          fmt::format("--lora-modules: the adapter name \"{}\" is the model's own (--served-model-name)", name));
    if (!names.insert(name).second)
      return InvalidArgument(fmt::format("--lora-modules: two adapters are named \"{}\"", name));
    QB_ASSIGN_OR_RETURN(LoraAdapter a, LoadLoraAdapter(path, config, name));
    if (max_rank > 0 && a.rank > max_rank)
      return InvalidArgument(
          fmt::format("--lora-modules: adapter \"{}\" has rank {}, above --max-lora-rank {}", name, a.rank, max_rank));
    set->push_back(std::make_shared<const LoraAdapter>(std::move(a)));
  }
  return std::shared_ptr<const LoraAdapters>(std::move(set));
}

Result<std::shared_ptr<const LoraAdapters>> LoadOneLora(const std::string& path, const ModelConfig& config) {
  if (path.empty()) return std::shared_ptr<const LoraAdapters>();
  QB_ASSIGN_OR_RETURN(LoraAdapter a, LoadLoraAdapter(path, config, DirectoryName(path)));
  return std::make_shared<const LoraAdapters>(LoraAdapters{std::make_shared<const LoraAdapter>(std::move(a))});
}

ForwardBatch WithLora(ForwardBatch batch, const LoraAdapters* set) {
  if (set == nullptr || set->empty()) return batch;
  batch.lora = set;
  batch.adapters.assign(batch.tokens.size(), 1);
  return batch;
}

}  // namespace qb::cli
