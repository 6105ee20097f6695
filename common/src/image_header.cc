#include "imgq/common/image_header.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>

#include "imgq/common/formats.h"
#include "imgq/common/text.h"

namespace imgq {
namespace {

using Bytes = std::span<const uint8_t>;

// Bounds-checked reads: nullopt past the end.
struct Reader {
  Bytes b;
  bool has(size_t at, size_t n) const { return at <= b.size() && n <= b.size() - at; }
  std::optional<uint64_t> be(size_t at, size_t n) const {
    if (!has(at, n)) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | b[at + i];
    return v;
  }
  std::optional<uint64_t> le(size_t at, size_t n) const {
    if (!has(at, n)) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | b[at + i];
    return v;
  }
  bool starts(size_t at, std::string_view magic) const {
    return has(at, magic.size()) && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
  }
};

Status bad(std::string_view format, const std::string& what) {
  return Status::InvalidImage(std::string(format) + ": " + what);
}

Status truncated(std::string_view format, const std::string& where) {
  return bad(format, "the file is truncated (" + where + ")");
}

Result<ImageHeader> made(std::string_view format, uint64_t width, uint64_t height) {
  if (width == 0 || height == 0) {
    return bad(format, "the header declares " + std::to_string(width) + " x " + std::to_string(height) +
                           " pixels");
  }
  return ImageHeader{std::string(format), width, height};
}

// ---- PNG: signature, IHDR first, then a complete chain of chunks to IEND ----

Result<ImageHeader> read_png(const Reader& r) {
  constexpr std::string_view kPng = "PNG";
  size_t at = 8;
  std::optional<ImageHeader> header;
  while (true) {
    auto length = r.be(at, 4);
    if (!length || !r.has(at + 4, 4)) {
      return truncated(kPng, header ? "no IEND chunk: it ends at offset " + std::to_string(at)
                                    : "it ends before the IHDR chunk");
    }
    const std::string type(reinterpret_cast<const char*>(r.b.data() + at + 4), 4);
    for (char c : type) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
        return bad(kPng, "corrupt chunk at offset " + std::to_string(at) + " (its type is not four letters)");
      }
    }
    if (*length > 0x7fffffffu) return bad(kPng, "chunk " + type + " declares an impossible length");
    if (!r.has(at + 8, *length + 4)) {
      return truncated(kPng, "it ends inside the " + type + " chunk at offset " + std::to_string(at));
    }
    if (!header) {
      if (type != "IHDR" || *length != 13) return bad(kPng, "the first chunk is " + type + ", not IHDR");
      auto made_header = made(kPng, *r.be(at + 8, 4), *r.be(at + 12, 4));
      if (!made_header.ok()) return made_header.status();
      header = *made_header;
    }
    if (type == "IEND") return *header;
    at += 12 + *length;
  }
}

// ---- JPEG: markers up to the first frame header, then on to EOI ----

bool is_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

Result<ImageHeader> read_jpeg(const Reader& r) {
  constexpr std::string_view kJpeg = "JPEG";
  const Bytes& b = r.b;
  std::optional<ImageHeader> header;
  size_t at = 2;
  while (true) {
    if (at >= b.size()) {
      return truncated(kJpeg, header ? "no end-of-image marker; the image data is cut short"
                                     : "it ends before the frame header");
    }
    if (b[at] != 0xFF) return bad(kJpeg, "corrupt: expected a marker at offset " + std::to_string(at));
    while (at < b.size() && b[at] == 0xFF) ++at;  // fill bytes
    if (at >= b.size()) continue;
    const uint8_t marker = b[at++];
    if (marker == 0xD9) {
      if (!header) return bad(kJpeg, "no frame header before the end-of-image marker");
      return *header;
    }
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) continue;  // no length
    auto length = r.be(at, 2);
    if (!length || *length < 2 || !r.has(at, *length)) {
      return truncated(kJpeg, "it ends inside the segment of marker 0xFF" + [&] {
        char hex[3];
        std::snprintf(hex, sizeof hex, "%02X", marker);
        return std::string(hex);
      }() + " at offset " + std::to_string(at - 2));
    }
    if (is_sof(marker) && !header) {
      if (*length < 8) return bad(kJpeg, "the frame header is too short");
      const uint64_t height = *r.be(at + 3, 2);
      const uint64_t width = *r.be(at + 5, 2);
      if (height == 0) return Status::Unsupported("JPEG: height defined by a DNL marker is not supported");
      auto made_header = made(kJpeg, width, height);
      if (!made_header.ok()) return made_header.status();
      header = *made_header;
    }
    at += *length;
    if (marker == 0xDA) {
      // Entropy-coded data: runs until an 0xFF that is neither a stuffed
      // 0xFF00 nor a restart marker.
      while (true) {
        const void* ff = at < b.size() ? std::memchr(b.data() + at, 0xFF, b.size() - at) : nullptr;
        if (ff == nullptr) {
          at = b.size();
          break;
        }
        at = static_cast<size_t>(static_cast<const uint8_t*>(ff) - b.data());
        if (at + 1 >= b.size()) {
          at = b.size();
          break;
        }
        const uint8_t next = b[at + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
          at += 2;
          continue;
        }
        break;
      }
    }
  }
}

