#include "imgq/schemas/op_catalog.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "imgq/schemas/op_call.h"

namespace imgq::schemas {
namespace {

// Filters larger than this are refused: their halos would dwarf a strip and
// nobody means a 256-pixel kernel on purpose.
constexpr double kMaxKsize = 255;

ParamDef odd_ksize(std::string_view def, double min = 1) {
  return {.key = "ksize", .type = ParamType::kInt, .default_value = def, .min = min,
          .max = kMaxKsize, .odd = true};
}

Status check_canny(OpCall& call) {
  if (call.get_double("low") > call.get_double("high")) {
    std::ostringstream msg;
    msg << "canny: low must not exceed high (got low=" << call.get_double("low")
        << ", high=" << call.get_double("high") << ")";
    return Status::InvalidArgument(msg.str());
  }
  return Status::Ok();
}

Status check_resize(OpCall& call) {
  const bool w = call.has("width"), h = call.has("height");
  if (w != h) {
    return Status::InvalidArgument("resize: width and height must be given together");
  }
  if (w && call.has("scale")) {
    return Status::InvalidArgument("resize: give either scale or width and height, not both");
  }
  if (!w && !call.has("scale")) call.set("scale", 0.5);
  return Status::Ok();
}

const std::vector<OpDef>& ops_table() {
  static const std::vector<OpDef> table = {
      {OpId::kIdentity, "identity", "copy the image unchanged", {}},
      {OpId::kGrayscale, "grayscale", "to one channel (BGR2GRAY / BGRA2GRAY); 1 channel unchanged", {}},
      {OpId::kInvert, "invert", "bitwise not of every sample", {}},
      {OpId::kThreshold, "threshold", "binary threshold: max where value > threshold, else 0",
       {{.key = "value", .type = ParamType::kDouble, .default_value = "128", .min = 0, .max = 65535},
        {.key = "max", .type = ParamType::kDouble, .default_value = "", .min = 0, .max = 65535,
         .default_help = "255 for 8-bit, 65535 for 16-bit"}}},
      {OpId::kBrightnessContrast, "brightness_contrast", "alpha * pixel + beta, saturated",
       {{.key = "alpha", .type = ParamType::kDouble, .default_value = "1.0", .min = -1e6, .max = 1e6},
        {.key = "beta", .type = ParamType::kDouble, .default_value = "0", .min = -1e6, .max = 1e6}}},
      {OpId::kTo8bit, "to_8bit", "16-bit to 8-bit (divide by 257); 8-bit unchanged", {}},
      {OpId::kGaussianBlur, "gaussian_blur", "Gaussian blur",
       {odd_ksize("5"),
        {.key = "sigma", .type = ParamType::kDouble, .default_value = "0", .min = 0, .max = 1000,
         .default_help = "0 = derived from ksize"}}},
      {OpId::kBoxBlur, "box_blur", "normalised box filter", {odd_ksize("5")}},
      {OpId::kMedianBlur, "median_blur", "median filter (16-bit: ksize 3 or 5 only)", {odd_ksize("5")}},
      {OpId::kSharpen, "sharpen", "3x3 sharpening kernel [0,-1,0; -1,5,-1; 0,-1,0]", {}},
      {OpId::kSobel, "sobel", "gradient magnitude 0.5*|dx| + 0.5*|dy| (8-bit only)",
       {{.key = "ksize", .type = ParamType::kInt, .default_value = "3", .min = 1, .max = 7,
         .choices = {"1", "3", "5", "7"}}}},
      {OpId::kCanny, "canny", "Canny edges (8-bit only)",
       {{.key = "low", .type = ParamType::kDouble, .default_value = "100", .min = 0, .max = 1e6},
        {.key = "high", .type = ParamType::kDouble, .default_value = "200", .min = 0, .max = 1e6},
        {.key = "aperture", .type = ParamType::kInt, .default_value = "3", .min = 3, .max = 7,
         .choices = {"3", "5", "7"}},
        {.key = "l2", .type = ParamType::kBool, .default_value = "false"}},
       check_canny},
      {OpId::kErode, "erode", "minimum over a ksize x ksize rectangle, repeated",
       {odd_ksize("3"),
        {.key = "iterations", .type = ParamType::kInt, .default_value = "1", .min = 1, .max = 100}}},
      {OpId::kDilate, "dilate", "maximum over a ksize x ksize rectangle, repeated",
       {odd_ksize("3"),
        {.key = "iterations", .type = ParamType::kInt, .default_value = "1", .min = 1, .max = 100}}},
      {OpId::kEqualizeHist, "equalize_hist",
       "histogram equalisation (8-bit; 3 channels: on Y of YCrCb)", {}},
      {OpId::kResize, "resize", "scale by a factor, or to width x height",
       {{.key = "scale", .type = ParamType::kDouble, .default_value = "", .min = 1e-6, .max = 16,
         .default_help = "0.5 unless width and height are given"},
        {.key = "width", .type = ParamType::kInt, .default_value = "", .min = 1, .max = 65535},
        {.key = "height", .type = ParamType::kInt, .default_value = "", .min = 1, .max = 65535},
        {.key = "interpolation", .type = ParamType::kEnum, .default_value = "area",
         .choices = {"area", "linear", "cubic", "nearest"}}},
       check_resize},
      {OpId::kRotate, "rotate", "rotate clockwise",
       {{.key = "angle", .type = ParamType::kInt, .default_value = "90", .min = 90, .max = 270,
         .choices = {"90", "180", "270"}}}},
      {OpId::kFlip, "flip", "mirror: h (left-right), v (top-bottom) or both",
       {{.key = "axis", .type = ParamType::kEnum, .default_value = "h", .choices = {"h", "v", "both"}}}},
  };
  return table;
}

const std::vector<AliasDef>& alias_table() {
  static const std::vector<AliasDef> table = {
      {"edge_detection", "canny", ""},
      {"color_inversion", "invert", ""},
      {"blur", "gaussian_blur", "ksize=25"},
      {"erosion", "erode", "ksize=25"},
      {"dilation", "dilate", "ksize=25"},
  };
  return table;
}

std::string describe_param(const proto::ParamInfo& p) {
  std::ostringstream out;
  out << p.key << "=";
  if (!p.default_value.empty()) {
    out << p.default_value;
  } else {
    out << "(" << (p.help.empty() ? "unset" : p.help) << ")";
  }
  if (!p.choices.empty()) {
    out << " {";
    for (size_t i = 0; i < p.choices.size(); ++i) out << (i ? "," : "") << p.choices[i];
    out << "}";
  } else if (p.type == "int" || p.type == "number") {
    out << " [" << p.min << ".." << p.max << (p.odd ? ", odd" : "") << "]";
  }
  if (!p.default_value.empty() && !p.help.empty()) out << " (" << p.help << ")";
  return out.str();
}

}  // namespace

std::span<const OpDef> all_ops() { return ops_table(); }
std::span<const AliasDef> all_aliases() { return alias_table(); }

const OpDef* find_op(std::string_view name) {
  for (const OpDef& def : ops_table()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

const OpDef& op_def(OpId id) {
  for (const OpDef& def : ops_table()) {
    if (def.id == id) return def;
  }
  return ops_table().front();  // unreachable: every OpId is in the table
}

std::vector<proto::OpInfo> describe_ops() {
  static const char* const kTypes[] = {"int", "number", "bool", "enum"};
  std::vector<proto::OpInfo> ops;
  for (const OpDef& def : all_ops()) {
    proto::OpInfo op;
    op.name = def.name;
    op.summary = def.summary;
    for (const ParamDef& p : def.params) {
      proto::ParamInfo param;
      param.key = p.key;
      param.type = kTypes[static_cast<int>(p.type)];
      param.default_value = p.default_value;
      param.help = p.default_help;
      param.min = p.min;
      param.max = p.max;
      param.choices.assign(p.choices.begin(), p.choices.end());
      param.odd = p.odd;
      op.params.push_back(std::move(param));
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

std::vector<proto::AliasInfo> describe_aliases() {
  std::vector<proto::AliasInfo> aliases;
  for (const AliasDef& a : all_aliases()) aliases.push_back({std::string(a.alias), std::string(a.target), std::string(a.params)});
  return aliases;
}

std::string format_op_table(const std::vector<proto::OpInfo>& ops, const std::vector<proto::AliasInfo>& aliases) {
  std::ostringstream out;
  out << "Ops (use as --op name[:key=value,...]; applied in order):\n\n";
  for (const proto::OpInfo& op : ops) {
    out << "  " << op.name << "\n      " << op.summary << "\n";
    for (const proto::ParamInfo& p : op.params) out << "      " << describe_param(p) << "\n";
  }
  out << "\nAliases:\n";
  for (const proto::AliasInfo& a : aliases) {
    out << "  " << a.alias << " = " << a.target << (a.params.empty() ? "" : ":") << a.params << "\n";
  }
  return out.str();
}

std::string format_op_table() { return format_op_table(describe_ops(), describe_aliases()); }

}  // namespace imgq::schemas
