// compress.hpp: Accept-Encoding negotiation, the per-stream Compressor (sync flush per batch,
// release and continue, end), the bounded Decompressor; checked against zlib's own inflate,
// `gzip -d` and Node's zlib where present, and through the parser on the conformance cases.
#include <ssepp/compress.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/parser.hpp>

#include "conformance/cases.hpp"
#include "conformance/event_log.hpp"
#include "support/catch.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

using ssepp::Compressor;
using ssepp::CompressorOptions;
using ssepp::Decompressor;
using ssepp::Encoding;
using ssepp::Format;

namespace {

/// zlib's own inflate over the whole body: what any client does. windowBits 15+16 reads gzip,
/// 15 reads the zlib format. `complete` says whether the stream end (and checked trailer) came.
struct Inflated {
  std::string bytes;
  bool ok = true;
  bool complete = false;
};
Inflated zlib_inflate(std::string_view in, int window_bits) {
  Inflated r;
  z_stream s{};
  if (inflateInit2(&s, window_bits) != Z_OK) {
    r.ok = false;
    return r;
  }
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  char buf[4096];
  for (;;) {
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof buf;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    r.bytes.append(buf, sizeof buf - s.avail_out);
    if (rc == Z_STREAM_END) {
      r.complete = true;
      break;
    }
    if (rc == Z_BUF_ERROR && s.avail_in == 0) break;
    if (rc != Z_OK) {
      r.ok = false;
      break;
    }
  }
  inflateEnd(&s);
  return r;
}

int window_for(Encoding e) { return e == Encoding::gzip ? 15 + 16 : 15; }

/// Our decompressor over `in` cut at the given offsets; the output chunks as they came.
struct Decoded {
  std::vector<std::string> chunks;
  std::string bytes;
  std::error_code error;
};
Decoded decode_cuts(std::string_view in, const std::vector<std::size_t>& cuts,
                    Format format = Format::auto_detect, ssepp::DecompressorLimits limits = {}) {
  Decompressor d(format, limits);
  Decoded out;
  std::size_t from = 0;
  auto feed = [&](std::size_t to) {
    std::string_view piece = in.substr(from, to - from);
    from = to;
    for (;;) {
      std::string chunk;
      auto r = d.decompress_to(chunk, piece);
      if (!r) {
        out.error = r.error();
        return;
      }
      if (!chunk.empty()) {
        out.bytes += chunk;
        out.chunks.push_back(std::move(chunk));
      }
      piece.remove_prefix(r->consumed);
      if (!r->more && piece.empty()) return;
    }
  };
  for (std::size_t c : cuts) {
    if (out.error) break;
    feed(c);
  }
  if (!out.error) feed(in.size());
  return out;
}

std::vector<std::size_t> every_byte(std::size_t n) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < n; ++i) cuts.push_back(i);
  return cuts;
}

/// Compresses `pieces` one batch each, then ends the stream.
std::string compress_all(Encoding e, const std::vector<std::string>& pieces,
                         CompressorOptions opts = {}) {
  Compressor c(e, opts);
  std::string out;
  for (const auto& p : pieces) REQUIRE(c.compress_to(out, p));
  REQUIRE(c.end_to(out));
  return out;
}

