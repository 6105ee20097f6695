// Whole ZeroMQ messages as vectors of frames, the one way imgq reads and
// writes multipart messages. Reading caps the frames kept, so an untrusted
// peer cannot make us hold a thousand-part message; the excess is drained.
#pragma once

#include <chrono>
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

// zmq::poll that returns 0 (nothing ready) when a signal interrupts it, so
// a SIGTERM or SIGINT handler's flag is seen instead of an exception.
int poll_sockets(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

}  // namespace imgq
