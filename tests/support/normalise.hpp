// What a client sees of event data: every CR, LF or CRLF line break as LF.
#pragma once

#include <string>

namespace testing_sse {

inline std::string normalised(const std::string& data) {
  std::string out;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\r') {
      out += '\n';
      if (i + 1 < data.size() && data[i + 1] == '\n') ++i;
    } else {
      out += data[i];
    }
  }
  return out;
}

}  // namespace testing_sse