bool have_program(const char* name) {
  std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string temp_path(const char* tag) {
  return "/tmp/ssepp-compress-" + std::to_string(::getpid()) + "-" + tag;
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// A random event stream (valid events, comments, retries) as separate frames.
std::vector<std::string> random_frames(std::mt19937& rng, std::size_t count) {
  std::vector<std::string> frames;
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz{}\":,0123456789 \n\r\t.ABCDEFGHIJKLM";
  std::uniform_int_distribution<int> kind(0, 9), len(0, 120);
  std::uniform_int_distribution<std::size_t> ch(0, sizeof alphabet - 2);
  for (std::size_t i = 0; i < count; ++i) {
    int k = kind(rng);
    if (k == 0) {
      frames.push_back(ssepp::encode_comment("keep-alive"));
      continue;
    }
    if (k == 1) {
      frames.push_back(ssepp::encode_retry(std::chrono::milliseconds(len(rng) * 10)));
      continue;
    }
    std::string data;
    int n = len(rng);
    for (int j = 0; j < n; ++j) data += alphabet[ch(rng)];
    ssepp::Event ev;
    ev.with_data(data);
    if (k < 5) ev.with_type("update");
    if (k < 7) ev.with_id(std::to_string(i));
    frames.push_back(ssepp::encode(ev));
  }
  return frames;
}

}  // namespace

// ---- negotiation -----------------------------------------------------------------------------

TEST_CASE("compress: Accept-Encoding negotiation") {
  struct Row {
    const char* header;
    Encoding want;
  };
  const Row rows[] = {
      {"", Encoding::identity},  // absent
      {"gzip", Encoding::gzip},
      {"GZip", Encoding::gzip},
      {"x-gzip", Encoding::gzip},
      {"deflate", Encoding::deflate},
      {"gzip, deflate, br", Encoding::gzip},  // what browsers send
      {"deflate, gzip", Encoding::gzip},      // tie: gzip preferred
      {"gzip;q=0.5, deflate", Encoding::deflate},
      {"gzip;q=0.5, deflate;q=0.6", Encoding::deflate},
      {"gzip;q=1.0, deflate;q=1", Encoding::gzip},
      {"gzip ; q=0.8", Encoding::gzip},
      {"gzip;Q=0.8", Encoding::gzip},
      {"gzip;q=0", Encoding::identity},
      {"gzip;q=0.000", Encoding::identity},
      {"gzip;q=0, deflate;q=0", Encoding::identity},
      {"identity", Encoding::identity},
      {"identity;q=1, *;q=0", Encoding::identity},
      {"identity;q=0", Encoding::identity},  // nothing better to offer: plain
      {"br", Encoding::identity},
      {"br, zstd", Encoding::identity},
      {"*", Encoding::gzip},
      {"*;q=0.5", Encoding::gzip},
      {"*;q=0", Encoding::identity},
      {"gzip;q=0, *", Encoding::deflate},  // gzip refused, deflate through the wildcard
      {"deflate;q=0, *", Encoding::gzip},
      {"br;q=1, *;q=0.1", Encoding::gzip},
      {" , ,gzip,,", Encoding::gzip},  // empty list elements are allowed
      {"gzip;level=9", Encoding::gzip},  // unknown parameters are ignored
      // Malformed: no compression, never a throw.
      {"gzip;q=2", Encoding::identity},
      {"gzip;q=1.5", Encoding::identity},
      {"gzip;q=0.1234", Encoding::identity},
      {"gzip;q=", Encoding::identity},
      {"gzip;q", Encoding::identity},
      {"gzip;", Encoding::identity},
      {"gzip;q=abc", Encoding::identity},
      {"gzip;q=-1", Encoding::identity},
      {"gzip q=1", Encoding::identity},
      {"gzip;q=\"1\"", Encoding::identity},
      {"gz/ip", Encoding::identity},
      {";q=1", Encoding::identity},
      {"gzip\x01", Encoding::identity},
      {"\xff\xfe", Encoding::identity},
      {"gzip\r\n", Encoding::identity},
  };
  for (const Row& r : rows) {
    INFO("Accept-Encoding: " << sselog::quote(r.header));
    CHECK(ssepp::negotiate_encoding(r.header) == r.want);
  }
  ssepp::NegotiateOptions only_gzip;
  only_gzip.deflate = false;
  CHECK(ssepp::negotiate_encoding("deflate", only_gzip) == Encoding::identity);
  CHECK(ssepp::negotiate_encoding("deflate, gzip;q=0.1", only_gzip) == Encoding::gzip);
  ssepp::NegotiateOptions none;
  none.gzip = none.deflate = false;
  CHECK(ssepp::negotiate_encoding("gzip, deflate", none) == Encoding::identity);
  static_assert(ssepp::negotiate_encoding("gzip") == Encoding::gzip, "usable at compile time");
}

TEST_CASE("compress: response headers") {
  auto gz = ssepp::compression_headers(Encoding::gzip);
  CHECK(gz.find("Content-Encoding") == std::optional<std::string_view>("gzip"));
  CHECK(gz.find("Vary") == std::optional<std::string_view>("Accept-Encoding"));
  auto plain = ssepp::compression_headers(Encoding::identity);
  CHECK_FALSE(plain.find("Content-Encoding"));
  CHECK(plain.find("Vary") == std::optional<std::string_view>("Accept-Encoding"));
  auto all = ssepp::response_headers(11, Encoding::deflate);
  CHECK(all.find("Content-Type") == std::optional<std::string_view>(ssepp::event_stream_content_type));
  CHECK(all.find("Content-Encoding") == std::optional<std::string_view>("deflate"));
  CHECK(all.size() == ssepp::response_headers(11).size() + 2);
}

// ---- compressor ------------------------------------------------------------------------------

TEST_CASE("compress: every batch decodes at once, nothing held back (zlib inflate)") {
  for (Encoding e : {Encoding::gzip, Encoding::deflate}) {
    INFO("encoding " << ssepp::encoding_name(e));
    Compressor c(e);
    z_stream s{};
    REQUIRE(inflateInit2(&s, window_for(e)) == Z_OK);
    std::string sent;
    std::vector<ssepp::Frame> batch;
    for (int i = 0; i < 50; ++i) {
      batch.clear();
      for (int j = 0; j <= i % 4; ++j)
        batch.push_back(ssepp::Frame::from_event(
            ssepp::Event{}.with_id(std::to_string(i)).with_data("{\"tick\":" + std::to_string(j) + "}")));
      std::string wire;
      auto n = c.compress_to(wire, batch);
      REQUIRE(n);
      CHECK(*n == wire.size());
      // Ends in a sync flush: the empty stored block 00 00 FF FF.
      REQUIRE(wire.size() >= 4);
      CHECK(wire.substr(wire.size() - 4) == std::string("\0\0\xff\xff", 4));
      std::string expect;
      for (const auto& f : batch) expect += f.view();
      sent += expect;
      // The client inflates just these bytes and gets exactly the batch.
      std::string got(expect.size() + 64, '\0');
      s.next_in = reinterpret_cast<Bytef*>(wire.data());
      s.avail_in = static_cast<uInt>(wire.size());
      s.next_out = reinterpret_cast<Bytef*>(got.data());
      s.avail_out = static_cast<uInt>(got.size());
      CHECK(inflate(&s, Z_SYNC_FLUSH) == Z_OK);
      CHECK(s.avail_in == 0);
      got.resize(got.size() - s.avail_out);
      CHECK(got == expect);
    }
    std::string tail;
    REQUIRE(c.end_to(tail));
    std::string last(16, '\0');
    s.next_in = reinterpret_cast<Bytef*>(tail.data());
    s.avail_in = static_cast<uInt>(tail.size());
    s.next_out = reinterpret_cast<Bytef*>(last.data());
    s.avail_out = static_cast<uInt>(last.size());
    CHECK(inflate(&s, Z_FINISH) == Z_STREAM_END);  // trailer checked: CRC-32 / Adler-32, length
    CHECK(s.avail_out == last.size());
    CHECK(s.total_out == sent.size());
    inflateEnd(&s);
    CHECK(c.stats().bytes_in == sent.size());
    CHECK(c.stats().batches == 50);
  }
}

TEST_CASE("compress: round trips, batch and per event, through zlib and our decompressor") {
  std::mt19937 rng(7);
  auto frames = random_frames(rng, 300);
  std::string plain;
  for (auto& f : frames) plain += f;
  for (Encoding e : {Encoding::gzip, Encoding::deflate}) {
    INFO("encoding " << ssepp::encoding_name(e));
    std::string per_event = compress_all(e, frames);
    std::string one_batch;
    {
      Compressor c(e);
      REQUIRE(c.compress_to(one_batch, frames));
      REQUIRE(c.end_to(one_batch));
    }
    for (const std::string* wire : {&per_event, &one_batch}) {
      auto z = zlib_inflate(*wire, window_for(e));
      CHECK(z.ok);
      CHECK(z.complete);
      CHECK(z.bytes == plain);
      auto ours = decode_cuts(*wire, {});
      CHECK_FALSE(ours.error);
      CHECK(ours.bytes == plain);
      auto given = decode_cuts(*wire, {}, e == Encoding::gzip ? Format::gzip : Format::zlib);
      CHECK(given.bytes == plain);
    }
    CHECK(one_batch.size() < per_event.size());
    CHECK(per_event.size() < plain.size());
  }
}

TEST_CASE("compress: release and continue is one stream for zlib, gzip -d and Node") {
  std::mt19937 rng(11);
  auto frames = random_frames(rng, 200);
  for (Encoding e : {Encoding::gzip, Encoding::deflate}) {
    INFO("encoding " << ssepp::encoding_name(e));
    for (std::size_t dict : {std::size_t{0}, std::size_t{1024}, std::size_t{4096}}) {
      INFO("idle_dictionary " << dict);
      CompressorOptions o;
      o.idle_dictionary = dict;
      Compressor c(e, o);
      std::string wire, plain;
      for (std::size_t i = 0; i < frames.size(); ++i) {
        REQUIRE(c.compress_to(wire, frames[i]));
        plain += frames[i];
        if (i % 3 == 0) {
          c.release();
          CHECK_FALSE(c.active());
          CHECK(c.stats().zlib_bytes == 0);
          CHECK(c.memory() <= dict);
        }
      }
      REQUIRE(c.end_to(wire));
      CHECK(c.stats().releases == (frames.size() + 2) / 3);
      auto z = zlib_inflate(wire, window_for(e));
      CHECK(z.ok);
      CHECK(z.complete);
      CHECK(z.bytes == plain);
      CHECK(decode_cuts(wire, {}).bytes == plain);
      if (dict == 1024 && !have_program("gzip")) WARN("gzip not found: gzip -d check skipped");
      if (dict == 1024 && !have_program("node")) WARN("node not found: Node zlib check skipped");
      if (e == Encoding::gzip && dict == 1024 && have_program("gzip")) {
        const std::string in = temp_path("in.gz"), out = temp_path("out");
        write_file(in, wire);
        CHECK(std::system(("gzip -dc < " + in + " > " + out).c_str()) == 0);
        CHECK(read_file(out) == plain);
        std::remove(in.c_str());
        std::remove(out.c_str());
      }
      if (dict == 1024 && have_program("node")) {
        const std::string in = temp_path("in.z"), out = temp_path("out.node");
        write_file(in, wire);
        const char* fn = e == Encoding::gzip ? "gunzipSync" : "inflateSync";
        const std::string cmd = std::string("node -e \"const z=require('zlib'),f=require('fs');") +
                                "f.writeFileSync(process.argv[2],z." + fn +
                                "(f.readFileSync(process.argv[1])))\" " + in + " " + out;
        CHECK(std::system(cmd.c_str()) == 0);
        CHECK(read_file(out) == plain);
        std::remove(in.c_str());
        std::remove(out.c_str());
      }
    }
  }
}

TEST_CASE("compress: the kept history still compresses the next batch") {
  const std::string ev = ssepp::encode(
      ssepp::Event{}.with_type("price").with_data(R"({"symbol":"AAPL","price":187.45,"change":0.12})"));
  CompressorOptions keep;
  keep.release_after_batch = true;
  CompressorOptions forget = keep;
  forget.idle_dictionary = 0;
  Compressor a(Encoding::gzip, keep), b(Encoding::gzip, forget);
  std::string wa, wb;
  REQUIRE(a.compress_to(wa, ev));
  REQUIRE(b.compress_to(wb, ev));
  std::size_t a0 = wa.size(), b0 = wb.size();
  REQUIRE(a.compress_to(wa, ev));
  REQUIRE(b.compress_to(wb, ev));
  CHECK(wa.size() - a0 < (wb.size() - b0) / 2);  // a repeat found in the kept history
  CHECK_FALSE(a.active());
  REQUIRE(a.end_to(wa));
  REQUIRE(b.end_to(wb));
  CHECK(zlib_inflate(wa, 31).bytes == ev + ev);
  CHECK(zlib_inflate(wb, 31).bytes == ev + ev);
}

TEST_CASE("compress: memory per active and per idle stream, counted through zlib's hooks") {
  const std::string ev = ssepp::encode(ssepp::Event{}.with_id("1").with_data(std::string(300, 'x')));
  Compressor c(Encoding::gzip);
  CHECK(c.memory() == 0);  // nothing before the first batch
  std::string out;
  for (int i = 0; i < 4; ++i) REQUIRE(c.compress_to(out, ev));  // more history than is kept
  CHECK(c.active());
  const std::size_t active = c.memory() + sizeof(Compressor);
  INFO("active stream: " << active << " bytes");
  CHECK(active <= 32 * 1024);
  CHECK(c.stats().zlib_bytes > 16 * 1024);  // the counter sees zlib's allocations
  // Idle: the first check sees a batch since the last one, the second gives the state back.
  CHECK_FALSE(c.release_idle());
  CHECK(c.active());
  CHECK(c.release_idle());
  CHECK_FALSE(c.active());
  const std::size_t idle = c.memory() + sizeof(Compressor);
  CHECK(idle <= 2 * 1024);
  CHECK(c.stats().dictionary_bytes == c.options().idle_dictionary);
  // zlib's defaults would hold ~260 KB: the counter measures that too.
  CompressorOptions big;
  big.window_bits = 15;
  big.mem_level = 8;
  Compressor d(Encoding::gzip, big);
  REQUIRE(d.compress_to(out, ev));
  CHECK(d.memory() > 256 * 1024);
  // Auto release: memory only while compressing.
  CompressorOptions stateless;
  stateless.release_after_batch = true;
  Compressor s(Encoding::deflate, stateless);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(s.compress_to(out, ev));
    CHECK_FALSE(s.active());
    CHECK(s.memory() <= stateless.idle_dictionary);
  }
}

