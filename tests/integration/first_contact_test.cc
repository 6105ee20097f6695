// The first minutes of a new user, with the real binaries (docs/cli.md):
// no command writes over a file, every error answers within seconds with
// the next step, Ctrl-C cancels what the run started, the conventions hold
// (--version, "did you mean", exit codes), operators see groups come and go,
// `imgq jobs` lists exactly a client's jobs, and the live line fits the
// terminal, messages on lines of their own.
#include <regex>
#include <sstream>

#include "integration/durable_fixture.h"

namespace imgq {
namespace {

using Bytes = std::map<std::string, std::string>;

// Every file under `dir` (relative path -> bytes).
Bytes snapshot(const fs::path& dir) {
  Bytes files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    files[e.path().lexically_relative(dir).string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

class FirstContact : public Durable {
 protected:
  // A folder of photographs as a user has one: three of OpenCV's samples
  // and a note.
  fs::path photo_folder() {
    const fs::path dir = root_ / "photos";
    fs::create_directories(dir);
    for (const char* name : {"fruits.jpg", "baboon.jpg", "building.jpg"}) {
      fs::copy_file(fs::path(IMGQ_SAMPLE_DATA_DIR) / name, dir / name);
    }
    std::ofstream(dir / "notes.txt") << "not an image\n";
    return dir;
  }
  // `imgq ARGS` run in `cwd` against this broker; exit status and output.
  std::pair<int, std::string> imgq(const std::string& args, const fs::path& cwd = {}) {
    return shell((cwd.empty() ? "" : "cd " + quoted(cwd.string()) + " && ") + kBin + "/imgq " + args + conn() +
                 " 2>&1");
  }
  std::vector<std::string> ids_of(const std::string& json) {
    std::vector<std::string> ids;
    for (const JsonLine& l : parse_json_lines(json)) {
      if (l["event"] == "accepted") ids.push_back(l["job"]);
    }
    return ids;
  }
};

// The most natural first command, run in the photos' own folder, and the
// same with -o pointing at that folder, even with --overwrite: no input is
// touched, results land in ./imgq-out and are exact.
TEST_F(FirstContact, ThePhotoFolderCommandLeavesEveryInputByteIdentical) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("g");
  await_groups(1);
  const fs::path photos = photo_folder();
  const Bytes before = snapshot(photos);
  for (const std::string& args : {std::string("submit --op grayscale fruits.jpg"),
                                  std::string("submit --op grayscale ."), std::string("submit --op grayscale -o . ."),
                                  std::string("submit --op grayscale -o . --overwrite fruits.jpg baboon.jpg")}) {
    const auto [code, out] = imgq(args, photos);
    EXPECT_TRUE(code == 0 || code == 1) << args << "\n" << out;
    Bytes after = snapshot(photos);
    for (const auto& [name, bytes] : before) EXPECT_EQ(after[name], bytes) << name << " changed by: " << args;
  }
  const auto [code, out] = imgq("submit --op grayscale -o . --overwrite fruits.jpg", photos);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("never writes over an input"), std::string::npos) << out;
  for (const char* name : {"fruits.jpg", "baboon.jpg", "building.jpg"}) {
    // A JPEG result is the reference as OpenCV's encoder writes it.
    std::vector<uint8_t> encoded;
    ASSERT_TRUE(cv::imencode(".jpg", expected({"grayscale"}, photos / name), encoded));
    EXPECT_TRUE(SameImage(cv::imdecode(encoded, cv::IMREAD_UNCHANGED),
                          cv::imread((photos / "imgq-out" / name).string(), cv::IMREAD_UNCHANGED)))
        << name;
  }
  EXPECT_FALSE(fs::exists(photos / "imgq-out" / "imgq-out")) << "results taken as inputs";
}

// Another pipeline into the same folder keeps the earlier results (NAME.1.EXT);
// the same run again writes nothing new; --skip-existing sends only what is
// missing.
TEST_F(FirstContact, ARerunNeverReplacesADifferentFileAndSkipExistingResumes) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("g");
  await_groups(1);
  const fs::path in = make_folder("in", 3, 1);
  const fs::path out = root_ / "out";
  ASSERT_EQ(imgq("submit --op invert -o " + out.string() + " " + in.string()).first, 0);
  const Bytes first = snapshot(out);
  ASSERT_EQ(imgq("submit --op grayscale -o " + out.string() + " " + in.string()).first, 0);
  Bytes second = snapshot(out);
  for (const auto& [name, bytes] : first) EXPECT_EQ(second[name], bytes) << name << " was replaced";
  EXPECT_TRUE(second.count("i0.1.png")) << "the other pipeline's result gets its own name";
  ASSERT_EQ(imgq("submit --op invert -o " + out.string() + " " + in.string()).first, 0);
  EXPECT_EQ(snapshot(out).size(), second.size()) << "identical results count as written";

