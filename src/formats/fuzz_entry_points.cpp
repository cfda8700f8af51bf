// Bodies of the libFuzzer targets (fuzz/) and of the corpus replay test (tests/formats/fuzz_corpus_test.cpp):
// parse untrusted bytes, and when they parse, read every value the way the runtime would, so that a
// validation gap shows up as a sanitizer report rather than a silent wrong read.
#include <vector>

#include "core/assert.h"
#include "formats/gguf.h"
#include "formats/gguf_dequant.h"
#include "formats/gguf_model.h"
#include "formats/safetensors.h"

namespace punica {

namespace {

constexpr int64_t kMaxFuzzElements = int64_t{1} << 22;

size_t fuzz_touch_value(const GgufValue& v, int depth) {
  size_t sum = 0;
  if (v.type() == GgufType::kString) {
    for (char ch : v.as_string()) sum += static_cast<unsigned char>(ch);
  } else if (v.type() == GgufType::kArray) {
    PUNICA_ASSERT(depth < 16);
    for (const auto& item : v.array_items()) sum += fuzz_touch_value(item, depth + 1);
  }
  return sum;
}

}  // namespace

int fuzz_gguf_one_input(const uint8_t* data, size_t size) {
  auto parsed = GgufFile::parse(data, size, "fuzz.gguf");
  if (!parsed) return 0;
  std::shared_ptr<const GgufFile> f(std::move(*parsed));
  volatile size_t sink = 0;
  for (const auto& kv : f->metadata()) {
    sink = sink + fuzz_touch_value(kv.value, 0);
    if (auto s = f->get_string_view_array(kv.key)) sink = sink + s->size();
    if (auto fl = f->get_float_array(kv.key)) sink = sink + fl->size();
    if (auto in = f->get_int_array(kv.key)) sink = sink + in->size();
  }
  for (const auto& t : f->tensors()) {
    PUNICA_ASSERT(f->data_offset() + t.offset + t.n_bytes <= f->size());
    if (!gguf_can_dequantize(t.type_id) || t.numel() > kMaxFuzzElements) continue;
    std::vector<float> out(static_cast<size_t>(t.numel()));
    Status st = gguf_dequantize(t.type_id, f->tensor_data(t), t.n_bytes, out.data(), t.numel());
    PUNICA_ASSERT(st.is_ok(), "%s", st.message().c_str());
  }
  auto config = gguf_model_config(*f);
  if (!config) return 0;
  auto weights = gguf_weight_source(f, *config);
  for (const auto& name : weights->tensor_names()) {
    const TensorInfo* t = weights->find(name);
    if (t->numel() > kMaxFuzzElements) continue;
    std::vector<float> out(static_cast<size_t>(t->numel()));
    (void)weights->read_f32(name, out.data(), t->numel());
    (void)weights->read_quantized_rows(name);
  }
  return 0;
}

int fuzz_safetensors_one_input(const uint8_t* data, size_t size) {
  auto parsed = SafetensorsFile::parse(data, size, "fuzz.safetensors");
  if (!parsed) return 0;
  const SafetensorsFile& f = **parsed;
  for (const auto& t : f.tensors()) {
    if (t.numel() > kMaxFuzzElements) continue;
    std::vector<float> out(static_cast<size_t>(t.numel()));
    (void)f.read_f32(t, out.data(), t.numel());
  }
  return 0;
}

}  // namespace punica
