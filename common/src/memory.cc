#include "imgq/common/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <string_view>

namespace imgq {

void keep_freed_image_memory() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos) return;
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace imgq
