// The checksum imgq keeps with every image and result it stores and sends:
// CRC-32 as zlib and gzip compute it (polynomial 0x04C11DB7, reflected), by
// ISA-L (crc32_gzip_refl: carry-less multiplication, many GB/s, so it costs
// next to nothing beside a job). Chosen over CRC-32C because every client
// language has this one built in (Python's zlib.crc32, Java's CRC32, Go's
// hash/crc32, Node's zlib.crc32), so a client written from the protocol
// alone can verify a result without a library. It detects the damage disks,
// file systems and copies do (any burst up to 32 bits, all odd numbers of
// flipped bits); it is no defence against someone forging bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace imgq {

uint32_t crc32_of(std::span<const uint8_t> bytes);
inline uint32_t crc32_of(std::string_view bytes) {
  return crc32_of({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

}  // namespace imgq
