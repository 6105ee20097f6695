// OpCall and Pipeline: a parsed, validated use of an op, and a list of them.
//
// Parsing is strict: an unknown op, an unknown parameter, a value that is not
// of the parameter's type or outside its range is an InvalidArgument naming
// the op, the parameter and what is allowed. Nothing is clamped silently.
// Checks that depend on the image (16-bit, channels) happen in the worker.
//
// Textual form (command lines, and the canonical form sent to workers):
//   name[:key=value[,key=value...]]        e.g. gaussian_blur:ksize=5,sigma=1.5
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imgq/common/status.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::schemas {

using ParamValue = std::variant<int64_t, double, bool, std::string>;

class OpCall {
 public:
  explicit OpCall(const OpDef& def) : def_(&def) {}

  OpId id() const { return def_->id; }
  std::string_view name() const { return def_->name; }
  const OpDef& def() const { return *def_; }

  bool has(std::string_view key) const { return params_.find(key) != params_.end(); }
  // Accessors for parameters the catalog declares with that type; a double
  // parameter given as an integer literal is stored as a double.
  int64_t get_int(std::string_view key) const;
  double get_double(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_enum(std::string_view key) const;

  void set(std::string_view key, ParamValue value);
  void erase(std::string_view key);

  // Canonical text: name followed by every set parameter in key order.
  std::string ToString() const;

  bool operator==(const OpCall& other) const {
    return def_ == other.def_ && params_ == other.params_;
  }

 private:
  const OpDef* def_;
  std::map<std::string, ParamValue, std::less<>> params_;
};

using Pipeline = std::vector<OpCall>;

// Parses one op spec (see above), resolving aliases and filling defaults.
Result<OpCall> parse_op(std::string_view spec);

// Parses each spec in order; an error names which op (1-based) was wrong.
// An empty list is the identity pipeline.
Result<Pipeline> parse_pipeline(const std::vector<std::string>& specs);

// Canonical text of each op, one per element (parse_pipeline's inverse).
std::vector<std::string> pipeline_to_specs(const Pipeline& pipeline);

// Whether the pipeline draws edges or thresholds (canny, sobel, threshold):
// a result lossy compression would smear, so a JPEG input's result is
// written as PNG unless a format is asked for (batch_paths.h).
bool makes_edge_map(const Pipeline& pipeline);

}  // namespace imgq::schemas
