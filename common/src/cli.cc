#include "imgq/common/cli.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iostream>
#include <sstream>

#include "imgq/common/text.h"

namespace imgq::cli {
namespace {

std::string number_text(double x) {
  std::ostringstream out;
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    out << static_cast<long long>(x);
  } else {
    out << x;
  }
  return out.str();
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// A port: 1-65535 (`zero_ok`: also 0).
bool valid_port(std::string_view s, bool zero_ok) {
  if (!all_digits(s) || s.size() > 5) return false;
  int port = 0;
  std::from_chars(s.data(), s.data() + s.size(), port);
  return port <= 65535 && (port > 0 || zero_ok);
}

bool valid_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return std::all_of(host.begin() + 1, host.end() - 1,
                       [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; });
  }
  return !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_';
  });
}

// Every option name of `app` ("--out", "-o"), for "did you mean".
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& l : option->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : option->get_snames()) names.push_back("-" + s);
  }
  return names;
}

std::vector<CLI::App*> subcommands_of(const CLI::App& app) {
  return const_cast<CLI::App&>(app).get_subcommands([](CLI::App*) { return true; });
}

// The deepest subcommand the command line chose.
CLI::App* chosen(CLI::App& app) {
  for (CLI::App* sub : subcommands_of(app)) {
    if (sub->parsed()) return chosen(*sub);
  }
  return &app;
}

std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent()) path = p->get_name() + " " + path;
  return path;
}

std::string roff_escape(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

// What an option looks like in a synopsis or a man page: "--out DIR, -o DIR".
std::string option_label(const CLI::Option& option) {
  std::string label;
  const std::string type = option.get_items_expected_max() == 0 ? "" : option.get_type_name();
  auto add = [&](const std::string& name) {
    if (!label.empty()) label += ", ";
    label += name;
    if (!type.empty()) label += " " + type;
  };
  for (const std::string& l : option.get_lnames()) add("--" + l);
  for (const std::string& s : option.get_snames()) add("-" + s);
  return label;
}

bool hidden(const CLI::Option& option) { return option.get_group().empty(); }

void man_options(std::ostringstream& out, const CLI::App& app) {
  for (const CLI::Option* option : app.get_options()) {
    if (hidden(*option) || option->get_positional()) continue;
    out << ".TP\n\\fB" << roff_escape(option_label(*option)) << "\\fR\n";
    std::string text = option->get_description();
    if (!option->get_default_str().empty()) text += " (default: " + option->get_default_str() + ")";
    if (!option->get_envname().empty()) text += " (env " + option->get_envname() + ")";
    out << roff_escape(text) << "\n";
  }
}

std::string synopsis(const CLI::App& app) {
  std::string s = command_path(app);
  if (!subcommands_of(app).empty()) s += " COMMAND";
  s += " [OPTIONS]";
  for (const CLI::Option* option : app.get_options()) {
    if (!option->get_positional() || hidden(*option)) continue;
    std::string name = option->get_name();
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    if (option->get_items_expected_max() > 1) name += "...";
    s += option->get_required() ? " " + name : " [" + name + "]";
  }
  return s;
}

// The word list for an option's value, by its type name.
std::string value_kind(const CLI::Option& option, const CompletionWords& words) {
  const std::string type = option.get_type_name();
  if (words.count(type) != 0) return "words:" + type;
  if (type == "DIR") return "dir";
  if (type == "FILE" || type == "PATH" || type == "LIST") return "file";
  return "any";
}

std::string joined(const std::vector<std::string>& words, std::string_view separator = " ") {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : std::string(separator)) + w;
  return out;
}

// For a zsh description: no brackets, colons or quotes.
std::string zsh_text(std::string text) {
  for (char& c : text) {
    if (c == '[' || c == ']' || c == ':' || c == '\'' || c == '`' || c == '$' || c == '"') c = ' ';
  }
  if (text.size() > 70) text = text.substr(0, 67) + "...";
  return text;
}

}  // namespace

std::string exit_status_text() {
  return "Exit status: 0 success; 1 some jobs or requests failed (or a server could not start); 2 usage error "
         "(nothing was done); 3 the broker does not answer, went silent, or refused this key; 130 interrupted.";
}

namespace {
bool g_stdin_closed = false;
}  // namespace

bool stdin_was_closed() { return g_stdin_closed; }

int guarded(std::string_view program, const std::function<int()>& body) {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    // The lowest free number: `fd` itself, the lower ones being open.
    if (::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) == 0) g_stdin_closed = true;
  }
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << program << ": internal error: " << e.what() << "\n";
    return kExitFailed;
  }
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(1, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  if (!best.empty() || word.size() < 3) return best;
  for (const std::string& c : candidates) {
    if (c.rfind(word, 0) == 0) return c;
  }
  return best;
}

