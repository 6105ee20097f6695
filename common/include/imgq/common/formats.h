// imgq's image formats in one place: how each is recognised from its first
// bytes, its file extensions, whether imgq reads it, which output formats
// imgq writes and what each can store (depth and channels), and the output
// format a result gets by default. Every program asks here: the broker's
// submit check, the client and hot folder, and the workers' decode and
// encode (the workers choose each job's decode and encode path from these
// facts in mpi_workers/job_paths.h). Parsing a header is image_header.h's.
//
// Pure functions over tables; thread-safe. No image library.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/common/status.h"

namespace imgq {

enum class ImageFormat {
  kUnknown,
  // Read (decoded to 8- or 16-bit pixels).
  kPng,
  kJpeg,
  kTiff,
  kBmp,
  kWebp,
  kPnm,
  kJpeg2000,
  kSunRaster,
  // Recognised, and refused by name: GIF, and the float formats.
  kGif,
  kPfm,
  kExr,
  kHdr,
};

// The format `bytes` start with, by its signature alone (nothing else is
// checked: read_image_header() does that). kUnknown when none matches.
ImageFormat sniff_format(std::span<const uint8_t> bytes);

// For people: "PNG", "JPEG", "TIFF", "BMP", "WebP", "PNM", "JPEG 2000",
// "Sun raster", "GIF", "PFM (32-bit float)", ...
std::string_view format_name(ImageFormat format);

// Whether imgq decodes images of `format`; refused_format() says why not.
bool is_read(ImageFormat format);
// Unsupported, naming the format and what imgq reads instead.
Status refused_format(ImageFormat format);
// "PNG, JPEG, TIFF, BMP, WebP, PNM, JPEG 2000 and Sun raster".
std::string read_formats_text();

// Extensions (any case, no dot) taken as images when a folder is scanned:
// those of every recognised format, read or not, so that an OpenEXR file
// is refused by name instead of passed over in silence.
bool is_image_extension(std::string_view extension);
// The extensions of the formats imgq reads: ".png, .jpg, ..., .sr, .ras".
std::string read_extensions_text();

// Output formats, as --format and a submit's `format` name them: png, tif,
// tiff, jpg, jpeg, bmp, webp, ppm, pgm, pnm (any case).
const std::vector<std::string_view>& output_format_names();
bool is_output_format(std::string_view format);
std::string output_formats_text();
// The format an output name writes: kTiff for "tif" and "tiff", kPnm for
// "ppm", "pgm" and "pnm"; kUnknown for a name that is no output format.
ImageFormat output_format_kind(std::string_view format);
// One spelling per output format, for comparing requests: lower case, with
// "jpeg" as "jpg" and "tiff" as "tif" (they write the same bytes); ppm,
// pgm and pnm stay apart (they may not). Anything else lower-cased.
std::string canonical_output_format(std::string_view format);

// What an output format stores without loss of depth or channels (as
// measured against OpenCV 4.6's encoders, which would otherwise convert in
// silence: 16-bit saturated to 8 for JPEG, alpha dropped for JPEG and BMP).
// `bits` is 8 or 16. InvalidArgument for an unknown format, Unsupported
// with what to do instead when the image does not fit; `kind` describes the
// image for the message ("16-bit 3-channel").
Status check_can_store(std::string_view format, int bits, int channels, std::string_view kind);
bool can_store(std::string_view format, int bits, int channels);

// The output format of a result whose input has the extension
// `input_extension` (any case, no dot) and no --format: the input's own
// when imgq writes it, else png; a JPEG or WebP becomes png when `edges`
// (the pipeline draws edges or thresholds, which lossy compression would
// smear: schemas::makes_edge_map). Lower case.
std::string default_output_format(std::string_view input_extension, bool edges);
// The same rule in a sentence, for --help.
std::string default_output_rule();

}  // namespace imgq
