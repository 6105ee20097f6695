#include "imgq/schemas/op_call.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "imgq/common/text.h"

namespace imgq::schemas {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return format_double(v);
}

Status unknown_op(std::string_view name) {
  std::string best;
  size_t best_d = 4;  // suggest only close matches
  std::string known;
  auto consider = [&](std::string_view candidate) {
    size_t d = edit_distance(name, candidate);
    if (d < best_d) best_d = d, best = std::string(candidate);
    known += known.empty() ? "" : ", ";
    known += candidate;
  };
  for (const OpDef& def : all_ops()) consider(def.name);
  for (const AliasDef& a : all_aliases()) consider(a.alias);
  std::string msg = "unknown op \"" + std::string(name) + "\"";
  if (!best.empty()) msg += " (did you mean \"" + best + "\"?)";
  return Status::InvalidArgument(msg + "; known ops: " + known);
}

std::string allowed_text(const ParamDef& p) {
  std::string s;
  switch (p.type) {
    case ParamType::kBool: return "true or false";
    case ParamType::kEnum:
    case ParamType::kInt:
      if (!p.choices.empty()) {
        s = "one of ";
        for (size_t i = 0; i < p.choices.size(); ++i) s += (i ? ", " : "") + std::string(p.choices[i]);
        return s;
      }
      s = p.odd ? "an odd integer" : "an integer";
      break;
    case ParamType::kDouble: s = "a number"; break;
  }
  return s + " from " + format_number(p.min) + " to " + format_number(p.max);
}

Result<ParamValue> parse_value(std::string_view op, const ParamDef& p, std::string_view text) {
  auto bad = [&]() {
    return Status::InvalidArgument(std::string(op) + ": " + std::string(p.key) + " must be " +
                                   allowed_text(p) + ", got \"" + std::string(text) + "\"");
  };
  const char* first = text.data();
  const char* last = text.data() + text.size();
  switch (p.type) {
    case ParamType::kBool:
      if (text == "true" || text == "1" || text == "yes" || text == "on") return ParamValue(true);
      if (text == "false" || text == "0" || text == "no" || text == "off") return ParamValue(false);
      return bad();
    case ParamType::kEnum:
      if (std::find(p.choices.begin(), p.choices.end(), text) == p.choices.end()) return bad();
      return ParamValue(std::string(text));
    case ParamType::kInt: {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || ptr != last || text.empty()) return bad();
      const double dv = static_cast<double>(v);
      if (dv < p.min || dv > p.max || (p.odd && v % 2 == 0)) return bad();
      if (!p.choices.empty() &&
          std::find(p.choices.begin(), p.choices.end(), std::to_string(v)) == p.choices.end()) {
        return bad();
      }
      return ParamValue(v);
    }
    case ParamType::kDouble: {
      double v = 0;
      if (!text.empty() && text.front() == '+') ++first;
      auto [ptr, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || ptr != last || text.empty() || !std::isfinite(v)) return bad();
      if (v < p.min || v > p.max) return bad();
      return ParamValue(v);
    }
  }
  return bad();
}

const ParamDef* find_param(const OpDef& def, std::string_view key) {
  for (const ParamDef& p : def.params) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

// Applies "key=value,..." to `call`; `seen` catches a key given twice.
Status apply_params(OpCall& call, std::string_view text, std::vector<std::string>* seen) {
  const OpDef& def = call.def();
  std::string_view op = def.name;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    if (item.empty()) {
      return Status::InvalidArgument(std::string(op) + ": empty parameter in \"" +
                                     std::string(text) + "\" (write key=value,key=value)");
    }
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument(std::string(op) + ": parameter \"" + std::string(item) +
                                     "\" has no value (write key=value)");
    }
    std::string_view key = trim(item.substr(0, eq));
    std::string_view value = trim(item.substr(eq + 1));
    const ParamDef* p = find_param(def, key);
    if (p == nullptr) {
      std::string known;
      for (const ParamDef& q : def.params) known += (known.empty() ? "" : ", ") + std::string(q.key);
      return Status::InvalidArgument(
          std::string(op) + ": unknown parameter \"" + std::string(key) + "\"; " +
          (known.empty() ? std::string(op) + " takes no parameters" : "parameters: " + known));
    }
    if (seen != nullptr) {
      if (std::find(seen->begin(), seen->end(), key) != seen->end()) {
        return Status::InvalidArgument(std::string(op) + ": parameter \"" + std::string(key) +
                                       "\" given twice");
      }
      seen->emplace_back(key);
    }
    IMGQ_ASSIGN_OR_RETURN(ParamValue v, parse_value(op, *p, value));
    call.set(key, std::move(v));
    if (comma == std::string_view::npos) return Status::Ok();
    text = text.substr(comma + 1);
  }
}

}  // namespace

