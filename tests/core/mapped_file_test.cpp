#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/mapped_file.h"

namespace punica {
namespace {

TEST(MappedFile, MapsContentsAndReportsMissingFiles) {
  std::string path = ::testing::TempDir() + "/mapped_file_test.bin";
  { std::ofstream(path, std::ios::binary) << "hello"; }
  auto f = MappedFile::open(path);
  ASSERT_TRUE(f.has_value()) << f.status().to_string();
  ASSERT_EQ((*f)->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 5), "hello");
  std::remove(path.c_str());

  auto missing = MappedFile::open(path);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(ReadTextFile, RejectsFilesOverTheLimit) {
  std::string path = ::testing::TempDir() + "/big.txt";
  { std::ofstream(path) << std::string(100, 'x'); }
  auto r = read_text_file(path, 10);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidFile);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace punica