  make_folder("in", 5, 1);  // two more images, i3 and i4
  const auto [code, text] = imgq("submit --json --op invert --skip-existing -o " + out.string() + " " + in.string());
  EXPECT_EQ(code, 0) << text;
  EXPECT_EQ(ids_of(text).size(), 2u) << "only the missing ones are sent:\n" << text;
  EXPECT_TRUE(SameImage(expected({"invert"}, in / "i4.png"), cv::imread((out / "i4.png").string(), cv::IMREAD_UNCHANGED)));
}

// HOST:PORT is an endpoint; what is none is a usage error (exit 2) naming
// the form, from the command line or the environment, in every binary, and
// never a crash.
TEST_F(FirstContact, EndpointsAsPeopleTypeThemAndGarbageIsAUsageError) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string port = clients_.substr(clients_.rfind(':') + 1);
  std::vector<std::string> hosts = {"127.0.0.1:", "tcp://127.0.0.1:"};
  // A name, where this host's resolver knows "localhost" (a bare chroot has
  // no /etc/hosts: then the client says that the name does not resolve).
  if (shell("getent ahostsv4 localhost | grep -q '^127\\.'").first == 0) hosts.push_back("localhost:");
  for (const std::string& host : hosts) {
    const auto [code, out] = shell(kBin + "/imgq ping --broker " + host + port + " 2>&1");
    EXPECT_EQ(code, 0) << host << port << "\n" << out;
  }
  // A name that does not resolve (.invalid never does, RFC 6761) is named.
  const auto [unknown_code, unknown] = shell(kBin + "/imgq ping --broker nosuchhost.invalid:" + port + " 2>&1");
  EXPECT_EQ(unknown_code, 3) << unknown;
  EXPECT_NE(unknown.find("\"nosuchhost.invalid\" does not resolve"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("Check the name"), std::string::npos) << unknown;
  for (const std::string garbage : {"127.0.0.1", "5555", "tcp://", "http://x:1", "a b:1", "x:99999", "[::1", "",
                                     "tcp://*:5555", "::::"}) {
    const std::string g = quoted(garbage);
    std::vector<std::string> commands = {kBin + "/imgq ping --broker " + g,
                                         kBin + "/imgq submit --op invert --broker " + g + " " + root_.string(),
                                         kBin + "/imgq-worker --broker " + g};
    if (!garbage.empty()) {  // empty means "not given" there
      commands.push_back("IMGQ_BROKER=" + g + " " + kBin + "/imgq ping");
      commands.push_back(kBin + "/imgq status --progress " + g + " 0123456789abcdef");
    }
    if (garbage != "tcp://*:5555") {  // where the broker binds, * is every interface
      commands.push_back(kBin + "/imgq-broker --memory-only --metrics '' --clients " + g);
    }
    for (const std::string& cmd : commands) {
      const auto [code, out] = shell(cmd + " 2>&1");
      EXPECT_EQ(code, 2) << cmd << "\n" << out;
      EXPECT_EQ(out.find("terminate called"), std::string::npos) << cmd << "\n" << out;
    }
  }
  const auto [code, out] = shell(kBin + "/imgq-broker --metrics 29475x 2>&1");
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("HOST:PORT"), std::string::npos) << out;
  EXPECT_EQ(shell(kBin + "/imgq-broker --log-level verbose 2>&1").first, 2);
}

