// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
// gzip and deflate response bodies for ssepp::asio::EventClient, with compress.hpp's bounded
// Decompressor. Needs both targets: ssepp::asio and ssepp::compress (zlib).
#pragma once

#include <ssepp/asio/client.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/config.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

SSEPP_BEGIN_NAMESPACE
namespace asio {

namespace detail {
/// A BodyDecoder over a Decompressor: hands the output on in pieces of at most
/// `limits.max_output` bytes, so memory stays bounded whatever the ratio.
class InflateDecoder final : public BodyDecoder {
 public:
  explicit InflateDecoder(Decompressor&& d) noexcept : d_(std::move(d)) {}
  Result<void> decode(std::string_view in, const Output& out) override {
    for (;;) {
      piece_.clear();
      auto r = d_.decompress_to(piece_, in);
      if (!r) return r.error();
      in.remove_prefix(r->consumed);
      if (!piece_.empty())
        if (auto fed = out(piece_); !fed) return fed;
      if (in.empty() && !r->more) return {};
      if (r->consumed == 0 && r->produced == 0 && !r->more) return errc::invalid_compressed_data;
    }
  }

 private:
  Decompressor d_;
  std::string piece_;
};
}  // namespace detail

/// Asks for gzip and deflate (`Accept-Encoding: gzip, deflate`) and decodes them: sets
/// `accept_encoding` and `make_decoder`. Any other coding fails with errc::unsupported_encoding;
/// corrupt data with errc::invalid_compressed_data; a bomb with errc::decompression_limit.
inline void accept_compressed(EventClientOptions& options, const DecompressorLimits& limits = {}) {
  options.accept_encoding = "gzip, deflate";
  options.make_decoder =
      [limits](std::string_view coding) -> Result<std::unique_ptr<BodyDecoder>> {
    auto d = Decompressor::for_content_encoding(coding, limits);
    if (!d) return d.error();
    return std::unique_ptr<BodyDecoder>(std::make_unique<detail::InflateDecoder>(std::move(*d)));
  };
}

}  // namespace asio
SSEPP_END_NAMESPACE
