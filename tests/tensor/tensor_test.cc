#include "tensor/tensor.h"

#include <gtest/gtest.h>

#include <cstring>

namespace qb {
namespace {

TEST(DTypeTest, SizesFollowTheBlockLayouts) {
  EXPECT_EQ(RowBytes(DType::kF32, 10), 40);
  EXPECT_EQ(RowBytes(DType::kBF16, 10), 20);
  EXPECT_EQ(RowBytes(DType::kQ8_0, 64), 68);
  EXPECT_EQ(RowBytes(DType::kQ4_0, 64), 36);
  EXPECT_EQ(RowBytes(DType::kQ4_K, 512), 288);
  EXPECT_EQ(RowBytes(DType::kQ6_K, 256), 210);
  EXPECT_EQ(DTypeFromName("Q4_K"), DType::kQ4_K);
  EXPECT_EQ(DTypeFromName("bf16"), DType::kBF16);
  EXPECT_EQ(RowBytes(DType::kQ5_0, 64), 44);
  EXPECT_EQ(RowBytes(DType::kQ5_1, 64), 48);
  EXPECT_EQ(RowBytes(DType::kQ4_1, 64), 40);
  EXPECT_EQ(RowBytes(DType::kIq4Nl, 64), 36);
  EXPECT_EQ(RowBytes(DType::kQ2_K, 512), 168);
  EXPECT_EQ(RowBytes(DType::kQ3_K, 256), 110);
  EXPECT_EQ(RowBytes(DType::kQ5_K, 256), 176);
  EXPECT_EQ(DTypeFromName("Q5_K"), DType::kQ5_K);
  EXPECT_EQ(DTypeFromName("iq4_nl"), DType::kIq4Nl);
  EXPECT_FALSE(DTypeFromName("iq2_xs").has_value());
}

TEST(TensorTest, EmptyIsZeroedAndWritable) {
  Tensor t = Tensor::Empty(DType::kF32, {3, 4});
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.rows(), 3);
  EXPECT_EQ(t.cols(), 4);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_TRUE(t.writable());
  for (int i = 0; i < 12; ++i) EXPECT_EQ(t.data<float>()[i], 0.f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
}

// The long-lived flavour (a fresh mapping): zeroed, writable, any size, freed with its last owner
// (under ASan a leak or a bad unmap would show).
TEST(TensorTest, EmptyLongLivedIsZeroedAndWritable) {
  for (int64_t rows : {int64_t{1}, int64_t{3}, int64_t{1} << 17}) {  // 4 bytes ... 32 MiB
    Tensor t = Tensor::EmptyLongLived(DType::kF32, {rows, 64});
    ASSERT_TRUE(t.writable());
    EXPECT_EQ(t.device(), Device::kCpu);
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); i += 997) ASSERT_EQ(p[i], 0.f) << i;
    t.mutable_data<float>()[t.numel() - 1] = 2.f;
    Tensor copy = t;
    t = Tensor();
    EXPECT_EQ(copy.data<float>()[copy.numel() - 1], 2.f);
  }
}

TEST(TensorTest, SliceAndReshapeShareMemory) {
  Tensor t = Tensor::Empty(DType::kF32, {4, 2});
  for (int i = 0; i < 8; ++i) t.mutable_data<float>()[i] = static_cast<float>(i);
  Tensor s = t.Slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.f);
  s.mutable_data<float>()[0] = 42.f;
  EXPECT_EQ(t.data<float>()[2], 42.f);
  Tensor r = t.Reshape({8});
  EXPECT_EQ(r.data<float>()[7], 7.f);
  Tensor c = t.Copy();
  c.mutable_data<float>()[0] = -1.f;
  EXPECT_EQ(t.data<float>()[0], 0.f);
}

TEST(TensorTest, QuantizedRowsSliceByBlocks) {
  Tensor t = Tensor::Empty(DType::kQ8_0, {3, 64});
  EXPECT_EQ(t.row_bytes(), 68);
  EXPECT_EQ(t.nbytes(), 204u);
  Tensor s = t.Slice(2, 3);
  EXPECT_EQ(static_cast<const uint8_t*>(s.raw()) - static_cast<const uint8_t*>(t.raw()), 136);
}

TEST(TensorTest, ViewsAreReadOnly) {
  const float data[2] = {1.f, 2.f};
  Tensor v = Tensor::View(DType::kF32, {2}, data);
  EXPECT_FALSE(v.writable());
  EXPECT_DEATH(v.mutable_raw(), "read-only");
}

}  // namespace
}  // namespace qb
