// The consumer's use of ssepp::compress: negotiate, compress a batch, inflate it back.
#include <ssepp/compress.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  const ssepp::Encoding e = ssepp::negotiate_encoding("gzip, deflate, br");
  ssepp::Compressor gz(e);
  std::vector<ssepp::Frame> batch{ssepp::Frame::from_event(ssepp::Event{}.with_data("hello"))};
  std::string wire;
  if (!gz.compress_to(wire, batch) || !gz.end_to(wire)) return 1;
  auto inflater = ssepp::Decompressor::for_content_encoding(ssepp::encoding_name(e));
  std::string plain;
  if (!inflater || !inflater->decompress_to(plain, wire)) return 1;
  std::printf("%s", plain.c_str());
  return plain == "data: hello\n\n" && inflater->done() ? 0 : 1;
}