size_t stderr_columns() {
  if (::isatty(STDERR_FILENO) == 0) return 0;
  winsize ws{};
  return ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

std::optional<int> parse(CLI::App& app, int argc, char** argv, bool print) {
  const std::string program = app.get_name();
  auto fail = [&](const CLI::App& where, const std::string& message) {
    if (print) {
      const size_t columns = stderr_columns();
      std::cerr << wrap_words(program + ": error: " + message, columns == 0 ? 0 : columns - 1) << "\n"
                << "(" << command_path(where) << " --help says what it takes)\n";
    }
    return kExitUsage;
  };
  const std::vector<CLI::App*> subs = subcommands_of(app);
  if (!subs.empty() && argc < 2) {
    if (print) std::cerr << app.help();
    return kExitUsage;
  }
  // An unknown command, which CLI11 would call a missing subcommand.
  if (!subs.empty() && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (CLI::App* sub : subs) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      const std::string guess = closest(argv[1], names);
      return fail(app, "unknown command \"" + std::string(argv[1]) + "\"" +
                           (guess.empty() ? "" : "; did you mean \"" + guess + "\"?"));
    }
  }
  app.allow_extras();
  for (CLI::App* sub : subs) sub->allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (print) app.exit(e);
    return kExitOk;
  } catch (const CLI::CallForAllHelp& e) {
    if (print) app.exit(e);
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    if (print) app.exit(e);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return fail(*chosen(app), e.what());
  }
  CLI::App& used = *chosen(app);
  std::vector<std::string> extras = used.remaining();
  if (&used != &app) {
    for (const std::string& extra : app.remaining()) extras.push_back(extra);
  }
  for (const std::string& extra : extras) {
    if (extra.size() > 1 && extra[0] == '-' && !all_digits(extra.substr(1))) {
      const std::string name = extra.substr(0, extra.find('='));
      const std::string guess = closest(name, option_names(used));
      return fail(used, "unknown option " + name + (guess.empty() ? "" : "; did you mean " + guess + "?"));
    }
    return fail(used, "unexpected argument \"" + extra + "\"");
  }
  return std::nullopt;
}

CLI::Validator range(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& input) -> std::string {
        double x = 0;
        if (!CLI::detail::lexical_cast(input, x)) return "\"" + input + "\" is not a number";
        if (x < min || x > max) {
          return "must be from " + number_text(min) + " to " + number_text(max) + ", got " + input;
        }
        return {};
      },
      "", "range");
}

Result<std::string> parse_endpoint(std::string_view text, EndpointUse use, std::string_view what) {
  const bool bind = use == EndpointUse::kBind;
  const std::string given(text);
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(what) + " \"" + given + "\" " + why +
                                   ": give HOST:PORT or tcp://HOST:PORT, e.g. " +
                                   (bind ? "*:5555 (every interface) or 127.0.0.1:5555"
                                         : "127.0.0.1:5555 or broker.example.org:5555"));
  };
  std::string_view rest = text;
  if (const size_t scheme_end = text.find("://"); scheme_end != std::string_view::npos) {
    const std::string_view scheme = text.substr(0, scheme_end);
    rest = text.substr(scheme_end + 3);
    if ((scheme == "ipc" || scheme == "inproc") && !rest.empty()) return given;
    if (scheme != "tcp") return refuse("has the transport \"" + std::string(scheme) + "\" (imgq speaks tcp, ipc, inproc)");
  }
  if (rest.empty()) return refuse("is empty");
  if (all_digits(rest)) {
    return Status::InvalidArgument(std::string(what) + " \"" + given + "\" is a port without a host; did you mean " +
                                   (bind ? "*:" + std::string(rest) + " (every interface) or 127.0.0.1:"
                                         : "127.0.0.1:") +
                                   std::string(rest) + "?");
  }
  std::string_view host, port;
  if (rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return refuse("is not [IPV6]:PORT");
    }
    host = rest.substr(0, close + 1);
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return refuse("has no port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return refuse("has an IPv6 address outside brackets ([::1]:5555)");
  }
  if (host == "*" || host == "0.0.0.0" || host == "[::]") {
    if (!bind) {
      return refuse("names every interface, which only a server binds; connect to the broker's address");
    }
  } else if (!valid_host(host)) {
    return refuse("has a host that is no name or address");
  }
  if (!(bind && port == "*") && !valid_port(port, /*zero_ok=*/false)) return refuse("has no valid port (1-65535)");
  return "tcp://" + std::string(host) + ":" + std::string(port);
}

