#include "imgq/common/formats.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "imgq/common/text.h"

namespace imgq {
namespace {

struct FormatEntry {
  ImageFormat format;
  std::string_view name;
  std::vector<std::string_view> extensions;
  bool read;
};

const std::vector<FormatEntry>& format_table() {
  static const std::vector<FormatEntry> table = {
      {ImageFormat::kPng, "PNG", {"png"}, true},
      {ImageFormat::kJpeg, "JPEG", {"jpg", "jpeg", "jpe"}, true},
      {ImageFormat::kTiff, "TIFF", {"tif", "tiff"}, true},
      {ImageFormat::kBmp, "BMP", {"bmp", "dib"}, true},
      {ImageFormat::kWebp, "WebP", {"webp"}, true},
      {ImageFormat::kPnm, "PNM", {"ppm", "pgm", "pbm", "pnm"}, true},
      {ImageFormat::kJpeg2000, "JPEG 2000", {"jp2"}, true},
      {ImageFormat::kSunRaster, "Sun raster", {"sr", "ras"}, true},
      {ImageFormat::kGif, "GIF", {}, false},
      {ImageFormat::kPfm, "PFM (32-bit float)", {"pfm"}, false},
      {ImageFormat::kExr, "OpenEXR (float)", {"exr"}, false},
      {ImageFormat::kHdr, "Radiance HDR (float)", {"hdr", "pic"}, false},
  };
  return table;
}

const FormatEntry* entry_of(ImageFormat format) {
  for (const FormatEntry& e : format_table()) {
    if (e.format == format) return &e;
  }
  return nullptr;
}

struct OutputEntry {
  std::string_view name;
  ImageFormat kind;
  bool sixteen_bit;
  std::vector<int> channels;
  std::string_view advice;  // what to do when the image does not fit
};

const std::vector<OutputEntry>& output_table() {
  static const std::vector<OutputEntry> table = {
      {"png", ImageFormat::kPng, true, {1, 3, 4}, ""},
      {"tif", ImageFormat::kTiff, true, {1, 3, 4}, ""},
      {"tiff", ImageFormat::kTiff, true, {1, 3, 4}, ""},
      {"jpg", ImageFormat::kJpeg, false, {1, 3}, "use png or tif, or add --op to_8bit / --op grayscale"},
      {"jpeg", ImageFormat::kJpeg, false, {1, 3}, "use png or tif, or add --op to_8bit / --op grayscale"},
      {"bmp", ImageFormat::kBmp, false, {1, 3}, "use png or tif, or add --op to_8bit"},
      // Lossless as OpenCV writes it with no quality; gray as three equal channels.
      {"webp", ImageFormat::kWebp, false, {1, 3, 4}, "use png or tif, or add --op to_8bit"},
      {"ppm", ImageFormat::kPnm, true, {3}, "ppm stores 3 channels: use pgm for 1 channel, png for 4"},
      {"pgm", ImageFormat::kPnm, true, {1}, "pgm stores 1 channel: use ppm for 3 channels, or add --op grayscale"},
      {"pnm", ImageFormat::kPnm, true, {1, 3}, "use png for 4 channels"},
  };
  return table;
}

const OutputEntry* output_entry(std::string_view format) {
  const std::string name = ascii_lower(format);
  for (const OutputEntry& e : output_table()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

bool starts(std::span<const uint8_t> b, size_t at, std::string_view magic) {
  return at <= b.size() && magic.size() <= b.size() - at && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
}

}  // namespace

ImageFormat sniff_format(std::span<const uint8_t> b) {
  using std::string_view;
  if (starts(b, 0, "\x89PNG\r\n\x1a\n")) return ImageFormat::kPng;
  if (starts(b, 0, "\xff\xd8\xff")) return ImageFormat::kJpeg;
  for (string_view tiff : {string_view("II*\0", 4), string_view("MM\0*", 4), string_view("II+\0", 4),
                           string_view("MM\0+", 4)}) {
    if (starts(b, 0, tiff)) return ImageFormat::kTiff;
  }
  if (starts(b, 0, "BM")) return ImageFormat::kBmp;
  if (starts(b, 0, "RIFF") && starts(b, 8, "WEBP")) return ImageFormat::kWebp;
  if (b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && std::isspace(b[2])) return ImageFormat::kPnm;
  if (starts(b, 0, string_view("\0\0\0\x0cjP  \r\n\x87\n", 12)) || starts(b, 0, "\xff\x4f\xff\x51")) {
    return ImageFormat::kJpeg2000;
  }
  if (starts(b, 0, "\x59\xa6\x6a\x95")) return ImageFormat::kSunRaster;
  if (starts(b, 0, "GIF8")) return ImageFormat::kGif;
  if (starts(b, 0, "PF\n") || starts(b, 0, "Pf\n")) return ImageFormat::kPfm;
  if (starts(b, 0, "\x76\x2f\x31\x01")) return ImageFormat::kExr;
  if (starts(b, 0, "#?RADIANCE") || starts(b, 0, "#?RGBE")) return ImageFormat::kHdr;
  return ImageFormat::kUnknown;
}

std::string_view format_name(ImageFormat format) {
  const FormatEntry* e = entry_of(format);
  return e == nullptr ? "unknown" : e->name;
}

bool is_read(ImageFormat format) {
  const FormatEntry* e = entry_of(format);
  return e != nullptr && e->read;
}

std::string read_formats_text() {
  std::vector<std::string_view> names;
  for (const FormatEntry& e : format_table()) {
    if (e.read) names.push_back(e.name);
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + std::string(names[i]);
  }
  return out;
}

Status refused_format(ImageFormat format) {
  return Status::Unsupported(std::string(format_name(format)) + " images are not supported; imgq reads " +
                             read_formats_text());
}

bool is_image_extension(std::string_view extension) {
  const std::string ext = ascii_lower(extension);
  for (const FormatEntry& e : format_table()) {
    if (std::find(e.extensions.begin(), e.extensions.end(), ext) != e.extensions.end()) return true;
  }
  return false;
}

std::string read_extensions_text() {
  std::string out;
  for (const FormatEntry& e : format_table()) {
    if (!e.read) continue;
    for (std::string_view ext : e.extensions) out += (out.empty() ? "." : ", .") + std::string(ext);
  }
  return out;
}

const std::vector<std::string_view>& output_format_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const OutputEntry& e : output_table()) out.push_back(e.name);
    return out;
  }();
  return names;
}

