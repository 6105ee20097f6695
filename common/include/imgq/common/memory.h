// Process-wide allocator settings for programs that move images.
#pragma once

namespace imgq {

// glibc serves every allocation above its mmap threshold (128 KiB, adapting
// up to 32 MiB) with a fresh mmap and gives it back at free, and trims the
// heap's free top above 128 KiB: each image buffer then costs page faults
// and the kernel zeroing its pages, every time. Measured on the batch
// benchmark (bench/README.md) that was ~15% of the ranks' CPU and ~30% of
// the broker's. This keeps buffers below 64 MiB (a 4K frame's decode is 25)
// on the heap and up to 256 MiB of freed heap for reuse; larger buffers
// still get their own mapping (on the heap they measured slower: 3.3 s ->
// 4.0 s for a 192 MB image). Call first thing in main(); a GLIBC_TUNABLES
// setting of malloc's own wins.
void keep_freed_image_memory();

}  // namespace imgq