// ---- TIFF and BigTIFF: the first image file directory ----

Result<ImageHeader> read_tiff(const Reader& r, bool little, bool big) {
  constexpr std::string_view kTiff = "TIFF";
  auto get = [&](size_t at, size_t n) { return little ? r.le(at, n) : r.be(at, n); };
  const size_t offset_size = big ? 8 : 4;
  auto ifd = big ? get(8, 8) : get(4, 4);
  if (!ifd) return truncated(kTiff, "it ends inside the header");
  auto count = big ? get(*ifd, 8) : get(*ifd, 2);
  const size_t entry = big ? 20 : 12;
  if (!count) return truncated(kTiff, "the first image directory is past the end");
  const size_t first = *ifd + (big ? 8 : 2);
  if (*count > (r.b.size() / entry) || !r.has(first, *count * entry)) {
    return truncated(kTiff, "the first image directory runs past the end");
  }
  uint64_t width = 0, height = 0;
  for (uint64_t i = 0; i < *count; ++i) {
    const size_t at = first + i * entry;
    const uint64_t tag = *get(at, 2), type = *get(at + 2, 2);
    const size_t value_at = at + 4 + offset_size;
    std::optional<uint64_t> value;
    if (type == 3) value = get(value_at, 2);        // SHORT
    else if (type == 4) value = get(value_at, 4);   // LONG
    else if (type == 16 && big) value = get(value_at, 8);  // LONG8
    if (!value) continue;
    if (tag == 256) width = *value;
    if (tag == 257) height = *value;
  }
  if (width == 0 || height == 0) return bad(kTiff, "the first image directory has no width or height");
  return made(kTiff, width, height);
}

// ---- BMP ----

Result<ImageHeader> read_bmp(const Reader& r) {
  constexpr std::string_view kBmp = "BMP";
  auto dib = r.le(14, 4);
  if (!dib) return truncated(kBmp, "it ends inside the header");
  if (*dib == 12) {
    auto w = r.le(18, 2), h = r.le(20, 2);
    if (!w || !h) return truncated(kBmp, "it ends inside the header");
    return made(kBmp, *w, *h);
  }
  auto w = r.le(18, 4), h = r.le(22, 4);
  if (*dib < 16 || !w || !h) return truncated(kBmp, "it ends inside the header");
  const int64_t width = static_cast<int32_t>(*w), height = static_cast<int32_t>(*h);
  if (width <= 0) return bad(kBmp, "the header declares a width of " + std::to_string(width));
  return made(kBmp, static_cast<uint64_t>(width), static_cast<uint64_t>(height < 0 ? -height : height));
}

// ---- WebP: the first chunk after RIFF/WEBP ----

Result<ImageHeader> read_webp(const Reader& r) {
  constexpr std::string_view kWebp = "WebP";
  const size_t data = 20;
  if (r.starts(12, "VP8 ")) {
    if (!r.has(data, 10)) return truncated(kWebp, "it ends inside the VP8 header");
    if (!r.starts(data + 3, "\x9d\x01\x2a")) return bad(kWebp, "the VP8 frame has no start code");
    return made(kWebp, *r.le(data + 6, 2) & 0x3fff, *r.le(data + 8, 2) & 0x3fff);
  }
  if (r.starts(12, "VP8L")) {
    auto bits = r.le(data + 1, 4);
    if (!bits) return truncated(kWebp, "it ends inside the VP8L header");
    if (r.b[data] != 0x2f) return bad(kWebp, "the VP8L stream has no signature");
    return made(kWebp, (*bits & 0x3fff) + 1, ((*bits >> 14) & 0x3fff) + 1);
  }
  if (r.starts(12, "VP8X")) {
    auto w = r.le(data + 4, 3), h = r.le(data + 7, 3);
    if (!w || !h) return truncated(kWebp, "it ends inside the VP8X header");
    return made(kWebp, *w + 1, *h + 1);
  }
  return bad(kWebp, "the first chunk is neither VP8, VP8L nor VP8X");
}

// ---- PNM (P1-P6) and PAM (P7): text headers ----