bool is_output_format(std::string_view format) { return output_entry(format) != nullptr; }

std::string output_formats_text() {
  std::string out;
  for (std::string_view f : output_format_names()) out += (out.empty() ? "" : ", ") + std::string(f);
  return out;
}

std::string canonical_output_format(std::string_view format) {
  std::string lower = ascii_lower(format);
  if (lower == "jpeg") return "jpg";
  if (lower == "tiff") return "tif";
  return lower;
}

ImageFormat output_format_kind(std::string_view format) {
  const OutputEntry* e = output_entry(format);
  return e == nullptr ? ImageFormat::kUnknown : e->kind;
}

Status check_can_store(std::string_view format, int bits, int channels, std::string_view kind) {
  const OutputEntry* e = output_entry(format);
  if (e == nullptr) {
    return Status::InvalidArgument("cannot write format \"" + std::string(format) +
                                   "\"; formats: " + output_formats_text());
  }
  if (!can_store(format, bits, channels)) {
    return Status::Unsupported(std::string(e->name) + " cannot store a " + std::string(kind) + " result; " +
                               std::string(e->advice));
  }
  return Status::Ok();
}

bool can_store(std::string_view format, int bits, int channels) {
  const OutputEntry* e = output_entry(format);
  return e != nullptr && (bits == 8 || (bits == 16 && e->sixteen_bit)) &&
         std::find(e->channels.begin(), e->channels.end(), channels) != e->channels.end();
}

std::string default_output_format(std::string_view input_extension, bool edges) {
  const std::string own = ascii_lower(input_extension);
  if (!is_output_format(own)) return "png";
  if (edges && (own == "jpg" || own == "jpeg" || own == "webp")) return "png";
  return own;
}

std::string default_output_rule() {
  return "the input's own format (extension in lower case) when imgq writes it, else png; a JPEG or WebP "
         "becomes png when the pipeline draws edges or thresholds (canny, sobel, threshold), which lossy "
         "compression would smear";
}

}  // namespace imgq
