#include "common/test_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qb::test {

namespace fs = std::filesystem;

namespace {

// The directories are compiled in; environment variables override them, for test binaries
// built here and run from another checkout (the GPU machine: scripts/cuda-device-check.sh).
std::string FromEnv(const char* var, const char* compiled) {
  const char* v = std::getenv(var);
  return v != nullptr && *v != '\0' ? v : compiled;
}

}  // namespace

std::string DataDir() { return FromEnv("QB_TEST_DATA_DIR", QB_TEST_DATA_DIR); }
std::string DataPath(const std::string& rel) { return (fs::path(DataDir()) / rel).string(); }

std::string SharedPath(const std::string& rel) {
  const fs::path p = fs::path(FromEnv("QB_SHARED_TESTDATA_DIR", QB_SHARED_TESTDATA_DIR)) / rel;
  std::error_code ec;
  return fs::exists(p, ec) ? p.string() : std::string();
}

std::string ScratchDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "scratch";
  for (char& c : name)
    if (c == '/') c = '_';
  const fs::path dir = fs::temp_directory_path() / ("qwenbox-test-" + std::to_string(::getuid())) /
                       (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

}  // namespace qb::test
