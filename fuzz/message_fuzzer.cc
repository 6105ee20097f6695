// libFuzzer target: the protocol decoder, as the broker runs it on every
// frame from a peer. Any input must give a Status, never a crash, a leak or
// undefined behaviour, and never an allocation beyond the decoder's limits.
#include <cstddef>
#include <cstdint>
#include <string>

#include "imgq/schemas/codec.h"

namespace {

template <typename T>
void as(const imgq::proto::Header& header) {
  (void)header.as<T>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace imgq::proto;
  const std::string frame(reinterpret_cast<const char*>(data), size);
  auto header = decode_header(frame);
  if (!header.ok()) return 0;
  // Whatever the type claims, every message struct must cope with the map.
  as<Submit>(*header), as<StatusRequest>(*header), as<Cancel>(*header), as<Fetch>(*header);
  as<Ping>(*header), as<Accepted>(*header), as<Error>(*header), as<JobResult>(*header);
  as<StatusReply>(*header), as<Pong>(*header), as<Event>(*header), as<Hello>(*header);
  as<Heartbeat>(*header), as<Progress>(*header), as<Done>(*header), as<Bye>(*header);
  as<JobRequest>(*header), as<Abort>(*header), as<Disconnect>(*header), as<AnyReply>(*header);
  return 0;
}