int64_t OpCall::get_int(std::string_view key) const {
  auto it = params_.find(key);
  return it == params_.end() ? 0 : std::get<int64_t>(it->second);
}

double OpCall::get_double(std::string_view key) const {
  auto it = params_.find(key);
  if (it == params_.end()) return 0;
  if (const auto* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  return std::get<double>(it->second);
}

bool OpCall::get_bool(std::string_view key) const {
  auto it = params_.find(key);
  return it != params_.end() && std::get<bool>(it->second);
}

const std::string& OpCall::get_enum(std::string_view key) const {
  static const std::string empty;
  auto it = params_.find(key);
  return it == params_.end() ? empty : std::get<std::string>(it->second);
}

void OpCall::set(std::string_view key, ParamValue value) {
  params_.insert_or_assign(std::string(key), std::move(value));
}

void OpCall::erase(std::string_view key) {
  auto it = params_.find(key);
  if (it != params_.end()) params_.erase(it);
}

std::string OpCall::ToString() const {
  std::string out(name());
  char sep = ':';
  for (const auto& [key, value] : params_) {
    out += sep;
    sep = ',';
    out += key;
    out += '=';
    std::visit(
        [&out](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) out += std::to_string(v);
          else if constexpr (std::is_same_v<T, double>) out += format_double(v);
          else if constexpr (std::is_same_v<T, bool>) out += v ? "true" : "false";
          else out += v;
        },
        value);
  }
  return out;
}

Result<OpCall> parse_op(std::string_view spec) {
  spec = trim(spec);
  size_t colon = spec.find(':');
  std::string_view name = trim(spec.substr(0, colon));
  if (name.empty()) return Status::InvalidArgument("empty op name in \"" + std::string(spec) + "\"");

  const OpDef* def = find_op(name);
  std::string_view alias_params;
  if (def == nullptr) {
    for (const AliasDef& a : all_aliases()) {
      if (a.alias == name) def = find_op(a.target), alias_params = a.params;
    }
  }
  if (def == nullptr) return unknown_op(name);

  OpCall call(*def);
  for (const ParamDef& p : def->params) {
    if (p.default_value.empty()) continue;
    auto v = parse_value(def->name, p, p.default_value);
    if (v.ok()) call.set(p.key, *v);
  }
  if (!alias_params.empty()) IMGQ_RETURN_IF_ERROR(apply_params(call, alias_params, nullptr));

  if (colon != std::string_view::npos) {
    std::vector<std::string> seen;
    IMGQ_RETURN_IF_ERROR(apply_params(call, spec.substr(colon + 1), &seen));
  }
  if (def->check != nullptr) IMGQ_RETURN_IF_ERROR(def->check(call));
  return call;
}

Result<Pipeline> parse_pipeline(const std::vector<std::string>& specs) {
  Pipeline pipeline;
  pipeline.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto call = parse_op(specs[i]);
    if (!call.ok()) {
      return call.status().WithContext("op " + std::to_string(i + 1) + " \"" + specs[i] + "\"");
    }
    pipeline.push_back(std::move(call).value());
  }
  return pipeline;
}

std::vector<std::string> pipeline_to_specs(const Pipeline& pipeline) {
  std::vector<std::string> out;
  out.reserve(pipeline.size());
  for (const OpCall& op : pipeline) out.push_back(op.ToString());
  return out;
}

bool makes_edge_map(const Pipeline& pipeline) {
  return std::any_of(pipeline.begin(), pipeline.end(), [](const OpCall& op) {
    return op.id() == OpId::kCanny || op.id() == OpId::kSobel || op.id() == OpId::kThreshold;
  });
}

}  // namespace imgq::schemas
