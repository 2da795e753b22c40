#include <gtest/gtest.h>

#include "util/byte_size.h"

namespace qb {
namespace {

TEST(ParseByteSize, DockerAndKubernetesNotations) {
  EXPECT_EQ(ParseByteSize("17179869184").value(), int64_t{16} << 30);
  EXPECT_EQ(ParseByteSize("16g").value(), int64_t{16} << 30);
  EXPECT_EQ(ParseByteSize("16G").value(), int64_t{16} << 30);
  EXPECT_EQ(ParseByteSize("16Gi").value(), int64_t{16} << 30);
  EXPECT_EQ(ParseByteSize("512m").value(), int64_t{512} << 20);
  EXPECT_EQ(ParseByteSize("512MB").value(), int64_t{512} << 20);
  EXPECT_EQ(ParseByteSize("64k").value(), 65536);
  EXPECT_EQ(ParseByteSize("1.5g").value(), int64_t{3} << 29);
  EXPECT_EQ(ParseByteSize("1t").value(), int64_t{1} << 40);
}

TEST(ParseByteSize, RejectsNonsense) {
  for (const char* bad : {"", "g", "-1g", "12q", "1.2.3g", "abc", "16 gigs"})
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
}

TEST(HumanBytes, DecimalAndBinary) {
  EXPECT_EQ(HumanBytes(int64_t{15232} * 1000 * 1000), "15.23 GB (14.19 GiB)");
  EXPECT_NE(HumanBytes(512 << 20).find("MiB"), std::string::npos);
}

}  // namespace
}  // namespace qb