Result<std::string> parse_listen_address(std::string_view text, std::string_view what) {
  if (text.empty()) return std::string();
  const std::string given(text);
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(what) + " \"" + given + "\" " + why +
                                   ": give HOST:PORT (e.g. 127.0.0.1:9464, or 0.0.0.0:9464 for every "
                                   "interface), PORT for 127.0.0.1:PORT, or \"\" for off");
  };
  if (all_digits(text)) {
    if (!valid_port(text, /*zero_ok=*/true)) return refuse("is no port (0-65535)");
    return "127.0.0.1:" + given;
  }
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return refuse("has no port");
  const std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (!valid_port(port, /*zero_ok=*/true)) return refuse("has no valid port (0-65535)");
  if (host.empty()) return "127.0.0.1:" + std::string(port);
  if (!valid_host(host)) return refuse("has a host that is no address");
  return given;
}

const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
  return levels;
}

const std::vector<std::string>& log_formats() {
  static const std::vector<std::string> formats = {"text", "json"};
  return formats;
}

std::string man_page(const CLI::App& app, std::string_view version,
                     const std::map<std::string, std::string>& environment) {
  std::ostringstream out;
  std::string upper = app.get_name();
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  out << ".TH " << roff_escape(upper) << " 1 \"\" \"imgq " << roff_escape(version) << "\" \"imgq manual\"\n";
  out << ".SH NAME\n" << roff_escape(app.get_name()) << " \\- ";
  std::string description = app.get_description();
  if (const size_t colon = description.find(": "); colon != std::string::npos) description = description.substr(colon + 2);
  out << roff_escape(description) << "\n";
  out << ".SH SYNOPSIS\n.nf\n" << roff_escape(synopsis(app)) << "\n";
  for (const CLI::App* sub : subcommands_of(app)) out << roff_escape(synopsis(*sub)) << "\n";
  out << ".fi\n";
  if (!app.get_footer().empty()) out << ".SH DESCRIPTION\n.nf\n" << roff_escape(app.get_footer()) << "\n.fi\n";
  out << ".SH OPTIONS\n";
  man_options(out, app);
  for (const CLI::App* sub : subcommands_of(app)) {
    out << ".SH \"" << roff_escape(upper + " " + sub->get_name()) << "\"\n";
    out << ".B " << roff_escape(synopsis(*sub)) << "\n.PP\n" << roff_escape(sub->get_description()) << "\n";
    man_options(out, *sub);
    if (!sub->get_footer().empty()) out << ".PP\n.nf\n" << roff_escape(sub->get_footer()) << "\n.fi\n";
  }
  out << ".SH \"EXIT STATUS\"\n" << roff_escape(exit_status_text()) << "\n";
  if (!environment.empty()) {
    out << ".SH ENVIRONMENT\n";
    for (const auto& [name, meaning] : environment) out << ".TP\n.B " << name << "\n" << roff_escape(meaning) << "\n";
  }
  out << ".SH \"SEE ALSO\"\nimgq(1), imgq\\-broker(1), imgq\\-worker(1); docs/ in the source tree.\n";
  return out.str();
}

