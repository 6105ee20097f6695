// libFuzzer target: the image header check the broker runs on every
// submitted image before it is queued, and every leader before decode.
#include <cstddef>
#include <cstdint>

#include "imgq/common/image_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = imgq::check_image_header({data, size}, imgq::kDefaultMaxPixels, "fuzz");
  if (header.ok() && (header->width == 0 || header->height == 0 || header->pixels() > imgq::kDefaultMaxPixels)) {
    __builtin_trap();  // an accepted header must be within the limit
  }
  return 0;
}