// A list on a stdin that is closed, or open for writing only, is a usage
// error at once (it once spun forever: ZeroMQ's eventfd took fd 0). The
// broker is up, so nothing but the stdin check can end the command.
TEST_F(FirstContact, AListOnAClosedOrUnreadableStdinIsAUsageErrorAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const std::string submit = kBin + "/imgq submit --op invert --broker " + clients_ + " -o " +
                             (root_ / "out").string() + " --from-file -";
  for (const auto& [redirect, says] : std::vector<std::pair<std::string, std::string>>{
           {" <&-", "stdin is closed"}, {" 0>/dev/null", "stdin is not open for reading"}}) {
    const auto [code, out] = shell("timeout 20 " + submit + redirect + " 2>&1");
    EXPECT_EQ(code, 2) << redirect << "\n" << out;
    EXPECT_NE(out.find(says), std::string::npos) << out;
    EXPECT_NE(out.find("find DIR -type f | imgq submit"), std::string::npos) << "says what to type: " << out;
  }
  // An empty list on an open stdin is no error: nothing to do.
  const auto [code, out] = shell("timeout 20 " + submit + " </dev/null 2>&1");
  EXPECT_EQ(code, 0) << out;
}

// Nothing listens at the address: every command says so, and what to
// check, within 5 s (exit 3); ingest says so at once and waits.
TEST_F(FirstContact, ABrokerThatIsDownIsReportedByEveryCommandWithinFiveSeconds) {
  const testing::RefusingPort refusing;
  const std::string down = " --broker " + refusing.address();
  const fs::path in = make_folder("in", 1, 1);
  for (const std::string& cmd : {"submit --op invert -o " + (root_ / "out").string() + " " + in.string(),
                                 std::string("ping"), std::string("status 0123456789abcdef"),
                                 std::string("cancel 0123456789abcdef"), std::string("fetch 0123456789abcdef"),
                                 std::string("watch 0123456789abcdef"), std::string("jobs"), std::string("ops")}) {
    const auto started = std::chrono::steady_clock::now();
    const auto [code, out] = shell(kBin + "/imgq " + cmd + down + " 2>&1");
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_EQ(code, 3) << cmd << "\n" << out;
    EXPECT_LT(took, 5.0) << cmd;
    EXPECT_NE(out.find("Is imgq-broker running there?"), std::string::npos) << cmd << "\n" << out;
  }
  EXPECT_FALSE(fs::exists(root_ / "out")) << "a run that wrote nothing left its output folder behind";
  fs::create_directories(root_ / "inbox");
  Subprocess ingest({kBin + "/imgq", "ingest", "--broker", down.substr(down.find(' ', 1) + 1), "--inbox",
                     (root_ / "inbox").string(), "-o", (root_ / "ingested").string(), "--op", "invert"},
                    (root_ / "ingest.log").string());
  EXPECT_TRUE(eventually([&] { return ingest.output().find("Waiting for it") != std::string::npos; }, seconds(5)))
      << ingest.output();
  ingest.signal_group(SIGINT);
  EXPECT_EQ(ingest.wait(seconds(10)), std::optional<int>(0)) << ingest.output();
}

