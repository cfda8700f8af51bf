// MappedFile: a read-only memory map of a whole file. Model and adapter weights are read through it, so
// an untrusted file's size is known before any offset in it is trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "punica/status.h"

namespace punica {

class MappedFile {
 public:
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) text file, e.g. config.json. Rejects files larger than max_bytes.
Expected<std::string> read_text_file(const std::string& path, size_t max_bytes = 64u << 20);

}  // namespace punica
