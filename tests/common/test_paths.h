// Where tests find their data: the fixtures copied into tests/data, the workspace's optional
// ../shared/testdata, and a scratch directory per test.
#pragma once

#include <string>

namespace qb::test {

std::string DataDir();                          // tests/data
std::string DataPath(const std::string& rel);  // tests/data/<rel>
// ../shared/testdata/<rel> if it exists, else "" (callers skip with a message).
std::string SharedPath(const std::string& rel);
// A fresh empty directory for the running test (removed at the start of the next run).
std::string ScratchDir();
std::string ReadBytes(const std::string& path);
void WriteBytes(const std::string& path, const std::string& bytes);

}  // namespace qb::test