// Ctrl-C cancels this run's unfinished jobs at the broker, queued and
// running; with --detach they go on.
TEST_F(FirstContact, AnInterruptCancelsTheRunsJobsAndDetachLeavesThemRunning) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path gate = root_ / "gate";
  std::ofstream(gate).close();
  start_group("held", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});  // its jobs run and wait
  await_groups(1);
  const fs::path in = make_folder("in", 6, 3);
  for (const bool detach : {false, true}) {
    auto args = submit_args({"invert"}, root_ / (detach ? "out-detached" : "out"), {in.string()});
    if (detach) args.push_back("--detach");
    Subprocess client(args, (root_ / (detach ? "detached.log" : "client.log")).string());
    ASSERT_TRUE(eventually([&] { return ids_of(client.output()).size() == 6; }, seconds(30))) << client.output();
    client.signal_group(SIGINT);
    const auto code = client.wait(seconds(10));
    ASSERT_TRUE(code.has_value()) << "interrupted, it ends at once";
    EXPECT_EQ(*code, 130) << client.output();
    std::string ids;
    for (const std::string& id : ids_of(client.output())) ids += id + " ";
    const auto [status_code, states] = imgq("status --json " + ids);
    ASSERT_EQ(status_code, 0) << states;
    int cancelled = 0, going = 0;
    for (const JsonLine& l : parse_json_lines(states)) {
      cancelled += l["state"] == "cancelled";
      going += l["state"] == "queued" || l["state"] == "running";
    }
    if (detach) {
      EXPECT_EQ(going, 6) << states;
      EXPECT_NE(client.output().find("go on at the broker"), std::string::npos) << client.output();
    } else {
      EXPECT_EQ(cancelled, 6) << states;
      EXPECT_NE(client.output().find("6 job(s) cancelled"), std::string::npos) << client.output();
    }
  }
  open_gate(gate);
}

TEST_F(FirstContact, EveryProgramHasVersionAndDidYouMean) {
  for (const std::string program : {"imgq", "imgq-broker", "imgq-worker"}) {
    const auto [code, out] = shell(kBin + "/" + program + " --version");
    EXPECT_EQ(code, 0) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex("^" + program + " [0-9]+\\.[0-9]+\\.[0-9]+ \\(protocol 1, commit \\S+\\)")))
        << out;
  }
  auto [code, out] = shell(kBin + "/imgq submt x 2>&1");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("did you mean \"submit\""), std::string::npos) << out;
  std::tie(code, out) = shell(kBin + "/imgq submit --windw 3 --op invert x 2>&1");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("did you mean --window"), std::string::npos) << out;
  std::tie(code, out) = shell(kBin + "/imgq-broker --clinets x 2>&1");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("did you mean --clients"), std::string::npos) << out;
  std::tie(code, out) = shell(kBin + "/imgq submit x 2>&1");
  EXPECT_EQ(code, 2) << "no --op is a usage error";
  EXPECT_NE(out.find("--op identity"), std::string::npos) << out;
  std::tie(code, out) = shell(kBin + "/imgq submit --help");
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("Examples:"), std::string::npos) << out;
  EXPECT_NE(out.find("Exit status:"), std::string::npos) << out;
  EXPECT_EQ(out.find(":INT in ["), std::string::npos) << "validator noise:\n" << out;
}

// Operators see groups join and leave, also as JSON lines.
TEST_F(FirstContact, TheBrokersLogNamesGroupsJoiningAndLeavingAlsoAsJson) {
  broker_flags_ = {"--log-format", "json"};
  ASSERT_NO_FATAL_FAILURE(start_broker());
  start_group("joiner");
  await_groups(1);
  ASSERT_TRUE(eventually([&] { return broker_->output().find("group \\\"joiner\\\" joined") != std::string::npos; },
                         seconds(10)))
      << broker_->output();
  EXPECT_TRUE(eventually([&] { return groups_.at("joiner")->output().find("connected to broker") != std::string::npos; },
                         seconds(10)))
      << groups_.at("joiner")->output();
  groups_.at("joiner")->signal_group(SIGTERM);
  EXPECT_TRUE(eventually([&] { return broker_->output().find("group \\\"joiner\\\" left") != std::string::npos; },
                         seconds(10)))
      << broker_->output();
  std::istringstream lines(broker_->output());
  int events = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    EXPECT_TRUE(std::regex_search(line, std::regex(R"(^\{"time":"[0-9T:.-]+Z","level":"\w+","component":"broker","message":)")))
        << line;
    events += line.find("\"fields\":{\"event\":\"group_joined\",\"group\":\"joiner\",\"ranks\":2") != std::string::npos;
  }
  EXPECT_EQ(events, 1) << broker_->output();
}

