// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Optional multi-node support over Redis (needs hiredis; CMake target ssepp::redis). Not part of
// <ssepp/ssepp.hpp>.
//
//   RedisStreamBus   a Redis stream per channel, pool, user, node and `all`, spread over shards
//                    by a consistent hash; each node reads only the streams its clients need;
//                    ids are the node's position per shard, so a client resumes on any node.
//   RedisPubSubBridge  delivers JSON messages that any service PUBLISHes on a Redis channel.
#pragma once

// The parts, each usable alone:
//   redis/options.hpp        RedisOptions, RedisStats
//   redis/codec.hpp          stream and position ids, the shard hash, entries, Pub/Sub JSON
//                            (no hiredis needed)
//   redis/connection.hpp     the hiredis connection (detail)
//   redis/reader.hpp         the reader/backoff loop (detail)
//   redis/send_pipe.hpp      pipelined sends from many threads (detail)
//   redis/stream_bus.hpp     RedisStreamBus, cluster_client_id_base
//   redis/pubsub_bridge.hpp  RedisPubSubBridge
#include <ssepp/redis/codec.hpp>
#include <ssepp/redis/options.hpp>
#include <ssepp/redis/pubsub_bridge.hpp>
#include <ssepp/redis/stream_bus.hpp>
