#include "imgq/common/checksum.h"

#include <isa-l/crc.h>

namespace imgq {

// Seeded with 0 and returned as is, it equals zlib's crc32(0, bytes).
uint32_t crc32_of(std::span<const uint8_t> bytes) { return crc32_gzip_refl(0, bytes.data(), bytes.size()); }

}  // namespace imgq
