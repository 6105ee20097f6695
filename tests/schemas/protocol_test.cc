// Round trips, golden bytes and hostile input for the protocol codec
// (schemas/PROTOCOL.md). A golden vector that changes is a wire change:
// bump the version or make the change additive, then update the vector.
#include <functional>
#include <random>

#include <map>

#include <gtest/gtest.h>

#include "imgq/schemas/codec.h"

namespace imgq::proto {
namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

struct Golden {
  const char* type;
  std::function<std::string()> encode_sample;
  const char* hex;
};

std::vector<Golden> goldens() {
  return {
      {"submit", [] { Submit m; m.req = 7; m.ops = {"invert"}; m.priority = 5; m.format = "png"; m.name = "a.jpg"; m.key = "k"; m.accept_hold_ms = 200; return encode(m); },
       "8ea3736967a4494d4751a376657201a474797065a67375626d6974a372657107a36f707391a6696e76657274a87072696f7269747905a6666f726d6174a3706e67a46e616d65a5612e6a7067a36b6579a16ba773657373696f6ea0aa74696d656f75745f6d7300a470617468a0a66f7574707574a0ae6163636570745f686f6c645f6d73ccc8"},
      {"status", [] { StatusRequest m; m.req = 1; m.job = "00000000000000ff"; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a6737461747573a372657101a36a6f62b030303030303030303030303030306666"},
      {"cancel", [] { Cancel m; m.req = 2; m.job = "00000000000000ff"; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a663616e63656ca372657102a36a6f62b030303030303030303030303030306666"},
      {"fetch", [] { Fetch m; m.req = 3; m.job = "00000000000000ff"; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a56665746368a372657103a36a6f62b030303030303030303030303030306666"},
      {"result_ack", [] { ResultAck m; m.req = 5; m.job = "00000000000000ff"; m.jobs = {"00000000000000fe"}; return encode(m); },
       "86a3736967a4494d4751a376657201a474797065aa726573756c745f61636ba372657105a36a6f62b030303030303030303030303030306666a46a6f627391b030303030303030303030303030306665"},
      {"ops", [] { OpsRequest m; m.req = 6; return encode(m); },
       "84a3736967a4494d4751a376657201a474797065a36f7073a372657106"},
      {"ops_reply", [] { OpsReply m; m.req = 6; ParamInfo p; p.key = "ksize"; p.type = "int"; p.default_value = "5"; p.min = 1; p.max = 255; p.odd = true; m.ops = {{"gaussian_blur", "Gaussian blur", {p}}}; m.aliases = {{"blur", "gaussian_blur", ""}}; return encode(m); },
       "86a3736967a4494d4751a376657201a474797065a96f70735f7265706c79a372657106a36f70739183a46e616d65ad676175737369616e5f626c7572a773756d6d617279ad476175737369616e20626c7572a6706172616d739188a36b6579a56b73697a65a474797065a3696e74a764656661756c74a135a468656c70a0a36d696e01a36d6178ccffa763686f6963657390a36f6464c3a7616c69617365739183a5616c696173a4626c7572a6746172676574ad676175737369616e5f626c7572a6706172616d73a0"},
      {"ping", [] { Ping m; m.req = 4; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a470696e67a372657104a773657373696f6ea0"},
      {"accepted", [] { Accepted m; m.req = 7; m.job = "00000000000000ff"; m.position = 3; return encode(m); },
       "87a3736967a4494d4751a376657201a474797065a86163636570746564a372657107a36a6f62b030303030303030303030303030306666a8706f736974696f6e03a86578697374696e67c2"},
      {"error", [] { Error m; m.req = 7; m.code = 5; m.code_name = "resource_exhausted"; m.message = "full"; m.retryable = true; m.retry_after_ms = 1000; return encode(m); },
       "8aa3736967a4494d4751a376657201a474797065a56572726f72a372657107a36a6f62a0a4636f646505a9636f64655f6e616d65b27265736f757263655f657868617573746564a76d657373616765a466756c6ca9726574727961626c65c3ae72657472795f61667465725f6d73cd03e8"},
      // 1.1: another key's session (with CURVE) is refused.
      {"error", [] { Error m; m.req = 1; m.code = 12; m.code_name = "permission_denied"; m.message = "ping: session a11ce000 is another client's; choose another (8 random lower-case hex digits)"; return encode(m); },
       "8aa3736967a4494d4751a376657201a474797065a56572726f72a372657101a36a6f62a0a4636f64650ca9636f64655f6e616d65b17065726d697373696f6e5f64656e696564a76d657373616765d95b70696e673a2073657373696f6e20613131636530303020697320616e6f7468657220636c69656e7427733b2063686f6f736520616e6f746865722028382072616e646f6d206c6f7765722d63617365206865782064696769747329a9726574727961626c65c2ae72657472795f61667465725f6d7300"},
      {"result", [] { JobResult m; m.req = 7; m.job = "00000000000000ff"; m.state = "done"; m.format = "png"; m.stats.pixels = 100; m.stats.ranks = 2; m.stats.group = "g"; m.crc32 = 0x89abcdef; return encode(m); },
       "8da3736967a4494d4751a376657201a474797065a6726573756c74a372657107a36a6f62b030303030303030303030303030306666a57374617465a4646f6e65a4636f646500a76d657373616765a0a6666f726d6174a3706e67a46e616d65a0a573746174738bac776169745f7365636f6e647300ab72756e5f7365636f6e647300ae6465636f64655f7365636f6e647300af736361747465725f7365636f6e647300af636f6d707574655f7365636f6e647300ae6761746865725f7365636f6e647300ae656e636f64655f7365636f6e647300a9696d62616c616e636500a6706978656c7364a572616e6b7302a567726f7570a167a66f7574707574a0a56372633332ce89abcdef"},
      {"status_reply", [] { StatusReply m; m.req = 1; m.job.job = "00000000000000ff"; m.job.state = "queued"; m.job.position = 2; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065ac7374617475735f7265706c79a372657101a36a6f628aa36a6f62b030303030303030303030303030306666a57374617465a6717565756564a8706f736974696f6e02a567726f7570a0a4646f6e6500a5746f74616c00a8617474656d70747300a4636f646500a76d657373616765a0a46e616d65a0"},
      {"pong", [] { Pong m; m.req = 4; m.groups = 2; m.idle = 1; m.busy = 1; m.ranks = 4; m.queued = 9; m.running = 1; m.version = "0.1.0"; m.progress = "tcp://0.0.0.0:5557"; m.group_list = {{"g", 2, 3, 1, 0}}; m.journal = "full"; m.protocol = "1.1"; return encode(m); },
       "de0012a3736967a4494d4751a376657201a474797065a4706f6e67a372657104a667726f75707302a469646c6501a46275737901a572616e6b7304a671756575656409a772756e6e696e6701a776657273696f6ea5302e312e30a8696e7374616e6365a0af6d61785f696d6167655f627974657300a764757261626c65c2a870726f6772657373b27463703a2f2f302e302e302e303a35353537aa67726f75705f6c6973749185a46e616d65a167a572616e6b7302a5736c6f747303a772756e6e696e6701ac69646c655f7365636f6e647300a76a6f75726e616ca466756c6ca870726f746f636f6ca3312e31"},
      {"list", [] { ListRequest m; m.req = 8; m.state = "failed"; m.limit = 20; m.before = "1.5/00000000000000ff"; return encode(m); },
       "87a3736967a4494d4751a376657201a474797065a46c697374a372657108a57374617465a66661696c6564a56c696d697414a66265666f7265b4312e352f30303030303030303030303030306666"},
      {"list_reply", [] { ListReply m; m.req = 8; ListedJob j; j.job.job = "00000000000000ff"; j.job.state = "done"; j.submitted = 1.5; j.finished = 2.5; j.kept = true; m.jobs = {j}; m.next = "1.5/00000000000000ff"; m.every_owner = true; return encode(m); },
       "87a3736967a4494d4751a376657201a474797065aa6c6973745f7265706c79a372657108a46a6f62739184a36a6f628aa36a6f62b030303030303030303030303030306666a57374617465a4646f6e65a8706f736974696f6e00a567726f7570a0a4646f6e6500a5746f74616c00a8617474656d70747300a4636f646500a76d657373616765a0a46e616d65a0a97375626d6974746564cb3ff8000000000000a866696e6973686564cb4004000000000000a46b657074c3a46e657874b4312e352f30303030303030303030303030306666ab65766572795f6f776e6572c3"},
      {"event", [] { Event m; m.job.job = "00000000000000ff"; m.job.state = "running"; m.job.group = "g"; m.job.done = 1; m.job.total = 3; m.time = 1.5; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a56576656e74a36a6f628aa36a6f62b030303030303030303030303030306666a57374617465a772756e6e696e67a8706f736974696f6e00a567726f7570a167a4646f6e6501a5746f74616c03a8617474656d70747300a4636f646500a76d657373616765a0a46e616d65a0a474696d65cb3ff8000000000000"},
      {"hello", [] { Hello m; m.name = "g"; m.ranks = 2; m.ops = {"canny"}; m.version = "0.1.0"; m.slots = 2; m.allow_paths = {"/data"}; return encode(m); },
       "89a3736967a4494d4751a376657201a474797065a568656c6c6fa46e616d65a167a572616e6b7302a36f707391a563616e6e79a776657273696f6ea5302e312e30a5736c6f747302ab616c6c6f775f706174687391a52f64617461"},
      {"heartbeat", [] { return encode(Heartbeat{}); },
       "83a3736967a4494d4751a376657201a474797065a9686561727462656174"},
      {"progress", [] { Progress m; m.job = "00000000000000ff"; m.done = 1; m.total = 2; m.stage = "compute"; return encode(m); },
       "87a3736967a4494d4751a376657201a474797065a870726f6772657373a36a6f62b030303030303030303030303030306666a4646f6e6501a5746f74616c02a57374616765a7636f6d70757465"},
      {"done", [] { Done m; m.job = "00000000000000ff"; m.code = 0; m.stats.compute_seconds = 0.25; return encode(m); },
       "88a3736967a4494d4751a376657201a474797065a4646f6e65a36a6f62b030303030303030303030303030306666a4636f646500a76d657373616765a0a573746174738bac776169745f7365636f6e647300ab72756e5f7365636f6e647300ae6465636f64655f7365636f6e647300af736361747465725f7365636f6e647300af636f6d707574655f7365636f6e6473cb3fd0000000000000ae6761746865725f7365636f6e647300ae656e636f64655f7365636f6e647300a9696d62616c616e636500a6706978656c7300a572616e6b7300a567726f7570a0a66f7574707574a0"},
      {"bye", [] { return encode(Bye{}); },
       "83a3736967a4494d4751a376657201a474797065a3627965"},
      {"job", [] { JobRequest m; m.job = "00000000000000ff"; m.ops = {"invert"}; m.format = "png"; m.name = "a.jpg"; return encode(m); },
       "8aa3736967a4494d4751a376657201a474797065a36a6f62a36a6f62b030303030303030303030303030306666a36f707391a6696e76657274a6666f726d6174a3706e67a46e616d65a5612e6a7067aa74696d656f75745f6d7300a470617468a0a66f7574707574a0"},
      {"abort", [] { Abort m; m.job = "00000000000000ff"; m.reason = "cancelled"; return encode(m); },
       "85a3736967a4494d4751a376657201a474797065a561626f7274a36a6f62b030303030303030303030303030306666a6726561736f6ea963616e63656c6c6564"},
      {"disconnect", [] { Disconnect m; m.reason = "who are you"; return encode(m); },
       "84a3736967a4494d4751a376657201a474797065aa646973636f6e6e656374a6726561736f6eab77686f2061726520796f75"},
  };
}

TEST(Protocol, GoldenBytes) {
  for (const Golden& g : goldens()) {
    const std::string bytes = g.encode_sample();
    EXPECT_EQ(hex(bytes), g.hex) << "the wire form of \"" << g.type << "\" changed";
    auto header = decode_header(bytes);
    ASSERT_TRUE(header.ok()) << g.type << ": " << header.status().ToString();
    EXPECT_EQ(header->type(), g.type);
  }
}

TEST(Protocol, RoundTripsEveryField) {
  Submit s;
  s.req = 1ull << 60;
  s.ops = {"grayscale", "canny:low=50"};
  s.priority = 9;
  s.format = "tif";
  s.name = "sub/ä.png";
  s.key = "idem";
  s.accept_hold_ms = 250;
  auto back = decode_header(encode(s))->as<Submit>({"req", "ops"});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->req, s.req);
  EXPECT_EQ(back->ops, s.ops);
  EXPECT_EQ(back->priority, 9);
  EXPECT_EQ(back->format, "tif");
  EXPECT_EQ(back->name, s.name);
  EXPECT_EQ(back->key, "idem");
  EXPECT_EQ(back->accept_hold_ms, 250u);

  Done d;
  d.job = "abc";
  d.code = 3;
  d.message = "nope";
  d.stats.scatter_seconds = 0.5;
  d.stats.pixels = 123456789;
  auto dback = decode_header(encode(d))->as<Done>();
  ASSERT_TRUE(dback.ok());
  EXPECT_EQ(dback->stats.pixels, 123456789u);
  EXPECT_EQ(dback->stats.scatter_seconds, 0.5);
  EXPECT_EQ(dback->message, "nope");
}

TEST(Protocol, UnknownKeysAreIgnoredAndMissingOnesDefault) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5);
  pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
  pk.pack(std::string("ver")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("ping"));
  pk.pack(std::string("req")); pk.pack(42);
  pk.pack(std::string("future_field")); pk.pack(std::vector<int>{1, 2});
  auto ping = decode_header(std::string(buf.data(), buf.size()))->as<Ping>({"req"});
  ASSERT_TRUE(ping.ok()) << ping.status().ToString();
  EXPECT_EQ(ping->req, 42u);
  auto status = decode_header(std::string(buf.data(), buf.size()))->as<StatusRequest>({"req", "job"});
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.status().message().find("required field \"job\" is missing"), std::string::npos);
}

std::string packed(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& f) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

TEST(Protocol, HostileHeadersAreRefusedNotTrusted) {
  struct Case {
    std::string what;
    std::string bytes;
    std::string expected;
  };
  const std::string ping = encode(Ping{});
  std::vector<Case> cases = {
      {"empty", "", "empty header"},
      {"garbage", "\xc1\xc1\xc1", "not valid msgpack"},
      {"not a map", packed([](auto& pk) { pk.pack(std::vector<int>{1, 2}); }), "not a msgpack map"},
      {"trailing bytes", ping + "zz", "2 trailing bytes"},
      {"truncated", ping.substr(0, ping.size() - 3), "not valid msgpack"},
      {"huge declared string", std::string("\x81\xdb\xff\xff\xff\xf0", 6), "not valid msgpack"},
      {"huge declared array", std::string("\x81\xa1x\xdd\x7f\xff\xff\xff", 8), "not valid msgpack"},
      {"deep nesting", std::string(40, '\x91') + '\x01', "not valid msgpack"},
      {"too big", std::string(kMaxHeaderBytes + 1, '\x01'), "larger than"},
      {"wrong signature", packed([](auto& pk) {
         pk.pack_map(3);
         pk.pack(std::string("sig")); pk.pack(std::string("MDPC"));
         pk.pack(std::string("ver")); pk.pack(1);
         pk.pack(std::string("type")); pk.pack(std::string("ping"));
       }), "signature"},
      {"wrong version", packed([](auto& pk) {
         pk.pack_map(3);
         pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
         pk.pack(std::string("ver")); pk.pack(2);
         pk.pack(std::string("type")); pk.pack(std::string("ping"));
       }), "protocol version 2 is not supported"},
      {"no type", packed([](auto& pk) {
         pk.pack_map(2);
         pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
         pk.pack(std::string("ver")); pk.pack(1);
       }), "missing message type"},
  };
  for (const Case& c : cases) {
    auto h = decode_header(c.bytes);
    ASSERT_FALSE(h.ok()) << c.what;
    EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(h.status().message().find(c.expected), std::string::npos)
        << c.what << ": " << h.status().message();
  }
}

TEST(Protocol, WrongFieldTypesAreErrorsNotCrashes) {
  const std::string bytes = packed([](auto& pk) {
    pk.pack_map(5);
    pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
    pk.pack(std::string("ver")); pk.pack(1);
    pk.pack(std::string("type")); pk.pack(std::string("submit"));
    pk.pack(std::string("req")); pk.pack(std::string("seven"));
    pk.pack(std::string("ops")); pk.pack(3);
  });
  auto submit = decode_header(bytes)->as<Submit>({"req", "ops"});
  ASSERT_FALSE(submit.ok());
  // The first field that does not convert is named, with what came instead.
  EXPECT_NE(submit.status().message().find("submit: field \"req\" has the wrong type (got a str"),
            std::string::npos)
      << submit.status().message();
  // A version that is no integer is said to be one of the wrong type, not missing.
  const std::string string_ver = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
    pk.pack(std::string("ver")); pk.pack(std::string("1"));
    pk.pack(std::string("type")); pk.pack(std::string("ping"));
  });
  auto header = decode_header(string_ver);
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("\"ver\" must be an unsigned integer (1), got a str"), std::string::npos)
      << header.status().message();
}

// Each error names the field and what came: `type` as bin is not
// "missing", an array names its entry, an integer of the right type but
// too large is out of range, not "the wrong type".
TEST(Protocol, ErrorsNameTheFieldTheEntryAndWhatCame) {
  auto submit_with = [](auto&& field) {
    return packed([&](auto& pk) {
      pk.pack_map(5);
      pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
      pk.pack(std::string("ver")); pk.pack(1);
      pk.pack(std::string("type")); pk.pack(std::string("submit"));
      pk.pack(std::string("req")); pk.pack(8);
      field(pk);
    });
  };
  auto message = [](const std::string& bytes) {
    auto header = decode_header(bytes);
    if (!header.ok()) return header.status().message();
    auto submit = header->as<Submit>({"req"});
    return submit.ok() ? std::string("decoded") : submit.status().message();
  };
  const std::string bin_type = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
    pk.pack(std::string("ver")); pk.pack(1);
    pk.pack(std::string("type")); pk.pack_bin(6); pk.pack_bin_body("submit", 6);
  });
  EXPECT_EQ(message(bin_type), "message type \"type\" must be a str, got bin (strings must be msgpack str)");
  const std::string ops = message(submit_with([](auto& pk) {
    pk.pack(std::string("ops"));
    pk.pack_array(2);
    pk.pack(std::string("invert"));
    pk.pack(7);
  }));
  EXPECT_NE(ops.find("field \"ops\" entry 1 has the wrong type (got an unsigned integer"), std::string::npos) << ops;
  const std::string timeout = message(submit_with([](auto& pk) {
    pk.pack(std::string("timeout_ms"));
    pk.pack(uint64_t{1} << 32);
  }));
  EXPECT_NE(timeout.find("field \"timeout_ms\" is out of range (got 4294967296"), std::string::npos) << timeout;
  const std::string priority = message(submit_with([](auto& pk) {
    pk.pack(std::string("priority"));
    pk.pack(std::string("high"));
  }));
  EXPECT_NE(priority.find("field \"priority\" has the wrong type (got a str"), std::string::npos) << priority;
}

TEST(Protocol, AnUndecodableRequestStillYieldsItsReqAndJob) {
  const std::string wrong_version = packed([](auto& pk) {
    pk.pack_map(5);
    pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
    pk.pack(std::string("ver")); pk.pack(9);
    pk.pack(std::string("type")); pk.pack(std::string("status"));
    pk.pack(std::string("req")); pk.pack(41);
    pk.pack(std::string("job")); pk.pack(std::string("00000000000000ff"));
  });
  EXPECT_FALSE(decode_header(wrong_version).ok());
  const RequestIds ids = peek_request_ids(wrong_version);
  EXPECT_EQ(ids.req, 41u);
  EXPECT_EQ(ids.job, "00000000000000ff");
  // Not a map, not msgpack, a job that is no job id: nothing to echo.
  EXPECT_EQ(peek_request_ids("\xc1").req, 0u);
  EXPECT_EQ(peek_request_ids(encode(Ping{})).req, 0u);
  const std::string odd_job = packed([](auto& pk) {
    pk.pack_map(2);
    pk.pack(std::string("req")); pk.pack(3);
    pk.pack(std::string("job")); pk.pack(std::string("../../etc"));
  });
  EXPECT_EQ(peek_request_ids(odd_job).req, 3u);
  EXPECT_EQ(peek_request_ids(odd_job).job, "");
}

// Section 7: `req` is echoed whenever it can be read, also from a header
// that breaks a decoder limit of section 2 (read in place, without
// building the header): each of these is refused, and still answered
// with its `req` and `job`.
TEST(Protocol, AHeaderBreakingADecoderLimitStillYieldsItsReqAndJob) {
  auto with = [](auto&& more, uint32_t extra = 1) {
    return packed([&](auto& pk) {
      pk.pack_map(4 + extra);
      pk.pack(std::string("req")); pk.pack(77);
      pk.pack(std::string("job")); pk.pack(std::string("00000000000000ab"));
      pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
      pk.pack(std::string("type")); pk.pack(std::string("status"));
      more(pk);
    });
  };
  std::map<std::string, std::string> headers;
  headers["a 16,385-byte string"] = with([](auto& pk) { pk.pack(std::string("name")); pk.pack(std::string(16385, 'x')); });
  headers["a 70 KB header"] = with([](auto& pk) {
    pk.pack(std::string("a")); pk.pack(std::string(14000, 'x'));
    pk.pack(std::string("b")); pk.pack(std::string(14000, 'x'));
    pk.pack(std::string("c")); pk.pack(std::string(14000, 'x'));
    pk.pack(std::string("d")); pk.pack(std::string(14000, 'x'));
    pk.pack(std::string("e")); pk.pack(std::string(14000, 'x'));
  }, 5);
  headers["an array of 1,025"] = with([](auto& pk) {
    pk.pack(std::string("ops"));
    pk.pack_array(1025);
    for (int i = 0; i < 1025; ++i) pk.pack(std::string("invert"));
  });
  headers["a map of 65"] = with([](auto& pk) {
    pk.pack(std::string("m"));
    pk.pack_map(65);
    for (int i = 0; i < 65; ++i) pk.pack(std::to_string(i)), pk.pack(i);
  });
  headers["depth 7"] = with([](auto& pk) {
    pk.pack(std::string("deep"));
    for (int i = 0; i < 7; ++i) pk.pack_array(1);
    pk.pack(1);
  });
  headers["an extension type"] = with([](auto& pk) {
    pk.pack(std::string("x"));
    pk.pack_ext(1, 5);
    pk.pack_ext_body("\x01", 1);
  });
  for (const auto& [what, bytes] : headers) {
    EXPECT_FALSE(decode_header(bytes).ok()) << what << " decoded";
    const RequestIds ids = peek_request_ids(bytes);
    EXPECT_EQ(ids.req, 77u) << what;
    EXPECT_EQ(ids.job, "00000000000000ab") << what;
  }
  EXPECT_GT(headers["a 70 KB header"].size(), kMaxHeaderBytes);
}

// Damaged headers never crash the decoder, and every refusal is an
// invalid_argument that says something; both outcomes are exercised.
TEST(Protocol, RandomBytesNeverCrashTheDecoder) {
  std::mt19937 rng(1234);
  const std::string seed = encode(Submit{});
  int decoded = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = seed;
    for (int k = 0; k < 1 + i % 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (i % 3 == 0) bytes.resize(rng() % bytes.size());
    auto h = decode_header(bytes);
    Status status = h.status();
    if (h.ok()) status = h->as<Submit>({"req", "ops"}).status();
    if (status.ok()) {
      ++decoded;
      continue;
    }
    ++refused;
    ASSERT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    ASSERT_FALSE(status.message().empty());
  }
  EXPECT_GT(decoded, 100) << "the damage never left a header readable: the fuzz tests refusals only";
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace imgq::proto
