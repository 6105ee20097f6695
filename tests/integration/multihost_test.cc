// The system across hosts: broker, worker groups and client each on a host
// of its own, made with network namespaces (`ip netns`) joined by veth
// links to the broker's host. Every address used exists only inside the
// namespaces this test creates (10.201.N.0/24), and the namespaces are
// deleted at the end. Needs root (CAP_NET_ADMIN); tests run as root.
// Commands enter a namespace with nsenter rather than `ip netns exec`, which
// remounts / and so fails where / is no mount point (a chroot).
//
//         client (10.201.3.2)
//               |
//   g1 ---- broker's host ---- g2        g1: 10.201.1.2, g2: 10.201.2.2
//        (10.201.1.1, .2.1, .3.1)
#include <unistd.h>

#include "integration/durable_fixture.h"

namespace imgq {
namespace {

// A host: a network namespace with one link to the hub.
struct Host {
  std::string ns;         // namespace name
  std::string address;    // its own address
  std::string hub;        // the hub's address on its link
  std::string interface;  // its end of the link
};

class MultiHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root (CAP_NET_ADMIN); the suite runs as root";
    root_ = fs::temp_directory_path() / ("imgq_multihost_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    run_netns_was_mounted_ = run_netns_mounted();
    prefix_ = "imgq" + std::to_string(::getpid());
    hub_ = prefix_ + "-hub";
    namespaces_.push_back(hub_);
    ASSERT_EQ(sh("ip netns add " + hub_), 0);
    ASSERT_EQ(sh(in(hub_, "ip link set lo up")), 0);
    for (int n = 1; n <= 3; ++n) ASSERT_NO_FATAL_FAILURE(hosts_.push_back(add_host(n)));
    // A veth link carries traffic once both ends are up, a moment later
    // (MPI's transport skips an interface that is not up yet).
    for (const Host& h : hosts_) {
      ASSERT_TRUE(eventually([&] { return link_up(h); }, seconds(10))) << h.interface << " of " << h.ns;
    }
    // A rank of one group may not reach the other group's host: the hub
    // routes nothing (forwarding is off in a new namespace).
  }

  void TearDown() override {
    groups_.clear();
    client_.reset();
    broker_.reset();
    for (const std::string& ns : namespaces_) run_shell("ip netns del " + ns + " 2>&1");
    // `ip netns add` makes /run/netns a mount point; undo it when it was
    // not one before and nothing else uses it (a chroot cannot be removed
    // while it stays).
    std::error_code ec;
    if (!run_netns_was_mounted_ && run_netns_mounted() && fs::is_empty("/run/netns", ec)) {
      run_shell("umount /run/netns 2>&1");
    }
    fs::remove_all(root_);
  }

  static bool run_netns_mounted() {
    std::ifstream mounts("/proc/self/mountinfo");
    for (std::string line; std::getline(mounts, line);) {
      if (line.find(" /run/netns ") != std::string::npos) return true;
    }
    return false;
  }

  // `command` (a shell command line) run in namespace `ns`.
  static std::string in(const std::string& ns, const std::string& command) {
    return "nsenter --net=/run/netns/" + ns + " " + command;
  }

  static int sh(const std::string& command) {
    const auto [code, out] = run_shell(command + " 2>&1");
    EXPECT_EQ(code, 0) << command << ": " << out;
    return code;
  }