Result<ImageHeader> read_pnm(const Reader& r) {
  constexpr std::string_view kPnm = "PNM";
  const Bytes& b = r.b;
  const size_t limit = std::min<size_t>(b.size(), 4096);  // headers are short
  size_t at = 2;
  // The next whitespace-separated token, skipping # comments.
  auto token = [&]() -> std::string {
    while (at < limit) {
      if (b[at] == '#') {
        while (at < limit && b[at] != '\n') ++at;
      } else if (std::isspace(b[at])) {
        ++at;
      } else {
        break;
      }
    }
    std::string t;
    while (at < limit && !std::isspace(b[at]) && t.size() < 32) t += static_cast<char>(b[at++]);
    return t;
  };
  auto number = [](const std::string& t) -> std::optional<uint64_t> {
    if (t.empty() || t.size() > 10 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(t);
  };
  if (b[1] == '7') {
    std::optional<uint64_t> width, height;
    for (std::string t = token(); !t.empty() && t != "ENDHDR"; t = token()) {
      if (t == "WIDTH") width = number(token());
      else if (t == "HEIGHT") height = number(token());
    }
    if (!width || !height) return bad(kPnm, "the PAM header has no valid WIDTH and HEIGHT");
    return made(kPnm, *width, *height);
  }
  auto width = number(token());
  auto height = number(token());
  if (!width || !height) return bad(kPnm, "the header has no valid width and height");
  return made(kPnm, *width, *height);
}

// ---- JPEG 2000: the JP2 container's ihdr box, or a raw codestream's SIZ ----

Result<ImageHeader> read_j2k(const Reader& r, size_t at) {
  constexpr std::string_view kJp2 = "JPEG 2000";
  // SOC, SIZ marker, Lsiz, Rsiz, then Xsiz Ysiz XOsiz YOsiz.
  auto x = r.be(at + 8, 4), y = r.be(at + 12, 4), xo = r.be(at + 16, 4), yo = r.be(at + 20, 4);
  if (!x || !y || !xo || !yo) return truncated(kJp2, "it ends inside the SIZ header");
  if (*xo >= *x || *yo >= *y) return bad(kJp2, "the SIZ header declares an empty image");
  return made(kJp2, *x - *xo, *y - *yo);
}

Result<ImageHeader> read_jp2(const Reader& r) {
  constexpr std::string_view kJp2 = "JPEG 2000";
  // Boxes: length (u32, 1 = a u64 follows, 0 = to the end), type.
  auto find_box = [&](size_t at, size_t end, std::string_view want) -> std::optional<std::pair<size_t, size_t>> {
    while (at + 8 <= end) {
      uint64_t length = *r.be(at, 4);
      size_t header = 8;
      if (length == 1) {
        auto big = r.be(at + 8, 8);
        if (!big) return std::nullopt;
        length = *big;
        header = 16;
      } else if (length == 0) {
        length = end - at;
      }
      if (length < header || length > end - at) return std::nullopt;
      if (r.starts(at + 4, want)) return std::make_pair(at + header, at + length);
      at += length;
    }
    return std::nullopt;
  };
  auto jp2h = find_box(0, r.b.size(), "jp2h");
  if (!jp2h) return truncated(kJp2, "no complete jp2h header box");
  auto ihdr = find_box(jp2h->first, jp2h->second, "ihdr");
  if (!ihdr || ihdr->second - ihdr->first < 8) return bad(kJp2, "the jp2h box has no ihdr box");
  return made(kJp2, *r.be(ihdr->first + 4, 4), *r.be(ihdr->first, 4));
}

std::string printable_start(Bytes b) {
  return printable(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 8);
}

std::string megapixels(uint64_t pixels) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(pixels) / 1e6);
  return buf;
}

}  // namespace

Result<ImageHeader> read_image_header(Bytes bytes) {
  const Reader r{bytes};
  if (bytes.empty()) return Status::InvalidImage("the file is empty (0 bytes)");
  const ImageFormat format = sniff_format(bytes);
  switch (format) {
    case ImageFormat::kPng:
      return read_png(r);
    case ImageFormat::kJpeg:
      return read_jpeg(r);
    case ImageFormat::kTiff:
      return read_tiff(r, r.starts(0, "II"), r.b[2] == 43 || r.b[3] == 43);
    case ImageFormat::kBmp:
      return read_bmp(r);
    case ImageFormat::kWebp:
      return read_webp(r);
    case ImageFormat::kPnm:
      return read_pnm(r);
    case ImageFormat::kJpeg2000:
      return r.starts(0, "\xff\x4f\xff\x51") ? read_j2k(r, 0) : read_jp2(r);
    case ImageFormat::kSunRaster: {
      auto w = r.be(4, 4), h = r.be(8, 4);
      if (!w || !h) return truncated("Sun raster", "it ends inside the header");
      return made("Sun raster", *w, *h);
    }
    case ImageFormat::kUnknown:
      return Status::InvalidImage("not a recognised image format (it starts with \"" + printable_start(bytes) +
                                  "\"); imgq reads " + read_formats_text());
    default:
      return refused_format(format);
  }
}

Status check_pixel_limit(const ImageHeader& header, uint64_t max_pixels, std::string_view name) {
  if (max_pixels == 0 || header.pixels() <= max_pixels) return Status::Ok();
  const std::string prefix = name.empty() ? std::string() : std::string(name) + ": ";
  return Status::TooLarge(prefix + header.format + " declares " + std::to_string(header.width) + " x " +
                          std::to_string(header.height) + " pixels (" + megapixels(header.pixels()) +
                          " megapixels); the limit is " + megapixels(max_pixels) + " megapixels (--max-pixels)");
}

Result<ImageHeader> check_image_header(Bytes bytes, uint64_t max_pixels, std::string_view name) {
  auto header = read_image_header(bytes);
  const std::string prefix = name.empty() ? std::string() : std::string(name) + ": ";
  if (!header.ok()) return Status(header.status().code(), prefix + header.status().message());
  IMGQ_RETURN_IF_ERROR(check_pixel_limit(*header, max_pixels, name));
  return header;
}

}  // namespace imgq
