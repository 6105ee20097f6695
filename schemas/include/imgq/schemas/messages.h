// The messages of the imgq protocol, one struct per message type.
// See ../../../CLIENT-PROTOCOL.md (clients) and ../../../PROTOCOL.md (groups,
// the broker inside): frames, fields, state machines.
//
// Each struct is a msgpack map (MSGPACK_DEFINE_MAP), so a field can be added
// without breaking older peers: unknown keys are ignored, absent optional
// keys keep their defaults. Every message carries the signature "IMGQ", the
// protocol version and its type. Image bytes never go inside msgpack: they
// travel in a frame of their own after the header.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace imgq::proto {

// Liveness (PROTOCOL.md section 6), for both ends: a heartbeat every
// interval when nothing else was sent; a peer silent for kLiveness intervals
// is dead; a group reconnects after a backoff doubling up to the maximum.
inline constexpr std::chrono::milliseconds kHeartbeatInterval{1000};
inline constexpr int kLiveness = 5;
inline constexpr std::chrono::milliseconds kReconnectBackoff{1000};
inline constexpr std::chrono::milliseconds kMaxReconnectBackoff{30'000};
// The longest a submit's `accept_hold_ms` may hold its `accepted` back;
// longer asks are taken as this.
inline constexpr std::chrono::milliseconds kMaxAcceptHold{1000};

inline constexpr const char* kSignature = "IMGQ";
inline constexpr int kVersion = 1;
// The protocol's revision, major.minor, in every pong (`protocol`): a minor
// revision only adds what older peers may ignore (schemas/CLIENT-PROTOCOL.md,
// "Versions"). Absent from brokers before 1.1.
inline constexpr const char* kProtocolRevision = "1.1";

// Job states on the wire (Event::state, StatusReply::state, Result::state).
inline constexpr const char* kQueued = "queued";
inline constexpr const char* kRunning = "running";
inline constexpr const char* kDone = "done";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kCancelled = "cancelled";

#define IMGQ_MESSAGE(type_name)            \
  std::string sig = kSignature;            \
  int ver = kVersion;                      \
  std::string type = type_name;            \
  static constexpr const char* kType = type_name

// Where a finished job spent its time; sent by the group, forwarded to the
// client and used for metrics.
struct JobStats {
  double wait_seconds = 0;    // queued, until dispatched (broker)
  double run_seconds = 0;     // dispatched, until the result came back (broker)
  double decode_seconds = 0;  // the rest as measured by the group's leader
  double scatter_seconds = 0;
  double compute_seconds = 0;
  double gather_seconds = 0;
  double encode_seconds = 0;
  double imbalance = 0;  // slowest rank's compute time over the mean, minus 1
  uint64_t pixels = 0;
  int ranks = 0;
  std::string group;
  MSGPACK_DEFINE_MAP(wait_seconds, run_seconds, decode_seconds, scatter_seconds, compute_seconds,
                     gather_seconds, encode_seconds, imbalance, pixels, ranks, group)
};

// ---- client -> broker ----

struct Submit {  // + frame: the encoded image (none when `path` is set)
  IMGQ_MESSAGE("submit");
  uint64_t req = 0;               // client's correlation id, echoed in replies
  std::vector<std::string> ops;   // op specs, "name:key=value,..."
  int priority = 4;               // 0 (lowest) .. 9 (highest)
  std::string format;             // output format; empty = png
  std::string name;               // file name, for people (events, errors)
  std::string key;                // idempotency key; empty = none
  std::string session;            // 8 hex digits: the first half of the job id
  uint32_t timeout_ms = 0;        // longest run of one attempt; 0 = the broker's --job-timeout
  // Local files: the group reads the image from `path` and writes the result
  // to `output` itself (absolute paths it can see; see PROTOCOL.md).
  std::string path;
  std::string output;
  // The broker may hold this job's `accepted` up to this long (at most
  // kMaxAcceptHold); a `result` sent within it stands for the `accepted`.
  // 0: `accepted` as soon as the job is stored.
  uint32_t accept_hold_ms = 0;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, ops, priority, format, name, key, session, timeout_ms, path, output,
                     accept_hold_ms)
};

struct StatusRequest {
  IMGQ_MESSAGE("status");
  uint64_t req = 0;
  std::string job;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job)
};

struct Cancel {
  IMGQ_MESSAGE("cancel");
  uint64_t req = 0;
  std::string job;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job)
};

struct Fetch {
  IMGQ_MESSAGE("fetch");
  uint64_t req = 0;
  std::string job;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job)
};

// "I have the result of this job": the broker may forget it. No reply. A
// result is kept until acknowledged or its TTL passes (PROTOCOL.md, 10).
struct ResultAck {
  IMGQ_MESSAGE("result_ack");
  uint64_t req = 0;
  std::string job;
  std::vector<std::string> jobs;  // more jobs acknowledged in the same message
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job, jobs)
};