  // Host `n`: a namespace and a veth link to the hub, 10.201.n.0/24.
  Host add_host(int n) {
    Host host;
    host.ns = prefix_ + "-h" + std::to_string(n);
    host.address = "10.201." + std::to_string(n) + ".2";
    host.hub = "10.201." + std::to_string(n) + ".1";
    host.interface = "link" + std::to_string(n);
    const std::string hub_side = "hub" + std::to_string(n);
    namespaces_.push_back(host.ns);
    EXPECT_EQ(sh("ip netns add " + host.ns), 0);
    // Created in the namespaces directly: no name is ever taken on this host.
    EXPECT_EQ(sh("ip link add " + hub_side + " netns " + hub_ + " type veth peer name " + host.interface +
                 " netns " + host.ns),
              0);
    EXPECT_EQ(sh(in(hub_, "ip addr add " + host.hub + "/24 dev " + hub_side)), 0);
    EXPECT_EQ(sh(in(hub_, "ip link set " + hub_side + " up")), 0);
    EXPECT_EQ(sh(in(host.ns, "ip addr add " + host.address + "/24 dev " + host.interface)), 0);
    EXPECT_EQ(sh(in(host.ns, "ip link set " + host.interface + " up")), 0);
    EXPECT_EQ(sh(in(host.ns, "ip link set lo up")), 0);
    return host;
  }