// `imgq jobs` lists exactly the jobs submitted; under CURVE a client sees
// only its own, an operator key every one.
TEST_F(FirstContact, JobsListsExactlyAClientsJobsAndCurveKeepsThemApart) {
  const fs::path keys = root_ / "keys";
  fs::create_directories(keys);
  for (const char* name : {"broker", "alice", "bob", "carol", "worker"}) {
    ASSERT_EQ(shell(kBin + "/imgq keygen " + (keys / name).string()).first, 0);
  }
  shell("cat " + (keys / "alice.pub").string() + " " + (keys / "bob.pub").string() + " > " +
        (keys / "clients.allow").string());
  shell("cp " + (keys / "carol.pub").string() + " " + (keys / "operators.allow").string());
  shell("cp " + (keys / "worker.pub").string() + " " + (keys / "workers.allow").string());
  broker_flags_ = {"--curve-key", (keys / "broker.key").string(), "--allow-clients", (keys / "clients.allow").string(),
                   "--allow-workers", (keys / "workers.allow").string(), "--allow-operators",
                   (keys / "operators.allow").string()};
  ASSERT_NO_FATAL_FAILURE(start_broker());  // no group: the jobs stay queued
  auto as = [&](const std::string& who) {
    return " --server-key " + (keys / "broker.pub").string() + " --key " + (keys / (who + ".key")).string();
  };
  std::map<std::string, std::set<std::string>> submitted;
  for (const auto& [who, n] : {std::pair<std::string, int>{"alice", 2}, {"bob", 1}}) {
    const fs::path in = make_folder("in-" + who, n, n);
    const auto [code, out] = imgq("submit --no-wait --json --op invert" + as(who) + " " + in.string());
    ASSERT_EQ(code, 0) << out;
    for (const std::string& id : ids_of(out)) submitted[who].insert(id);
    ASSERT_EQ(submitted[who].size(), static_cast<size_t>(n)) << out;
  }
  auto listed = [&](const std::string& who) {
    const auto [code, out] = imgq("jobs -q" + as(who));
    EXPECT_EQ(code, 0) << out;
    std::set<std::string> ids;
    std::istringstream in(out);
    for (std::string id; in >> id;) ids.insert(id);
    return ids;
  };
  EXPECT_EQ(listed("alice"), submitted["alice"]);
  EXPECT_EQ(listed("bob"), submitted["bob"]);
  std::set<std::string> every = submitted["alice"];
  every.insert(submitted["bob"].begin(), submitted["bob"].end());
  EXPECT_EQ(listed("carol"), every) << "an operator key sees every job";
  // Another client's job is no job at all to bob.
  const auto [code, out] = imgq("status " + *submitted["alice"].begin() + as("bob"));
  EXPECT_EQ(code, 1) << out;
}

// An error on a 60-column terminal is wrapped at words, never mid-word; in
// a pipe it stays one line, for grep.
TEST_F(FirstContact, AnErrorOnANarrowTerminalIsWrappedAtWords) {
  const testing::RefusingPort refusing;
  const fs::path typescript = root_ / "tty-error";
  const std::string inner = "stty cols 60 rows 40; exec " + kBin + "/imgq ping --broker " + refusing.address();
  Subprocess client({"script", "-qfec", inner, typescript.string()}, (root_ / "script.log").string());
  ASSERT_TRUE(client.wait(seconds(20)).has_value());
  std::ifstream f(typescript, std::ios::binary);
  const std::string raw(std::istreambuf_iterator<char>(f), {});
  const std::string text = std::regex_replace(raw, std::regex("\x1b\\[[0-9;]*[A-Za-z]|\r"), "");
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.rfind("Script ", 0) != 0) lines.push_back(line);
  }
  ASSERT_GE(lines.size(), 3u) << text;
  EXPECT_EQ(lines[0].rfind("imgq: error: no answer from the broker", 0), 0u) << text;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LT(lines[i].size(), 60u) << lines[i];
    if (i > 0) {
      EXPECT_EQ(lines[i].rfind("  ", 0), 0u) << "a continuation is indented: " << lines[i];
    }
  }
  std::string joined;  // the lines as one text again: a word split in two would show
  for (const std::string& line : lines) joined += (joined.empty() ? "" : " ") + line.substr(line.find_first_not_of(' '));
  EXPECT_NE(joined.find("Is imgq-broker running there? Give its address with --broker HOST:PORT"), std::string::npos)
      << "split mid-word:\n" << text;
  const auto [code, piped] = shell(kBin + "/imgq ping --broker " + refusing.address() + " 2>&1 | cat");
  EXPECT_EQ(std::count(piped.begin(), piped.end(), '\n'), 1) << piped;
}

