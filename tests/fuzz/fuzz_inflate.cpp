// The client-side decompressor on hostile input: never crash, never more output per call than
// the bound, never more in total than the ratio allows, errors sticky; what decodes is what
// zlib's own inflate gives. The first byte picks the format, the bounds and the read size.
#include <ssepp/compress.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  const unsigned config = bytes[0];
  std::string_view in(reinterpret_cast<const char*>(bytes + 1), size - 1);

  static constexpr ssepp::Format formats[] = {ssepp::Format::auto_detect, ssepp::Format::gzip,
                                              ssepp::Format::zlib, ssepp::Format::raw};
  ssepp::DecompressorLimits limits;
  limits.max_output = (config & 0x10) ? 64 : 64 * 1024;
  limits.max_ratio = (config & 0x20) ? 4 : 256;
  limits.ratio_grace = (config & 0x40) ? 0 : 4096;
  const std::size_t read = (config & 0x80) ? 1 : 4096;
  ssepp::Decompressor d(formats[config & 3], limits);

  std::string all;
  std::error_code failed;
  std::size_t used = 0;
  while (used < in.size() || !failed) {
    std::string out;
    auto r = d.decompress_to(out, in.substr(used, read));
    if (!r) {
      failed = r.error();
      CHECK(d.error() == failed);
      CHECK(d.memory() == 0);
      break;
    }
    CHECK(r->produced == out.size());
    CHECK(out.size() <= limits.max_output);
    CHECK(r->consumed <= read);
    CHECK(d.memory() <= 64 * 1024);
    CHECK(r->consumed > 0 || r->produced > 0 || used >= in.size());  // no stall
    all += out;
    used += r->consumed;
    CHECK(d.total_out() <= limits.ratio_grace + limits.max_ratio * d.total_in() + 32 * 1024 +
                               limits.max_output);
    if (used >= in.size() && !r->more) break;
  }
  if (failed) {
    std::string out;
    CHECK(d.decompress_to(out, "x").error() == failed);  // sticky
    CHECK(out.empty());
    return 0;
  }
  // Differential: what decoded is exactly what zlib's own one-shot inflate gives (for the
  // formats it can be told; auto detection picked one of them).
  if ((config & 3) != 0 && all.size() < (1u << 20)) {
    const int bits = (config & 3) == 1 ? 31 : (config & 3) == 2 ? 15 : -15;
    z_stream s{};
    if (inflateInit2(&s, bits) != Z_OK) return 0;
    std::string ref(all.size() + 1, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = reinterpret_cast<Bytef*>(&ref[0]);
    s.avail_out = static_cast<uInt>(ref.size());
    const int rc = inflate(&s, Z_SYNC_FLUSH);
    ref.resize(ref.size() - s.avail_out);
    const uInt left = s.avail_in;
    inflateEnd(&s);
    s.avail_in = left;
    const bool whole = rc == Z_OK || rc == Z_BUF_ERROR || (rc == Z_STREAM_END && s.avail_in == 0);
    if (whole) CHECK(ref == all);
  }
  return 0;
}