std::string bash_completion(const CLI::App& app, const CompletionWords& words) {
  const std::string name = app.get_name();
  std::string fn = "_" + name;
  std::replace(fn.begin(), fn.end(), '-', '_');
  std::ostringstream out;
  out << "# bash completion for " << name << " (generated by " << name << " completion bash)\n";
  out << fn << "() {\n  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" cmd=\"\" i\n";
  std::vector<std::string> commands;
  for (const CLI::App* sub : subcommands_of(app)) commands.push_back(sub->get_name());
  out << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      << "    case \"${COMP_WORDS[i]}\" in " << (commands.empty() ? "__none__" : joined(commands, "|"))
      << ") cmd=\"${COMP_WORDS[i]}\"; break ;; esac\n  done\n";
  auto value_case = [&](const CLI::App& a) {
    out << "    case \"$prev\" in\n";
    for (const CLI::Option* option : a.get_options()) {
      if (option->get_items_expected_max() == 0 || option->get_positional()) continue;
      std::vector<std::string> names;
      for (const std::string& l : option->get_lnames()) names.push_back("--" + l);
      for (const std::string& s : option->get_snames()) names.push_back("-" + s);
      const std::string kind = value_kind(*option, words);
      out << "      " << joined(names, "|") << ") ";
      if (kind == "dir") {
        out << "COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n";
      } else if (kind == "file") {
        out << "COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n";
      } else if (kind.rfind("words:", 0) == 0) {
        out << "COMPREPLY=($(compgen -W \"" << joined(words.at(kind.substr(6))) << "\" -- \"$cur\")); return ;;\n";
      } else {
        out << "return ;;\n";
      }
    }
    out << "    esac\n";
  };
  auto flags_of = [&](const CLI::App& a) {
    std::vector<std::string> names;
    for (const CLI::Option* option : a.get_options()) {
      if (hidden(*option) || option->get_positional()) continue;
      for (const std::string& l : option->get_lnames()) names.push_back("--" + l);
    }
    return names;
  };
  out << "  case \"$cmd\" in\n";
  for (const CLI::App* sub : subcommands_of(app)) {
    out << "  " << sub->get_name() << ")\n";
    value_case(*sub);
    out << "    COMPREPLY=($(compgen -W \"" << joined(flags_of(*sub)) << "\" -- \"$cur\"))\n";
    out << "    [[ \"$cur\" == -* ]] || COMPREPLY+=($(compgen -f -- \"$cur\"))\n    ;;\n";
  }
  out << "  *)\n";
  value_case(app);
  std::vector<std::string> top = commands;
  for (const std::string& f : flags_of(app)) top.push_back(f);
  out << "    COMPREPLY=($(compgen -W \"" << joined(top) << "\" -- \"$cur\"))\n";
  if (commands.empty()) out << "    [[ \"$cur\" == -* ]] || COMPREPLY+=($(compgen -f -- \"$cur\"))\n";
  out << "    ;;\n  esac\n}\ncomplete -o filenames -o bashdefault -F " << fn << " " << name << "\n";
  return out.str();
}

std::string zsh_completion(const CLI::App& app, const CompletionWords& words) {
  const std::string name = app.get_name();
  std::string fn = "_" + name;
  std::replace(fn.begin(), fn.end(), '-', '_');
  std::ostringstream out;
  auto specs = [&](const CLI::App& a) {
    std::vector<std::string> lines;
    for (const CLI::Option* option : a.get_options()) {
      if (hidden(*option)) continue;
      const std::string kind = value_kind(*option, words);
      std::string action = "_files";
      if (kind == "dir") action = "_files -/";
      if (kind == "any") action = " ";
      if (kind.rfind("words:", 0) == 0) action = "(" + joined(words.at(kind.substr(6))) + ")";
      if (option->get_positional()) {
        lines.push_back("'*:" + zsh_text(option->get_name()) + ":" + action + "'");
        continue;
      }
      const bool takes_value = option->get_items_expected_max() != 0;
      const bool repeats = option->get_items_expected_max() > 1 || option->get_multi_option_policy() ==
                                                                         CLI::MultiOptionPolicy::TakeAll;
      std::vector<std::string> names;
      for (const std::string& l : option->get_lnames()) names.push_back("--" + l);
      for (const std::string& s : option->get_snames()) names.push_back("-" + s);
      for (const std::string& n : names) {
        std::string spec = "'" + std::string(repeats ? "*" : "") + n + "[" + zsh_text(option->get_description()) + "]";
        if (takes_value) spec += ":" + zsh_text(option->get_type_name().empty() ? "value" : option->get_type_name()) +
                                 ":" + action;
        lines.push_back(spec + "'");
      }
    }
    return lines;
  };
  out << "#compdef " << name << "\n# zsh completion for " << name << " (generated by " << name
      << " completion zsh)\n";
  out << fn << "() {\n";
  const std::vector<CLI::App*> subs = subcommands_of(app);
  if (subs.empty()) {
    out << "  _arguments -s \\\n    " << joined(specs(app), " \\\n    ") << "\n}\n";
  } else {
    out << "  local -a commands\n  commands=(\n";
    for (const CLI::App* sub : subs) {
      out << "    '" << sub->get_name() << ":" << zsh_text(sub->get_description()) << "'\n";
    }
    out << "  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' commands\n    return\n  fi\n";
    out << "  local cmd=$words[2]\n  shift words\n  (( CURRENT-- ))\n  case $cmd in\n";
    for (const CLI::App* sub : subs) {
      out << "    " << sub->get_name() << ")\n      _arguments -s \\\n        "
          << joined(specs(*sub), " \\\n        ") << "\n      ;;\n";
    }
    out << "  esac\n}\n";
  }
  out << fn << " \"$@\"\n";
  return out.str();
}

}  // namespace imgq::cli