TEST_CASE("compress: end, identity and closed streams") {
  // An empty stream ends as a valid empty gzip / zlib body.
  for (Encoding e : {Encoding::gzip, Encoding::deflate}) {
    Compressor c(e);
    auto body = c.end();
    REQUIRE(body);
    auto z = zlib_inflate(*body, window_for(e));
    CHECK(z.complete);
    CHECK(z.bytes.empty());
    CHECK(c.end().error() == ssepp::errc::closed);
    std::string out;
    CHECK(c.compress_to(out, std::string_view("data: x\n\n")).error() == ssepp::errc::closed);
    CHECK(out.empty());
  }
  // An empty batch writes nothing, not even the header.
  {
    Compressor c(Encoding::gzip);
    std::string out;
    CHECK(c.compress_to(out, std::vector<std::string>{}).value() == 0);
    CHECK(c.compress_to(out, std::string_view()).value() == 0);
    CHECK(out.empty());
    CHECK_FALSE(c.active());
    const std::size_t n = c.compress_to(out, std::vector<std::string>{"", "data: x\n\n"}).value();
    CHECK(n == out.size());
    REQUIRE(c.end_to(out));
    CHECK(zlib_inflate(out, 31).bytes == "data: x\n\n");
  }
  Compressor id(Encoding::identity);
  std::vector<std::string> two = {"data: a\n\n", "data: b\n\n"};
  CHECK(id.compress(two).value() == "data: a\n\ndata: b\n\n");
  CHECK(id.end().value().empty());
  // Moved compressors keep the stream.
  Compressor a(Encoding::gzip);
  std::string wire;
  REQUIRE(a.compress_to(wire, std::string_view("data: 1\n\n")));
  Compressor b(std::move(a));
  REQUIRE(b.compress_to(wire, std::string_view("data: 2\n\n")));
  Compressor c2(Encoding::deflate);
  c2 = std::move(b);
  REQUIRE(c2.end_to(wire));
  CHECK(zlib_inflate(wire, 31).bytes == "data: 1\n\ndata: 2\n\n");
}