// The live line driven through a real pseudo-terminal (script(1)) at 60 and
// 200 columns: no line is longer than the terminal, and a warning printed
// while the line is drawn starts on a cleared line.
TEST_F(FirstContact, TheLiveLineFitsTheTerminalAndAWarningGetsALineOfItsOwn) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path gate = root_ / "gate";
  std::ofstream(gate).close();
  start_group("held", {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  await_groups(1);
  const fs::path in = make_folder("in-with-a-rather-long-folder-name-to-fill-the-line", 4, 2);
  for (const int cols : {60, 200}) {
    const fs::path typescript = root_ / ("tty" + std::to_string(cols));
    const std::string inner = "stty cols " + std::to_string(cols) + " rows 40; exec " + kBin + "/imgq submit --op invert -o " +
                              (root_ / ("out" + std::to_string(cols))).string() + " " + in.string() + conn() +
                              " --timeout 30";
    Subprocess client({"script", "-qfec", inner, typescript.string()}, (root_ / "script.log").string());
    auto text = [&] {
      std::ifstream f(typescript, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(f), {});
    };
    ASSERT_TRUE(eventually([&] { return text().find(" done") != std::string::npos; }, seconds(30))) << text();
    // The broker goes silent: the client warns while its line is drawn.
    broker_->signal_group(SIGSTOP);
    const bool warned = eventually([&] { return text().find("no answer from the broker") != std::string::npos; },
                                   seconds(15));
    broker_->signal_group(SIGCONT);
    EXPECT_TRUE(warned) << text();
    open_gate(gate);
    EXPECT_EQ(client.wait(seconds(60)), std::optional<int>(0)) << text();
    std::string out = std::regex_replace(text(), std::regex("\x1b\\[[0-9;]*[A-Za-z]"), "");
    size_t longest = 0;
    std::string line;
    for (char ch : out + "\n") {
      if (ch == '\r' || ch == '\n') {
        // script(1)'s own first and last lines are not the program's.
        if (line.rfind("Script started", 0) != 0 && line.rfind("Script done", 0) != 0) {
          longest = std::max(longest, line.size());
          EXPECT_LE(line.size(), static_cast<size_t>(cols)) << "too long for " << cols << " columns: " << line;
        }
        line.clear();
      } else {
        line += ch;
      }
    }
    EXPECT_GT(longest, 20u);
    // On the raw bytes (colour codes and all): the warning's line starts on
    // a line the live line was cleared from, or on a fresh one.
    const std::string raw = text();
    const size_t warning = raw.find("warning:");
    ASSERT_NE(warning, std::string::npos) << raw;
    const size_t start = raw.rfind("imgq: ", warning);
    ASSERT_NE(start, std::string::npos) << raw;
    EXPECT_TRUE((start >= 5 && raw.compare(start - 5, 5, "\r\x1b[2K") == 0) || raw[start - 1] == '\n')
        << "the warning is glued to the live line: " << raw.substr(start > 80 ? start - 80 : 0, 160);
    std::ofstream(gate, std::ios::trunc).close();
  }
}

}  // namespace
}  // namespace imgq
