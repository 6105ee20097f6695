#include "imgq/client_cli/reporter.h"

#include "imgq/client_cli/client.h"

#include <sstream>

#include <gtest/gtest.h>

namespace imgq::client {
namespace {

TEST(ProgressEndpoint, TheAnnouncedOneWithTheBrokersHostForAWildcard) {
  EXPECT_EQ(progress_endpoint_from("tcp://10.0.0.5:6000", "tcp://0.0.0.0:6002"), "tcp://10.0.0.5:6002");
  EXPECT_EQ(progress_endpoint_from("tcp://broker.lan:5555", "tcp://*:5557"), "tcp://broker.lan:5557");
  EXPECT_EQ(progress_endpoint_from("tcp://10.0.0.5:6000", "tcp://10.0.0.7:7000"), "tcp://10.0.0.7:7000");
  // A broker that announces nothing: its host, port 5557.
  EXPECT_EQ(progress_endpoint_from("tcp://10.0.0.5:6000", ""), "tcp://10.0.0.5:5557");
}

TEST(FitColumns, CutsAtTheWidthAndNeverInsideACharacter) {
  EXPECT_EQ(fit_columns("abcdef", 4), "abcd");
  EXPECT_EQ(fit_columns("abc", 10), "abc");
  // "é" is two bytes, one column.
  EXPECT_EQ(fit_columns("\xc3\xa9\xc3\xa9\xc3\xa9", 2), "\xc3\xa9\xc3\xa9");
  EXPECT_EQ(fit_columns("", 0), "");
}

// Not a terminal here, so 80 columns: every drawn line fits in 79, however
// long the running files' names.
TEST(TerminalReporter, TheLiveLineNeverWrapsAndShowsNamesNotPaths) {
  std::ostringstream out, err;
  auto reporter = make_reporter(ReportMode::kTerminal, out, err, "imgq ingest");
  proto::JobState running;
  running.state = proto::kRunning;
  for (int i = 0; i < 6; ++i) {
    reporter->event({"job" + std::to_string(i), "/very/long/folder/name/that/goes/on/image_number_" +
                                                   std::to_string(i) + ".png", "out.png"}, running);
  }
  Tally tally;
  tally.done = 123456;
  tally.in_flight = 16;
  tally.waiting = 98765;
  reporter->tick(tally);
  const std::string text = err.str();
  ASSERT_NE(text.find("imgq ingest: 123456 done, 16 in flight, 98765 waiting"), std::string::npos) << text;
  EXPECT_EQ(text.find("/very/long"), std::string::npos) << text;
  const std::string line = text.substr(text.rfind("\x1b[2K") + 4);
  EXPECT_LE(line.size(), 79u) << line;
  // Whole-image jobs have no stages: no "0/0".
  EXPECT_EQ(text.find("0/0"), std::string::npos) << text;
}

TEST(ErrorLine, NamesTheFileOnce) {
  EXPECT_EQ(error_line("a.png", "a.png: truncated"), "a.png: error: truncated");
  EXPECT_EQ(error_line("a.png", "truncated"), "a.png: error: truncated");
  EXPECT_EQ(error_line("a.png", "b.png: x"), "a.png: error: b.png: x");
}

TEST(PlainReporter, SecondsAreRoundedAndTheSummaryCounts) {
  std::ostringstream out, err;
  auto reporter = make_reporter(ReportMode::kPlain, out, err);
  proto::JobStats stats;
  stats.group = "g";
  stats.run_seconds = 0.0117875;
  reporter->succeeded({"j", "in.png", "out/in.png"}, stats);
  EXPECT_EQ(out.str(), "done in.png -> out/in.png (g, 0.012 s)\n");
  Tally tally;
  tally.done = 3;
  tally.failed = 1;
  tally.total = 4;
  reporter->finish(tally, 2.5);
  EXPECT_EQ(err.str(), "imgq: 3 of 4 done, 1 failed in 2.500 s\n");
}

}  // namespace
}  // namespace imgq::client