// ---- decompressor ----------------------------------------------------------------------------

TEST_CASE("compress: inflate and parse equals the plain parse, conformance cases split anywhere") {
  for (const auto& c : conformance::cases()) {
    INFO("case: " << c.name << " input: " << sselog::quote(c.input));
    const sselog::Outcome plain = sselog::parse_whole(c.input, c.options);
    // Two batches (cut in the middle of the input, maybe mid-line): that is how frames arrive.
    std::vector<std::string> pieces = {c.input.substr(0, c.input.size() / 2),
                                       c.input.substr(c.input.size() / 2)};
    for (Encoding e : {Encoding::gzip, Encoding::deflate}) {
      const std::string wire = compress_all(e, pieces);
      for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        auto d = decode_cuts(wire, {cut});
        REQUIRE_FALSE(d.error);
        REQUIRE(d.bytes == c.input);
        // Feed the parser the chunks as they came out of the decompressor.
        std::vector<std::size_t> cuts;
        std::size_t at = 0;
        for (auto& ch : d.chunks) cuts.push_back(at += ch.size());
        if (!cuts.empty()) cuts.pop_back();
        REQUIRE(sselog::parse_cuts(d.bytes, cuts, c.options) == plain);
      }
      auto bytewise = decode_cuts(wire, every_byte(wire.size()));
      CHECK(bytewise.bytes == c.input);
    }
  }
}

