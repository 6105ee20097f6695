// libFuzzer target: the image header check the broker runs on every
// submitted image before it is queued, and every leader before decode.
#include <cstddef>
#include <cstdint>

#include "imgq/common/image_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = imgq::check_image_header({data, size}, imgq::kDefaultMaxPixels, "fuzz");
  // The oracle multiplies in 128 bits: it cannot wrap as a 64-bit product would.
  if (header.ok() && (header->width == 0 || header->height == 0 ||
                      static_cast<unsigned __int128>(header->width) * header->height > imgq::kDefaultMaxPixels)) {
    __builtin_trap();  // an accepted header must be within the limit
  }
  return 0;
}
