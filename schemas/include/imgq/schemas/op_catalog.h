// The op catalog: every image operation imgq knows, its parameters with their
// types, ranges and defaults, and the aliases kept from the original project.
//
// This is data shared by the client (which validates a pipeline before sending
// it), the broker and the workers (which implement the ops with OpenCV); it has
// no OpenCV dependency. What each op means on pixels is defined in
// mpi_workers/include/imgq/mpi_workers/ops.h. Immutable after start-up, so
// safe to read from any thread.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/common/status.h"
#include "imgq/schemas/messages.h"

namespace imgq::schemas {

enum class OpId {
  kIdentity,
  kGrayscale,
  kInvert,
  kThreshold,
  kBrightnessContrast,
  kTo8bit,
  kGaussianBlur,
  kBoxBlur,
  kMedianBlur,
  kSharpen,
  kSobel,
  kCanny,
  kErode,
  kDilate,
  kEqualizeHist,
  kResize,
  kRotate,
  kFlip,
};

enum class ParamType { kInt, kDouble, kBool, kEnum };

class OpCall;

struct ParamDef {
  std::string_view key;
  ParamType type;
  // Textual default, parsed like a user value; empty when the parameter has
  // no fixed default (then `default_help` explains what happens without it).
  std::string_view default_value;
  double min = 0;  // inclusive bounds for kInt and kDouble
  double max = 0;
  std::vector<std::string_view> choices;  // kEnum: the allowed words; kInt: allowed values if set
  bool odd = false;                       // kInt: must be odd
  std::string_view default_help = {};
};

struct OpDef {
  OpId id;
  std::string_view name;
  std::string_view summary;
  std::vector<ParamDef> params;
  // Rules that involve several parameters (e.g. low <= high); may fill in
  // defaults that depend on which parameters were given. Optional.
  Status (*check)(OpCall& call) = nullptr;
};

struct AliasDef {
  std::string_view alias;
  std::string_view target;
  // Parameters the alias sets, as "key=value,..."; user values override them.
  std::string_view params;
};

std::span<const OpDef> all_ops();
std::span<const AliasDef> all_aliases();

// nullptr when no op has that canonical name.
const OpDef* find_op(std::string_view name);
const OpDef& op_def(OpId id);

// A human-readable table of ops, parameters and defaults (for --list-ops).
std::string format_op_table();

// The catalogue as the `ops` reply carries it, and the table `imgq ops`
// prints from such a reply (the same text as format_op_table()).
std::vector<proto::OpInfo> describe_ops();
std::vector<proto::AliasInfo> describe_aliases();
std::string format_op_table(const std::vector<proto::OpInfo>& ops, const std::vector<proto::AliasInfo>& aliases);

}  // namespace imgq::schemas