// The op catalogue, so a client in any language can list and check ops
// without imgq's C++ (PROTOCOL.md: `ops`).
struct ParamInfo {
  std::string key;
  std::string type;           // int, number, bool or enum
  std::string default_value;  // as a user would write it; empty: no fixed default (see help)
  std::string help;           // what happens without it, or a note on the default
  double min = 0;             // int and number: inclusive bounds
  double max = 0;
  std::vector<std::string> choices;  // enum: the words; int: the allowed values, when listed
  bool odd = false;                  // int: must be odd
  MSGPACK_DEFINE_MAP(key, type, MSGPACK_NVP("default", default_value), help, min, max, choices, odd)
};

struct OpInfo {
  std::string name;
  std::string summary;
  std::vector<ParamInfo> params;
  MSGPACK_DEFINE_MAP(name, summary, params)
};

struct AliasInfo {
  std::string alias;   // a name kept from the original project
  std::string target;  // the op it stands for
  std::string params;  // what it sets, "key=value,..."
  MSGPACK_DEFINE_MAP(alias, target, params)
};

struct OpsRequest {
  IMGQ_MESSAGE("ops");
  uint64_t req = 0;
  MSGPACK_DEFINE_MAP(sig, ver, type, req)
};

struct OpsReply {
  IMGQ_MESSAGE("ops_reply");
  uint64_t req = 0;
  std::vector<OpInfo> ops;
  std::vector<AliasInfo> aliases;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, ops, aliases)
};

// The caller's jobs, newest first, a page at a time (`imgq jobs`). With
// CURVE a client sees only the jobs its key submitted (an operator key,
// imgq-broker --allow-operators, sees every job); without CURVE, everyone's.
struct ListRequest {
  IMGQ_MESSAGE("list");
  uint64_t req = 0;
  std::string state;   // only jobs in this state (queued, running, done, failed, cancelled); empty: any
  uint32_t limit = 0;  // at most this many (0: 50; more than 1000: 1000)
  std::string before;  // the previous page's `next`; empty: from the newest
  MSGPACK_DEFINE_MAP(sig, ver, type, req, state, limit, before)
};

struct Ping {
  IMGQ_MESSAGE("ping");
  uint64_t req = 0;
  std::string session;  // when set, the pong is also published on this topic
  MSGPACK_DEFINE_MAP(sig, ver, type, req, session)
};

// ---- broker -> client ----

struct Accepted {
  IMGQ_MESSAGE("accepted");
  uint64_t req = 0;
  std::string job;
  uint32_t position = 0;  // 1 = next to run
  bool existing = false;  // the idempotency key named a job already accepted
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job, position, existing)
};

struct Error {
  IMGQ_MESSAGE("error");
  uint64_t req = 0;
  std::string job;           // when the request named one
  int code = 0;              // imgq::StatusCode
  std::string code_name;     // its name, for people and other languages
  std::string message;
  bool retryable = false;    // the same request may succeed later
  uint32_t retry_after_ms = 0;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job, code, code_name, message, retryable, retry_after_ms)
};

struct JobResult {  // + frame: the encoded result, when state == done and no `output`
  IMGQ_MESSAGE("result");
  uint64_t req = 0;  // the submit's req, for a client that sent it
  std::string job;
  std::string state;  // done, failed or cancelled
  int code = 0;
  std::string message;
  std::string format;
  std::string name;
  JobStats stats;
  std::string output;  // a local-files job: where the group wrote the result
  // CRC-32 (zlib's) of the result frame, taken when the broker received it;
  // a client checks it before writing or acknowledging. Nil from brokers
  // before it, and without a frame.
  std::optional<uint32_t> crc32;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job, state, code, message, format, name, stats, output, crc32)
};

struct JobState {
  std::string job;
  std::string state;
  uint32_t position = 0;  // queued: 1 = next
  std::string group;      // running: the group's name
  int done = 0;           // running: stages done
  int total = 0;          // running: stages in all
  int attempts = 0;
  int code = 0;           // failed: why
  std::string message;
  std::string name;
  MSGPACK_DEFINE_MAP(job, state, position, group, done, total, attempts, code, message, name)
};

// The part every broker reply to a client request shares: its `req`.
struct AnyReply {
  IMGQ_MESSAGE("any reply");
  uint64_t req = 0;
  MSGPACK_DEFINE_MAP(sig, ver, type, req)
};

struct StatusReply {
  IMGQ_MESSAGE("status_reply");
  uint64_t req = 0;
  JobState job;
  MSGPACK_DEFINE_MAP(sig, ver, type, req, job)
};

// One worker group, as a pong lists it.
struct GroupInfo {
  std::string name;
  int ranks = 0;
  int slots = 0;          // jobs it takes at once
  uint32_t running = 0;   // jobs it holds now
  double idle_seconds = 0;  // since it last held a job (0 while it holds one)
  MSGPACK_DEFINE_MAP(name, ranks, slots, running, idle_seconds)
};

