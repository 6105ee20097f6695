#include "imgq/mpi_workers/job_paths.h"

#include "imgq/mpi_workers/engine.h"
#include "imgq/mpi_workers/image_io.h"

namespace imgq::workers {

std::string_view path_name(DecodePath path) {
  switch (path) {
    case DecodePath::kWhole:
      return "whole";
    case DecodePath::kBandedRows:
      return "banded rows";
    case DecodePath::kRankStrips:
      return "strips on every rank";
    case DecodePath::kLocalRows:
      return "local rows";
  }
  return "?";
}

std::string_view path_name(EncodePath path) {
  switch (path) {
    case EncodePath::kLeader:
      return "leader";
    case EncodePath::kPngByRanks:
      return "png on every rank";
    case EncodePath::kTiffByRanks:
      return "tiff on every rank";
    case EncodePath::kLocalRows:
      return "local rows";
  }
  return "?";
}

DecodePath choose_decode(int ranks, const Pipeline& pipeline, ImageFormat input, bool local_rows) {
  if (ranks <= 1 || !files_fit(pipeline).input) return DecodePath::kWhole;
  if (local_rows) return DecodePath::kLocalRows;
  switch (input) {
    case ImageFormat::kTiff:
      return DecodePath::kRankStrips;
    case ImageFormat::kPng:
    case ImageFormat::kJpeg:
      return DecodePath::kBandedRows;
    default:
      return DecodePath::kWhole;
  }
}

EncodePath choose_encode(int ranks, const Pipeline& pipeline, const ImageInfo& result, std::string_view format,
                         DecodePath decoded) {
  if (ranks <= 1 || !files_fit(pipeline).output || !can_store_type(format, result.type())) return EncodePath::kLeader;
  switch (output_format_kind(format)) {
    case ImageFormat::kPnm:
      return decoded == DecodePath::kLocalRows ? EncodePath::kLocalRows : EncodePath::kLeader;
    case ImageFormat::kPng:
      return EncodePath::kPngByRanks;
    case ImageFormat::kTiff:
      return EncodePath::kTiffByRanks;
    default:
      return EncodePath::kLeader;
  }
}

}  // namespace imgq::workers
