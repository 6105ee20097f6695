// How one job's image is decoded and its result encoded on a group: the
// choice, made once per job from the formats (imgq/common/formats.h), the
// group's size and the pipeline's first and last stages (files_fit()).
// run_job() follows it; the engine's RowSource and RowSink types carry it.
//
//   decode                        when
//   kWhole       leader, whole    one rank; a first stage on the leader; any
//                                 format but those below (BMP, WebP, PNM
//                                 bytes, JPEG 2000, Sun raster)
//   kBandedRows  leader, in bands PNG and JPEG (row_decoder.h): rows sent as
//                while stage 1    they are decoded
//                runs
//   kRankStrips  every rank, its  TIFF in strips or tiles (tiff_strips.h)
//                own strips
//   kLocalRows   every rank reads a binary PGM/PPM on a shared file system
//                its own rows     (local-files jobs and standalone, above
//                                 --strip-above pixels)
//
//   encode                        when
//   kLeader      leader, whole    one rank; a last stage on the leader or
//                                 canny; formats below do not hold the result
//   kPngByRanks  every rank, its  png
//                own rows
//   kTiffByRanks every rank,      tif, tiff
//                whole strips
//   kLocalRows   every rank writes pgm/ppm/pnm of the result's kind into
//                its own rows     the output file itself (local rows only)
//
// A path that cannot open (a TIFF layout the strips reader does not take, a
// PNG or JPEG the row decoder does not) falls back to kWhole. Pure.
#pragma once

#include <string_view>

#include "imgq/common/formats.h"
#include "imgq/mpi_workers/ops.h"

namespace imgq::workers {

enum class DecodePath { kWhole, kBandedRows, kRankStrips, kLocalRows };
enum class EncodePath { kLeader, kPngByRanks, kTiffByRanks, kLocalRows };

std::string_view path_name(DecodePath path);
std::string_view path_name(EncodePath path);

// `input`: the image's format (sniff_format()); `local_rows`: the job's
// input is a binary PGM/PPM file every rank can read (rows_from_file()).
DecodePath choose_decode(int ranks, const Pipeline& pipeline, ImageFormat input, bool local_rows);

// `result`: the pipeline's result on the image (check_pipeline()); `format`:
// the output format's name; `decoded`: the decode path chosen.
EncodePath choose_encode(int ranks, const Pipeline& pipeline, const ImageInfo& result, std::string_view format,
                         DecodePath decoded);

}  // namespace imgq::workers