TEST_CASE("compress: random streams, random settings, any split, decode to the same events") {
  std::mt19937 rng(2024);
  for (int round = 0; round < 40; ++round) {
    auto frames = random_frames(rng, 1 + rng() % 60);
    std::string plain;
    for (auto& f : frames) plain += f;
    CompressorOptions o;
    o.level = static_cast<int>(rng() % 10);
    o.window_bits = 9 + static_cast<int>(rng() % 7);
    o.mem_level = 1 + static_cast<int>(rng() % 9);
    o.idle_dictionary = rng() % 5000;
    o.release_after_batch = rng() % 4 == 0;
    const Encoding e = rng() % 2 ? Encoding::gzip : Encoding::deflate;
    INFO("round " << round << " level " << o.level << " window " << o.window_bits << " mem "
                  << o.mem_level << " dict " << o.idle_dictionary);
    Compressor c(e, o);
    std::string wire;
    std::vector<std::string> batch;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      batch.push_back(frames[i]);
      if (rng() % 3 == 0 || i + 1 == frames.size()) {
        REQUIRE(c.compress_to(wire, batch));
        batch.clear();
        if (rng() % 4 == 0) c.release();
      }
    }
    REQUIRE(c.end_to(wire));
    auto z = zlib_inflate(wire, window_for(e));
    REQUIRE(z.complete);
    REQUIRE(z.bytes == plain);
    // Random cuts, with tiny output bounds too.
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0; at < wire.size();) {
      at += 1 + rng() % 40;
      if (at < wire.size()) cuts.push_back(at);
    }
    ssepp::DecompressorLimits lim;
    lim.max_output = 1 + rng() % 300;
    auto d = decode_cuts(wire, cuts, Format::auto_detect, lim);
    REQUIRE_FALSE(d.error);
    for (auto& ch : d.chunks) CHECK(ch.size() <= lim.max_output);
    REQUIRE(d.bytes == plain);
    CHECK(sselog::parse_whole(d.bytes) == sselog::parse_whole(plain));
  }
}