  static std::vector<std::string> on(const std::string& ns, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"nsenter", "--net=/run/netns/" + ns});
    return argv;
  }

  // The broker on the hub, on every address, on ports it picks.
  void start_broker() {
    broker_ = std::make_unique<Subprocess>(
        on(hub_, {kBin + "/imgq-broker", "--clients", "tcp://0.0.0.0:*", "--workers", "tcp://0.0.0.0:*", "--progress",
                  "tcp://0.0.0.0:*", "--memory-only", "--heartbeat-ms", "200", "--metrics", ""}),
        (root_ / "broker.log").string());
    const BoundEndpoints bound = await_bound_endpoints(*broker_);
    ASSERT_FALSE(bound.clients.empty());
    // tcp://0.0.0.0:PORT: each host reaches it at the hub's address on its link.
    clients_port_ = bound.clients.substr(bound.clients.rfind(':') + 1);
    workers_port_ = bound.workers.substr(bound.workers.rfind(':') + 1);
  }

  std::string logs() const {
    std::string text = "broker: " + broker_->output();
    for (const auto& [name, group] : groups_) text += "\n" + name + ": " + group->output();
    return text;
  }

  // The broker's client endpoint as host `h` reaches it.
  std::string clients_of(const Host& h) const { return "tcp://" + h.hub + ":" + clients_port_; }

  void start_group(const std::string& name, const Host& host, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {IMGQ_MPIEXEC, "-n", "2", kBin + "/imgq-worker", "--broker",
                             "tcp://" + host.hub + ":" + workers_port_, "--name", name, "--heartbeat-ms", "200",
                             // The test reads each job's line; small jobs log theirs at debug.
                             "--log-level", "debug"});
    groups_[name] = std::make_unique<Subprocess>(on(host.ns, argv), (root_ / (name + ".log")).string());
  }

  // A field of `imgq ping --json` run on the client's host (e.g. "groups",
  // "busy"), or -1 if the broker did not answer.
  int pong(const std::string& field) {
    const auto [code, out] =
        run_shell(command_line(on(client().ns, {kBin + "/imgq", "ping", "--json", "--timeout", "2",
                                                "--broker", clients_of(client())})));
    if (code != 0) return -1;
    for (const JsonLine& l : parse_json_lines(out)) return std::stoi(l[field]);
    return -1;
  }
  int groups_seen() { return pong("groups"); }
  void await_groups(int n) {
    ASSERT_TRUE(eventually([&] { return groups_seen() == n; }, seconds(60)))
        << "expected " << n << " group(s)\n" << logs();
  }

  // `imgq submit --json` from the client's host; the progress endpoint is
  // not given: the client learns it from the broker's pong.
  std::vector<std::string> submit(const std::vector<std::string>& ops, const fs::path& out,
                                  const std::vector<std::string>& paths) {
    std::vector<std::string> args = {kBin + "/imgq", "submit", "--json", "--broker", clients_of(client()), "-o",
                                     out.string()};
    for (const std::string& op : ops) args.insert(args.end(), {"--op", op});
    args.insert(args.end(), paths.begin(), paths.end());
    return on(client().ns, args);
  }

  // Every result of `output` (imgq submit --json) done once, each equal to
  // whole-image OpenCV; the groups that made them.
  std::set<std::string> ExpectExactOnce(const std::string& output, const std::vector<std::string>& ops,
                                        const std::vector<fs::path>& sources, const fs::path& out) {
    std::map<std::string, int> results;
    std::set<std::string> groups;
    for (const JsonLine& l : parse_json_lines(output)) {
      if (l["event"] != "result") continue;
      ++results[fs::path(l["file"]).filename().string()];
      EXPECT_EQ(l["state"], "done") << l["file"] << ": " << l["message"];
      groups.insert(l["group"]);
    }
    EXPECT_EQ(results.size(), sources.size()) << output;
    for (const auto& [file, n] : results) EXPECT_EQ(n, 1) << file << " has " << n << " results";
    for (const fs::path& source : sources) {
      EXPECT_TRUE(SameImage(reference_result(ops, source),
                            cv::imread((out / source.filename()).string(), cv::IMREAD_UNCHANGED)))
          << source.filename();
    }
    return groups;
  }

  std::vector<fs::path> make_images(const std::string& folder, int n) {
    std::vector<fs::path> paths;
    fs::create_directories(root_ / folder);
    for (int i = 0; i < n; ++i) {
      const cv::Mat image =
          testing::make_image(37 + 3 * i, 41 + i, i % 3 == 0 ? CV_16U : CV_8U, i % 2 ? 3 : 1, testing::Pattern::kShapes);
      paths.push_back(root_ / folder / ("m" + std::to_string(i) + ".png"));
      EXPECT_TRUE(cv::imwrite(paths.back().string(), image));
    }
    return paths;
  }

  // Lets hosts 1 and 2 reach each other through the hub.
  void route_between_group_hosts() {
    ASSERT_EQ(sh(in(hub_, "sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'")), 0);
    for (int i = 0; i < 2; ++i) {
      const Host& h = group_host(i);
      ASSERT_EQ(sh(in(h.ns, "ip route add default via " + h.hub)), 0);
    }
  }

  static bool link_up(const Host& h) {
    const auto [code, out] = run_shell(in(h.ns, "ip -o link show dev " + h.interface));
    return code == 0 && out.find("state UP") != std::string::npos;
  }

  // Bytes host `h` has received on its link (/proc/net/dev is the reader's
  // namespace's).
  uint64_t received(const Host& h) const {
    const auto [code, out] = run_shell(in(h.ns, "cat /proc/net/dev"));
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::istringstream name(line.substr(0, colon));
      std::string word;
      name >> word;
      if (word != h.interface) continue;
      uint64_t bytes = 0;
      std::istringstream(line.substr(colon + 1)) >> bytes;
      return bytes;
    }
    return 0;
  }

  const Host& group_host(int i) const { return hosts_[static_cast<size_t>(i)]; }  // 0 or 1
  const Host& client() const { return hosts_[2]; }

  fs::path root_;
  bool run_netns_was_mounted_ = false;
  std::string prefix_, hub_;
  std::vector<std::string> namespaces_;
  std::vector<Host> hosts_;
  std::string clients_port_, workers_port_;
  std::unique_ptr<Subprocess> broker_;
  std::unique_ptr<Subprocess> client_;
  std::map<std::string, std::unique_ptr<Subprocess>> groups_;
};

