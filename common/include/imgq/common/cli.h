// Command-line conventions shared by imgq, imgq-broker and imgq-worker, so
// the three behave alike (docs/cli.md):
//   - one exit-code scheme (kExit*), said in every --help;
//   - "did you mean" for an unknown command or option, and usage errors
//     (exit 2) that say where to look;
//   - help without validator noise;
//   - endpoints as people type them (HOST:PORT) checked before any socket
//     sees them;
//   - the man page and the shell completions generated from the same CLI11
//     definitions as --help, so none of them can drift from the others.
// Pure text and argument handling: no sockets. Not thread-safe (call from
// main).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "imgq/common/status.h"

namespace imgq::cli {

// Exit status of every imgq program.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // some jobs or requests failed; a server could not start
inline constexpr int kExitUsage = 2;        // bad command line or environment; nothing was done
inline constexpr int kExitUnavailable = 3;  // the broker does not answer, went silent, or refused this key
inline constexpr int kExitInterrupted = 130;

// The exit-status paragraph of --help and the man page.
std::string exit_status_text();

// Runs a program's body: an exception that escapes it (a bug, not a use) is
// said plainly, "PROGRAM: internal error: ...", exit 1, never "terminate
// called" and a signal. First, a standard descriptor (0, 1, 2) the program
// was started without is opened on /dev/null, so that no socket or file
// takes its number (ZeroMQ's eventfd took fd 0, and a list read from stdin
// then read from it forever); stdin_was_closed() says so afterwards.
int guarded(std::string_view program, const std::function<int()>& body);
bool stdin_was_closed();

// The candidate closest to `word` (edit distance at most a third of its
// length, at least 1; or a candidate that starts with it), or empty.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// Parses the command line into `app` (and its subcommands). Returns nullopt
// when the program should go on, else the exit status to leave with: 0
// after --help or --version, kExitUsage after a usage error. Errors go to
// stderr as "PROGRAM: error: ..." with "did you mean" for unknown commands
// and options, and the --help to read. With `print` false nothing is printed
// (every MPI rank parses; only the leader speaks).
std::optional<int> parse(CLI::App& app, int argc, char** argv, bool print = true);

// The terminal's width where stderr is one (80 if it does not say), else 0:
// what error messages are wrapped to (wrap_words, text.h).
size_t stderr_columns();

// A range check whose limits appear in the message of a bad value, not in
// --help (where "N" and the option's text say it).
CLI::Validator range(double min, double max);

// How users write endpoints: "tcp://HOST:PORT", or "HOST:PORT" (tcp
// implied); "ipc://PATH" and "inproc://NAME" as they are. HOST may be a name,
// an IPv4 address or [IPv6]; to bind, also "*" and port "*" (any free one).
// `what` names the option in errors. InvalidArgument says the form expected
// and, for a bare port, which endpoint was probably meant.
enum class EndpointUse { kConnect, kBind };
Result<std::string> parse_endpoint(std::string_view text, EndpointUse use, std::string_view what);

// HOST:PORT for an HTTP listener (--metrics): "PORT" alone means
// 127.0.0.1:PORT; empty stays empty (off).
Result<std::string> parse_listen_address(std::string_view text, std::string_view what);

// Log levels and formats every program takes (--log-level, --log-format).
const std::vector<std::string>& log_levels();
const std::vector<std::string>& log_formats();

// The man page (roff, section 1) of `app`: its description, synopsis, every
// option, every subcommand with its options and footer (examples), the
// exit status and `environment` (name -> meaning).
std::string man_page(const CLI::App& app, std::string_view version,
                     const std::map<std::string, std::string>& environment = {});

// Shell completion scripts for `app`. An option's value is completed by its
// type name: DIR a folder, FILE, PATH or LIST a file, and any name in
// `words` from its list (e.g. SPEC -> the op names, FORMAT -> the formats).
using CompletionWords = std::map<std::string, std::vector<std::string>>;
std::string bash_completion(const CLI::App& app, const CompletionWords& words = {});
std::string zsh_completion(const CLI::App& app, const CompletionWords& words = {});

}  // namespace imgq::cli