TEST_CASE("compress: the decompressor reads raw deflate, zlib and gzip, told or detected") {
  const std::string plain = "event: a\ndata: hello hello hello hello\n\n";
  auto deflate_with = [&](int bits) {
    z_stream s{};
    REQUIRE(deflateInit2(&s, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(256, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
    s.avail_in = static_cast<uInt>(plain.size());
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    s.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
    out.resize(out.size() - s.avail_out);
    deflateEnd(&s);
    return out;
  };
  struct Row {
    int bits;
    Format format;
  };
  for (Row r : {Row{-15, Format::raw}, Row{15, Format::zlib}, Row{31, Format::gzip}}) {
    const std::string wire = deflate_with(r.bits);
    INFO("windowBits " << r.bits);
    for (Format f : {Format::auto_detect, r.format}) {
      for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        auto d = decode_cuts(wire, {cut}, f);
        REQUIRE_FALSE(d.error);
        REQUIRE(d.bytes == plain);
      }
      CHECK(decode_cuts(wire, every_byte(wire.size()), f).bytes == plain);
    }
  }
  // Content-Encoding values.
  CHECK(Decompressor::for_content_encoding("br").error() == ssepp::errc::unsupported_encoding);
  CHECK(Decompressor::for_content_encoding("gzip, br").error() == ssepp::errc::unsupported_encoding);
  for (const char* v : {"gzip", " GZIP ", "x-gzip", "deflate"}) {
    auto d = Decompressor::for_content_encoding(v);
    REQUIRE(d);
    std::string out;
    const std::string wire = deflate_with(std::string_view(v).find('d') != std::string_view::npos ? 15 : 31);
    REQUIRE(d->decompress_to(out, wire));
    CHECK(out == plain);
    CHECK(d->done());
  }
  auto id = Decompressor::for_content_encoding("");
  REQUIRE(id);
  std::string out;
  REQUIRE(id->decompress_to(out, plain));
  CHECK(out == plain);
  // Concatenated gzip members read as one body, as gzip -d does.
  const std::string two = deflate_with(31) + deflate_with(31);
  CHECK(decode_cuts(two, every_byte(two.size()), Format::gzip).bytes == plain + plain);
}

TEST_CASE("compress: corrupt input is a sticky error, never a throw") {
  Compressor c(Encoding::gzip);
  std::string wire = c.compress(std::string_view("data: hello\n\n")).value();
  wire += c.end().value();
  {
    std::string bad = wire;
    bad[bad.size() - 6] = static_cast<char>(bad[bad.size() - 6] ^ 1);  // CRC-32
    auto d = decode_cuts(bad, {});
    CHECK(d.error == ssepp::errc::invalid_compressed_data);
  }
  {
    auto d = decode_cuts(wire + "x", {});  // bytes after the end
    CHECK(d.error == ssepp::errc::invalid_compressed_data);
  }
  {
    Decompressor d(Format::gzip);
    std::string out;
    CHECK(d.decompress_to(out, "not gzip at all").error() == ssepp::errc::invalid_compressed_data);
    CHECK(d.decompress_to(out, wire).error() == ssepp::errc::invalid_compressed_data);  // sticky
    CHECK(d.error() == ssepp::errc::invalid_compressed_data);
    CHECK(d.memory() == 0);
  }
  {
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; ++i) {
      std::string junk(rng() % 64, '\0');
      for (auto& ch : junk) ch = static_cast<char>(rng());
      if (i % 2) junk = wire.substr(0, rng() % wire.size()) + junk;
      Decompressor d;
      std::string out;
      auto r = d.decompress_to(out, junk);
      CHECK(out.size() <= ssepp::DecompressorLimits{}.max_output);
      (void)r;
    }
  }
  CHECK(ssepp::make_error_code(ssepp::errc::decompression_limit).message().find("bomb") !=
        std::string::npos);
  for (ssepp::errc e : {ssepp::errc::unsupported_encoding, ssepp::errc::invalid_compressed_data,
                        ssepp::errc::decompression_limit, ssepp::errc::compression_failed})
    CHECK(ssepp::make_error_code(e).message() != "unknown ssepp error");
}

TEST_CASE("compress: a decompression bomb ends in an error with bounded memory") {
  // 200 MB of zeros deflate to ~200 KB (ratio ~1000).
  std::string bomb;
  {
    z_stream s{};
    REQUIRE(deflateInit2(&s, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string zeros(1 << 20, '\0');
    std::string buf(1 << 16, '\0');
    for (int i = 0; i < 200; ++i) {
      s.next_in = reinterpret_cast<Bytef*>(zeros.data());
      s.avail_in = static_cast<uInt>(zeros.size());
      const int flush = i == 199 ? Z_FINISH : Z_NO_FLUSH;
      do {
        s.next_out = reinterpret_cast<Bytef*>(buf.data());
        s.avail_out = static_cast<uInt>(buf.size());
        deflate(&s, flush);
        bomb.append(buf.data(), buf.size() - s.avail_out);
      } while (s.avail_out == 0);
    }
    deflateEnd(&s);
  }
  INFO("bomb: " << bomb.size() << " bytes");
  REQUIRE(bomb.size() < 400 * 1024);
  Decompressor d;
  const ssepp::DecompressorLimits lim;
  std::string out;
  std::string_view in = bomb;
  std::error_code ec;
  std::size_t largest_call = 0, largest_state = 0;
  std::uint64_t total = 0;
  for (int calls = 0; calls < 100000; ++calls) {
    out.clear();
    auto r = d.decompress_to(out, in.substr(0, 4096));  // network-sized reads
    if (!r) {
      ec = r.error();
      break;
    }
    largest_call = std::max(largest_call, r->produced);
    largest_state = std::max(largest_state, d.memory());
    total += r->produced;
    in.remove_prefix(r->consumed);
    if (in.empty() && !r->more) break;
  }
  CHECK(ec == ssepp::errc::decompression_limit);
  CHECK(largest_call <= lim.max_output);
  CHECK(largest_state <= 64 * 1024);  // zlib's inflate state and 32 KB window
  CHECK(total <= lim.ratio_grace + lim.max_ratio * (bomb.size()) + lim.max_output);
  CHECK(d.decompress_to(out, "x").error() == ssepp::errc::decompression_limit);
  // With a ratio bound above the bomb's, the same input decodes in bounded steps.
  ssepp::DecompressorLimits lax;
  lax.max_ratio = 2000;
  Decompressor ok(Format::auto_detect, lax);
  in = bomb;
  total = 0;
  for (;;) {
    out.clear();
    auto r = ok.decompress_to(out, in);
    REQUIRE(r);
    REQUIRE(out.size() <= lax.max_output);
    total += out.size();
    in.remove_prefix(r->consumed);
    if (in.empty() && !r->more) break;
  }
  CHECK(total == 200u << 20);
  CHECK(ok.done());
}