TEST_F(MultiHost, AClientOnItsOwnHostGetsExactResultsFromGroupsOnTwoOtherHosts) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // Both groups hold their first jobs until both have one: each surely works.
  const fs::path gate = root_ / "gate";
  start_group("g1", group_host(0), {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  start_group("g2", group_host(1), {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  ASSERT_NO_FATAL_FAILURE(await_groups(2));
  // The client's host cannot reach the groups' hosts: only the broker's.
  EXPECT_NE(run_shell(in(client().ns, "ip route get " + group_host(0).address) + " 2>&1").first, 0);

  const std::vector<std::string> ops = {"to_8bit", "gaussian_blur:ksize=5", "canny:low=40,high=120"};
  const auto sources = make_images("in", 12);
  client_ = std::make_unique<Subprocess>(submit(ops, root_ / "out", {(root_ / "in").string()}),
                                         (root_ / "client.log").string());
  ASSERT_TRUE(eventually([&] { return pong("busy") == 2; }, seconds(60))) << logs();
  open_gate(gate);
  const auto code = client_->wait(seconds(120));
  ASSERT_TRUE(code.has_value()) << client_->output();
  ASSERT_EQ(*code, 0) << client_->output();
  const auto groups = ExpectExactOnce(client_->output(), ops, sources, root_ / "out");
  EXPECT_EQ(groups, (std::set<std::string>{"g1", "g2"})) << "both hosts' groups worked";
}

TEST_F(MultiHost, AGroupWhoseHostLosesItsLinkHasItsJobRequeuedAndRejoinsWhenTheLinkReturns) {
  ASSERT_NO_FATAL_FAILURE(start_broker());
  const fs::path gate = root_ / "gate";
  start_group("g1", group_host(0), {"IMGQ_FAULT=hold:compute:*:" + gate.string()});
  ASSERT_NO_FATAL_FAILURE(await_groups(1));

  // g1 takes the job and holds it.
  const std::vector<std::string> ops = {"median_blur:ksize=5"};
  const auto first = make_images("first", 1);
  client_ = std::make_unique<Subprocess>(submit(ops, root_ / "out1", {first[0].string()}), (root_ / "c1.log").string());
  ASSERT_TRUE(eventually([&] { return client_->output().find("\"state\":\"running\"") != std::string::npos; },
                         seconds(60)))
      << client_->output();
  start_group("g2", group_host(1));
  ASSERT_NO_FATAL_FAILURE(await_groups(2));

  // g1's host loses its link for 10 s: the broker stops hearing it, requeues
  // its job, and g2 finishes it.
  ASSERT_EQ(sh(in(group_host(0).ns, "ip link set " + group_host(0).interface + " down")), 0);
  const auto down_at = std::chrono::steady_clock::now();
  const auto code = client_->wait(seconds(60));
  ASSERT_TRUE(code.has_value()) << client_->output();
  EXPECT_EQ(*code, 0) << client_->output();
  EXPECT_EQ(ExpectExactOnce(client_->output(), ops, first, root_ / "out1"), std::set<std::string>{"g2"});
  bool requeued = false;
  for (const JsonLine& l : parse_json_lines(client_->output())) {
    requeued = requeued || (l["event"] == "progress" && l["state"] == "queued" && l["attempts"] == "1");
  }
  EXPECT_TRUE(requeued) << "the job went back to the queue after its first attempt\n" << client_->output();
  EXPECT_EQ(groups_seen(), 1) << "the broker forgot g1";

  // Cut off, g1 finishes the job it held; its answer must not count twice.
  open_gate(gate);
  std::this_thread::sleep_until(down_at + seconds(10));  // the outage itself is the scenario: 10 s
  ASSERT_EQ(sh(in(group_host(0).ns, "ip link set " + group_host(0).interface + " up")), 0);
  ASSERT_NO_FATAL_FAILURE(await_groups(2));

  // g1 is back for work: with g2 gone, the next jobs run on g1.
  groups_.at("g2")->signal_group(SIGTERM);
  ASSERT_TRUE(groups_.at("g2")->wait(seconds(30)).has_value());
  ASSERT_NO_FATAL_FAILURE(await_groups(1));
  const auto second = make_images("second", 4);
  const auto [code2, output2] = run_shell(command_line(submit(ops, root_ / "out2", {(root_ / "second").string()})));
  ASSERT_EQ(code2, 0) << output2;
  EXPECT_EQ(ExpectExactOnce(output2, ops, second, root_ / "out2"), std::set<std::string>{"g1"});
}

TEST_F(MultiHost, OneGroupWhoseRanksAreOnTwoHostsRunsStripsAcrossTheLink) {
  ASSERT_NO_FATAL_FAILURE(route_between_group_hosts());
  ASSERT_NO_FATAL_FAILURE(start_broker());
  // MPICH's launcher starts each rank through a command given the host, as
  // it would ssh: here one that enters the namespace of the host's address.
  // UCX is kept to TCP, as between real hosts (these namespaces share one
  // kernel's memory).
  const Host& a = group_host(0);
  const Host& b = group_host(1);
  const fs::path launcher = root_ / "netns-launcher.sh";
  std::ofstream(launcher) << "#!/bin/sh\n"
                             "# MPICH hydra launcher: [-options] HOST COMMAND... runs COMMAND on HOST\n"
                             "while [ \"${1#-}\" != \"$1\" ]; do shift; done\n"
                             "case $1 in\n"
                          << "  " << a.address << ") ns=" << a.ns << " ;;\n"
                          << "  " << b.address << ") ns=" << b.ns << " ;;\n"
                          << "  *) echo \"no host $1\" >&2; exit 1 ;;\n"
                             "esac\n"
                             "shift\n"
                             // A sysfs of the namespace's own (as `ip netns exec` mounts), in a
                             // mount namespace of the rank's own: UCX finds its interfaces there.
                             "exec nsenter --net=/run/netns/$ns unshare --mount --propagation unchanged sh -c \""
                             "mount --make-rslave /sys && mount -t sysfs sysfs /sys && exec $*\"\n";
  fs::permissions(launcher, fs::perms::owner_all);
  // mpiexec itself runs on host a through the same command: it starts the
  // rank of its own host (given as -localhost) directly.
  groups_["span"] = std::make_unique<Subprocess>(
      std::vector<std::string>{launcher.string(), a.address, IMGQ_MPIEXEC, "-genv", "UCX_TLS", "tcp,self", "-launcher", "ssh", "-launcher-exec", launcher.string(),
                "-localhost", a.address, "-hosts", a.address + "," + b.address, "-n", "2", kBin + "/imgq-worker",
                "--broker",
                "tcp://" + a.hub + ":" + workers_port_, "--name", "span", "--heartbeat-ms", "200",
                "--strip-above", "0", "--log-level", "debug"},
      (root_ / "span.log").string());
  ASSERT_NO_FATAL_FAILURE(await_groups(1));

  const std::vector<std::string> ops = {"gaussian_blur:ksize=7", "equalize_hist"};
  std::vector<fs::path> sources;
  fs::create_directories(root_ / "in");
  for (int i = 0; i < 3; ++i) {
    // 8-bit gray and color, of odd sizes: every job in strips over both hosts.
    sources.push_back(root_ / "in" / ("s" + std::to_string(i) + ".png"));
    ASSERT_TRUE(cv::imwrite(sources.back().string(),
                            testing::make_image(301 + 50 * i, 257 + 30 * i, CV_8U, i == 1 ? 1 : 3,
                                                testing::Pattern::kNoise)));
  }
  const uint64_t before = received(b);
  const auto [code, output] = run_shell(command_line(submit(ops, root_ / "out", {(root_ / "in").string()})));
  ASSERT_EQ(code, 0) << output << groups_.at("span")->output();
  EXPECT_EQ(ExpectExactOnce(output, ops, sources, root_ / "out"), std::set<std::string>{"span"});
  // Rank 1's strips crossed b's link: at least a third of the pixels, twice over.
  EXPECT_GT(received(b) - before, 301u * 257 * 3 / 3) << "the strips did not go over the network";
  EXPECT_NE(groups_.at("span")->output().find("strips"), std::string::npos) << groups_.at("span")->output();
}

}  // namespace
}  // namespace imgq