struct Pong {
  IMGQ_MESSAGE("pong");
  uint64_t req = 0;
  uint32_t groups = 0;
  uint32_t idle = 0;
  uint32_t busy = 0;
  uint32_t ranks = 0;
  uint64_t queued = 0;
  uint64_t running = 0;
  std::string version;
  std::string instance;  // random per broker start: a new value means the broker restarted
  uint64_t max_image_bytes = 0;  // larger submits are refused; 0 = unknown
  bool durable = false;          // accepted jobs and kept results survive a broker restart (a journal)
  // The progress socket as the broker bound it (tcp://0.0.0.0:5557: a
  // wildcard host means the host the client reached the broker at), so a
  // client need not be told it; empty = unknown.
  std::string progress;
  std::vector<GroupInfo> group_list;  // every connected group, by name (absent from brokers before 0.2)
  // The journal's disk as its last write found it: healthy, read_only, full
  // or failing; empty without a journal (and from older brokers).
  std::string journal;
  std::string protocol;  // kProtocolRevision; empty from brokers before 1.1
  MSGPACK_DEFINE_MAP(sig, ver, type, req, groups, idle, busy, ranks, queued, running, version, instance,
                     max_image_bytes, durable, progress, group_list, journal, protocol)
};

// A job as `list` gives it: its state, and when it came and ended.
struct ListedJob {
  JobState job;
  double submitted = 0;  // Unix seconds
  double finished = 0;   // Unix seconds; 0 while it runs or waits
  bool kept = false;     // its result waits at the broker to be fetched and acknowledged
  MSGPACK_DEFINE_MAP(job, submitted, finished, kept)
};

struct ListReply {
  IMGQ_MESSAGE("list_reply");
  uint64_t req = 0;
  std::vector<ListedJob> jobs;  // newest first
  std::string next;             // `before` for the next page; empty: this was the last
  bool every_owner = false;     // the list holds every client's jobs (no CURVE, or an operator key)
  MSGPACK_DEFINE_MAP(sig, ver, type, req, jobs, next, every_owner)
};

// ---- broker -> progress subscribers (PUB; frames: [job id][Event]) ----

struct Event {
  IMGQ_MESSAGE("event");
  JobState job;
  double time = 0;  // seconds since the Unix epoch
  MSGPACK_DEFINE_MAP(sig, ver, type, job, time)
};

// ---- worker group leader -> broker ----

struct Hello {
  IMGQ_MESSAGE("hello");
  std::string name;
  int ranks = 0;
  std::vector<std::string> ops;
  std::string version;
  // How many jobs the group takes at once (absent or 0: one). A leader that
  // runs small images whole, one per rank, asks for one slot per rank.
  int slots = 0;
  // The folders (canonical, absolute) whose files the group reads and writes
  // in local-files jobs (its --allow-paths); absent or empty: none.
  std::vector<std::string> allow_paths;
  MSGPACK_DEFINE_MAP(sig, ver, type, name, ranks, ops, version, slots, allow_paths)
};

struct Heartbeat {
  IMGQ_MESSAGE("heartbeat");
  MSGPACK_DEFINE_MAP(sig, ver, type)
};

struct Progress {
  IMGQ_MESSAGE("progress");
  std::string job;
  int done = 0;
  int total = 0;
  std::string stage;
  MSGPACK_DEFINE_MAP(sig, ver, type, job, done, total, stage)
};

struct Done {  // + frame: the encoded result, when code == 0 and no `output`
  IMGQ_MESSAGE("done");
  std::string job;
  int code = 0;
  std::string message;
  JobStats stats;
  std::string output;  // a local-files job: the file the group wrote
  MSGPACK_DEFINE_MAP(sig, ver, type, job, code, message, stats, output)
};

struct Bye {
  IMGQ_MESSAGE("bye");
  MSGPACK_DEFINE_MAP(sig, ver, type)
};

// ---- broker -> worker group leader ----

struct JobRequest {  // + frame: the encoded image (none when `path` is set)
  IMGQ_MESSAGE("job");
  std::string job;
  std::vector<std::string> ops;
  std::string format;
  std::string name;
  uint32_t timeout_ms = 0;  // the leader stops the job by itself after this long; 0 = never
  std::string path;         // local files: read the image here...
  std::string output;       // ...and write the result here
  MSGPACK_DEFINE_MAP(sig, ver, type, job, ops, format, name, timeout_ms, path, output)
};

struct Abort {  // stop this job at the next stage boundary and report `done`
  IMGQ_MESSAGE("abort");
  std::string job;
  std::string reason;
  MSGPACK_DEFINE_MAP(sig, ver, type, job, reason)
};

struct Disconnect {  // "I do not know you": say hello again
  IMGQ_MESSAGE("disconnect");
  std::string reason;
  MSGPACK_DEFINE_MAP(sig, ver, type, reason)
};

#undef IMGQ_MESSAGE

}  // namespace imgq::proto
