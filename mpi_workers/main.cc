// imgq-worker: one MPI worker group. Every rank runs this; rank 0 leads.
//   mpiexec -n N imgq-worker --broker tcp://HOST:5556 [--name NAME]        (serve a broker)
//   mpiexec -n N imgq-worker --input FILE_OR_DIR... --op SPEC... --out DIR  (standalone)
//   imgq-worker --list-ops
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <mpi.h>
#include <spdlog/spdlog.h>

#include "imgq/common/batch_paths.h"
#include "imgq/common/cli.h"
#include "imgq/common/memory.h"
#include "imgq/common/logging.h"
#include "imgq/common/version.h"
#include "imgq/schemas/messages.h"
#include "imgq/mpi_workers/engine.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/standalone.h"
#include "imgq/mpi_workers/whole_jobs.h"
#include "imgq/mpi_workers/worker_service.h"
#include "imgq/schemas/op_catalog.h"

namespace {

std::atomic<bool> g_stop{false};

// Every rank ignores the signal but notes it: the leader finishes its job and
// releases the others, so mpiexec's forwarding of SIGTERM/SIGINT is a clean stop.
void on_signal(int) { g_stop = true; }

std::string default_name() {
  char host[256] = "host";
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(::getpid());
}

struct Options {
  std::string broker;
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> ops;
  std::string out_dir;
  std::string format;
  std::string log_level = "info";
  std::string log_format = "text";
  bool list_ops = false;
  bool man = false;
  uint64_t max_pixels = imgq::kDefaultMaxPixels;
  int heartbeat_ms = static_cast<int>(imgq::proto::kHeartbeatInterval.count());
  uint64_t strip_above = imgq::workers::kDefaultStripAbove;
  std::vector<std::string> allow_paths;
  std::string server_key, key;
};

// Every rank parses the same command line and so reaches the same verdict;
// only rank 0 speaks. Returns -1 to go on, else the exit status.
int parse(int argc, char** argv, bool leader, Options& o, imgq::schemas::Pipeline& pipeline) {
  namespace cli = imgq::cli;
  CLI::App app{"imgq-worker: an MPI worker group of imgq (run it under mpiexec; rank 0 leads)", "imgq-worker"};
  app.add_option("--broker", o.broker, "serve this broker's workers endpoint: HOST:PORT (the broker's --workers)")
      ->type_name("HOST:PORT");
  app.add_option("--name", o.name, "the group's name, in the broker's logs, metrics and imgq ping (default: HOST-PID)")
      ->type_name("NAME");
  app.add_option("--input,-i", o.inputs, "standalone: image files or folders (folders are walked recursively)")
      ->type_name("PATH");
  app.add_option("--op", o.ops, "an op as name[:key=value,...]; repeat for a pipeline (see --list-ops)")
      ->type_name("SPEC")->allow_extra_args(false);
  app.add_option("--out,-o", o.out_dir, "standalone: folder for the results")->type_name("DIR");
  app.add_option("--format", o.format, "standalone: output format (" + imgq::output_formats_text() +
                                           "); default: " + imgq::default_output_rule())
      ->type_name("FORMAT");
  app.add_option("--max-pixels", o.max_pixels,
                 "largest image decoded, in pixels, read from its header first; 0 = no limit")
      ->type_name("N")->capture_default_str();
  app.add_option("--strip-above", o.strip_above,
                 "images of more pixels run in strips over every rank; smaller ones run whole, one per rank, "
                 "several at once (0 = always strips, one job at a time)")
      ->type_name("N")->capture_default_str();
  app.add_option("--allow-paths", o.allow_paths,
                 "a folder under which local-files jobs (imgq submit --local) may read images and write "
                 "results; repeat for several. The broker sends such jobs only to groups whose folders hold their files")
      ->type_name("DIR")->allow_extra_args(false);
  app.add_option("--heartbeat-ms", o.heartbeat_ms, "heartbeat interval with the broker (match the broker's)")
      ->type_name("MS")->capture_default_str()->check(cli::range(10, 60'000));
  app.add_option("--server-key", o.server_key, "CURVE: the broker's public key file (.pub)")->type_name("FILE");
  app.add_option("--key", o.key, "CURVE: this group's key file (.key, from imgq keygen)")->type_name("FILE");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off")
      ->type_name("LEVEL")->capture_default_str()->check(CLI::IsMember(cli::log_levels()).description(""));
  app.add_option("--log-format", o.log_format, "text, or json: one object a line for a log pipeline")
      ->type_name("FORMAT")->capture_default_str()->check(CLI::IsMember(cli::log_formats()).description(""));
  app.add_flag("--list-ops", o.list_ops, "print the ops, their parameters and defaults, and exit");
  app.add_flag("--help-man", o.man, "print the man page")->group("");
  app.set_version_flag("--version", imgq::version_line("imgq-worker", imgq::proto::kVersion));
  app.footer(
      "Examples:\n"
      "  mpiexec -n 4 imgq-worker --broker 127.0.0.1:5556 --name gpu-box-1     # serve a broker\n"
      "  mpiexec -n 4 imgq-worker -i photos/ --op grayscale -o results/        # standalone, no broker\n"
      "  imgq-worker --list-ops\n" +
      cli::exit_status_text() + "\n");
  if (auto code = cli::parse(app, argc, argv, leader)) return *code;
  auto usage_error = [&](const std::string& message) {
    if (leader) std::cerr << "imgq-worker: error: " << message << "\n";
    return 2;
  };
  if (o.man) {
    if (leader) std::cout << cli::man_page(app, imgq::version());
    return 0;
  }
  if (o.list_ops) {
    if (leader) std::cout << imgq::schemas::format_op_table();
    return 0;
  }
  if (!o.broker.empty()) {
    if (!o.inputs.empty()) return usage_error("give either --broker or --input, not both");
    auto endpoint = cli::parse_endpoint(o.broker, cli::EndpointUse::kConnect, "--broker");
    if (!endpoint.ok()) return usage_error(endpoint.status().message());
    o.broker = *endpoint;
    if (o.name.empty()) o.name = default_name();
    return -1;
  }
  if (o.inputs.empty()) return usage_error("nothing to do: give --broker URL or --input FILE_OR_DIR... (see --help)");
  if (o.out_dir.empty()) return usage_error("--out DIR is required with --input");
  if (!o.format.empty() && !imgq::is_output_format(o.format)) {
    return usage_error("--format " + o.format + " is not one of " + imgq::output_formats_text());
  }
  auto parsed = imgq::schemas::parse_pipeline(o.ops);
  if (!parsed.ok()) return usage_error(parsed.status().message());
  pipeline = std::move(parsed).value();
  return -1;
}

int run(int argc, char** argv) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Options options;
  imgq::schemas::Pipeline pipeline;
  if (int code = parse(argc, argv, rank == 0, options, pipeline); code >= 0) return code;
  imgq::init_logging("worker." + std::to_string(rank), options.log_level, options.log_format);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  imgq::workers::Engine engine(MPI_COMM_WORLD);
  if (!engine.is_leader()) {
    // Between the leader's strip runs, small images come whole, one at a time.
    engine.serve([&] { return imgq::workers::serve_whole_job(engine.comm()); });
    return 0;
  }
  if (!options.broker.empty()) {
    // Every rank read the same files; only the leader uses the keys.
    auto curve = imgq::load_curve_options(options.server_key, options.key);
    if (!curve.ok()) {
      std::cerr << "imgq-worker: error: " << curve.status().message() << "\n";
      return 2;
    }
    std::vector<std::filesystem::path> roots;
    for (const std::string& dir : options.allow_paths) {
      std::error_code ec;
      const auto root = std::filesystem::canonical(dir, ec);
      if (ec || !std::filesystem::is_directory(root)) {
        std::cerr << "imgq-worker: error: --allow-paths " << dir << ": not a folder\n";
        return 2;
      }
      roots.push_back(root);
    }
    imgq::workers::serve_broker(engine,
                                {.broker = options.broker,
                                 .name = options.name,
                                 .max_pixels = options.max_pixels,
                                 .strip_above = options.strip_above,
                                 .heartbeat = std::chrono::milliseconds(options.heartbeat_ms),
                                 .curve = *curve,
                                 .allow_paths = roots},
                                g_stop);
    return 0;
  }
  const auto plan =
      imgq::plan_batch(options.inputs, options.out_dir, options.format, imgq::schemas::makes_edge_map(pipeline));
  const auto& items = plan.items;
  const auto summary = imgq::workers::run_batch(engine, pipeline, items, std::cerr,
                                                {.max_pixels = options.max_pixels, .strip_above = options.strip_above});
  spdlog::info("{} image(s): {} succeeded, {} failed; {:.1f} megapixels in {:.2f} s on {} rank(s)",
               items.size(), summary.succeeded, summary.failed, summary.megapixels,
               summary.seconds, engine.size());
  return summary.failed == 0 ? 0 : 1;
}

}  // namespace

// Asks only for text (--help, --version, the man page, the ops): answered
// without starting MPI, so it works anywhere, even where MPI cannot start.
bool text_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "--version" || arg == "--help-man" || arg == "--list-ops") return true;
  }
  return false;
}

int main(int argc, char** argv) {
  imgq::keep_freed_image_memory();
  return imgq::cli::guarded("imgq-worker", [&] {
    if (text_only(argc, argv)) {
      Options options;
      imgq::schemas::Pipeline pipeline;
      const int code = parse(argc, argv, /*leader=*/true, options, pipeline);
      return code >= 0 ? code : 2;
    }
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int code = run(argc, argv);
    // Every rank leaves with the leader's verdict, so mpiexec reports it as is.
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return code;
  });
}
