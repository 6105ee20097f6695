#include "imgq/mpi_workers/tiff_lzw.h"

#include <array>
#include <cstring>

namespace imgq::workers {
namespace {

constexpr uint32_t kClear = 256;
constexpr uint32_t kEoi = 257;
constexpr uint32_t kFirstFree = 258;
constexpr uint32_t kWidest = 12;
// The table is full (and cleared) when the next free code would be this,
// as in libtiff: codes up to 4093 are given out.
constexpr uint32_t kFull = (1u << kWidest) - 2;

// The string table: "the string of code `prefix`, then byte `c`" -> its
// code, in an open-addressed hash of 8192 slots (32 KiB, in L1; at most
// 3836 used). A slot holds key << 12 | code with key = prefix << 8 | c (20
// bits); 0 is empty (no code is 0).
constexpr int kSlotBits = 13;
constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1;
using Table = std::array<uint32_t, size_t{1} << kSlotBits>;

inline uint32_t slot_of(uint32_t key) { return (key * 2654435761u) >> (32 - kSlotBits); }

// Codes most significant bit first, into a buffer with room for them.
class BitSink {
 public:
  explicit BitSink(uint8_t* out) : out_(out) {}
  void put(uint32_t code, uint32_t width) {
    bits_ = (bits_ << width) | code;
    count_ += width;
    if (count_ >= 32) {
      count_ -= 32;
      const uint32_t word = __builtin_bswap32(static_cast<uint32_t>(bits_ >> count_));
      std::memcpy(out_, &word, 4);
      out_ += 4;
    }
  }
  // The last bits, padded with zeros to a byte; where the stream ends.
  uint8_t* finish() {
    while (count_ >= 8) {
      count_ -= 8;
      *out_++ = static_cast<uint8_t>(bits_ >> count_);
    }
    if (count_ > 0) *out_++ = static_cast<uint8_t>(bits_ << (8 - count_));
    count_ = 0;
    return out_;
  }

 private:
  uint8_t* out_;
  uint64_t bits_ = 0;
  uint32_t count_ = 0;
};

template <typename T, int kChannels>
void predict(const T* src, int cols, T* dst) {
  // TIFF's order is RGB(A); OpenCV's BGR(A).
  constexpr int kOrder[4] = {kChannels >= 3 ? 2 : 0, 1, 0, 3};
  T previous[kChannels] = {};
  for (int x = 0; x < cols; ++x, src += kChannels, dst += kChannels) {
    for (int k = 0; k < kChannels; ++k) {
      const T value = src[kOrder[k]];
      dst[k] = static_cast<T>(value - previous[k]);
      previous[k] = value;
    }
  }
}

template <typename T>
void predict_any(const T* src, int cols, int channels, T* dst) {
  switch (channels) {
    case 1: return predict<T, 1>(src, cols, dst);
    case 3: return predict<T, 3>(src, cols, dst);
    default: return predict<T, 4>(src, cols, dst);
  }
}

}  // namespace

void tiff_lzw_encode(std::span<const uint8_t> in, std::string& out) {
  const size_t start = out.size();
  // At most one code (12 bits) a byte, Clear, the last code, maybe a Clear
  // and EOI, and the 4 bytes a put may write ahead of the end.
  out.resize(start + in.size() * 3 / 2 + 16);
  BitSink sink(reinterpret_cast<uint8_t*>(out.data() + start));
  if (in.empty()) {
    sink.put(kEoi, 9);
    out.resize(static_cast<size_t>(sink.finish() - reinterpret_cast<uint8_t*>(out.data())));
    return;
  }
  Table table{};
  uint32_t width = 9;
  uint32_t widest_code = (1u << width) - 1;  // grow past this
  uint32_t next = kFirstFree;
  sink.put(kClear, width);
  uint32_t prefix = in[0];
  for (size_t i = 1; i < in.size(); ++i) {
    const uint32_t c = in[i];
    const uint32_t key = prefix << 8 | c;
    uint32_t slot = slot_of(key);
    for (;;) {
      const uint32_t entry = table[slot];
      if (entry == 0) break;
      if ((entry >> 12) == key) {
        prefix = entry & 0xfff;
        goto known;
      }
      slot = (slot + 1) & kSlotMask;
    }
    // A new string: the known prefix's code goes out, the string gets the
    // next code.
    sink.put(prefix, width);
    table[slot] = key << 12 | next;
    if (++next == kFull) {
      sink.put(kClear, width);
      table.fill(0);
      next = kFirstFree;
      width = 9;
      widest_code = (1u << width) - 1;
    } else if (next > widest_code) {
      ++width;
      widest_code = (1u << width) - 1;
    }
    prefix = c;
  known:;
  }
  // The last string. A reader adds a code for it, so the width (or a Clear)
  // follows as for any other before EOI.
  sink.put(prefix, width);
  if (++next == kFull) {
    sink.put(kClear, width);
    width = 9;
  } else if (next > widest_code) {
    ++width;
  }
  sink.put(kEoi, width);
  out.resize(static_cast<size_t>(sink.finish() - reinterpret_cast<uint8_t*>(out.data())));
}

void tiff_predict_row(const cv::Mat& image, int y, uint8_t* dst) {
  if (image.depth() == CV_16U) {
    predict_any(image.ptr<uint16_t>(y), image.cols, image.channels(), reinterpret_cast<uint16_t*>(dst));
  } else {
    predict_any(image.ptr<uint8_t>(y), image.cols, image.channels(), dst);
  }
}

}  // namespace imgq::workers
