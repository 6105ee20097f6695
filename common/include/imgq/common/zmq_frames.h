// Whole ZeroMQ messages as vectors of frames, the one way imgq reads and
// writes multipart messages. Reading caps the frames kept, so an untrusted
// peer cannot make us hold a thousand-part message; the excess is drained.
#pragma once

#include <string>
#include <vector>

#include <zmq.hpp>

namespace imgq {

using Frames = std::vector<std::string>;

// Reads one whole message, keeping at most `max_frames` frames (the rest is
// read and dropped; `truncated` says so). False when `dontwait` and nothing
// is waiting.
bool recv_frames(zmq::socket_t& socket, Frames& frames, size_t max_frames, bool dontwait,
                 bool* truncated = nullptr);

// Sends `frames` as one message. Throws zmq::error_t as cppzmq does.
void send_frames(zmq::socket_t& socket, const Frames& frames);

}  // namespace imgq
