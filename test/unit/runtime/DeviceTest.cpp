// The device layer's CPU device: zeroed, aligned allocations, transfers, the bytes it
// holds, and a refusal that names the size.
#include "runtime/device/Device.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace apc {
namespace {

TEST(CpuDevice, AllocationsAreZeroedAlignedAndCounted) {
  auto device = device::cpuDevice();
  EXPECT_EQ(device->name(), "cpu");
  EXPECT_TRUE(device->hostAccessible());
  std::vector<void *> held;
  uint64_t total = 0;
  for (uint64_t bytes : {uint64_t(0), uint64_t(1), uint64_t(63), uint64_t(64), uint64_t(1000),
                         uint64_t(1) << 20}) {
    auto memory = device->allocate(bytes);
    ASSERT_TRUE(memory) << memory.message();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(*memory) % device::kAlignment, 0u) << bytes;
    const auto *p = static_cast<const uint8_t *>(*memory);
    for (uint64_t i = 0; i < bytes; ++i)
      ASSERT_EQ(p[i], 0) << bytes << " at " << i;
    held.push_back(*memory);
    total += bytes;
    EXPECT_EQ(device->bytesInUse(), total);
  }
  device->release(held[3]);
  EXPECT_EQ(device->bytesInUse(), total - 64);
  device->release(held[3]); // released twice, or never allocated: nothing happens
  device->release(nullptr);
  EXPECT_EQ(device->bytesInUse(), total - 64);
}

TEST(CpuDevice, UploadAndDownloadCopy) {
  auto device = device::cpuDevice();
  auto memory = device->allocate(16);
  ASSERT_TRUE(memory) << memory.message();
  const char text[16] = "fifteen bytes!!";
  ASSERT_TRUE(device->upload(*memory, text, sizeof text));
  char back[16] = {};
  ASSERT_TRUE(device->download(back, *memory, sizeof back));
  EXPECT_EQ(std::memcmp(back, text, sizeof text), 0);
}

TEST(CpuDevice, TooMuchIsRefusedNamingTheSize) {
  auto device = device::cpuDevice();
  for (uint64_t bytes : {UINT64_MAX, UINT64_MAX - 10, uint64_t(1) << 62}) {
    auto memory = device->allocate(bytes);
    ASSERT_FALSE(memory) << bytes;
    EXPECT_NE(memory.message().find(std::to_string(bytes) + " bytes"), std::string::npos)
        << memory.message();
  }
  EXPECT_EQ(device->bytesInUse(), 0u);
}

} // namespace
} // namespace apc

namespace apc {
namespace {

TEST(CpuDevice, HostMemoryForTransfersIsZeroedAndAligned) {
  for (bool detached : {false, true}) {
    auto device = detached ? device::detachedCpuDevice() : device::cpuDevice();
    auto memory = device->allocateHost(1000);
    ASSERT_TRUE(memory) << memory.message();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(*memory) % device::kAlignment, 0u);
    const auto *p = static_cast<const uint8_t *>(*memory);
    for (int i = 0; i < 1000; ++i)
      ASSERT_EQ(p[i], 0) << i;
    EXPECT_EQ(device->bytesInUse(), 0u); // host memory is not the device's
    device->releaseHost(*memory);
  }
  EXPECT_FALSE(device::cpuDevice()->allocateHost(UINT64_MAX));
  EXPECT_FALSE(device::detachedCpuDevice()->hostAccessible());
}

} // namespace
} // namespace apc
