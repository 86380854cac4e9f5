// The parser conformance cases as data (WHATWG HTML 9.2.5/9.2.6, rule by rule): an input stream
// and the log it must produce. Run by parser_conformance.cpp; reused wherever a suite needs
// spec-shaped streams (the compression round trips feed them through gzip).
#pragma once

#include "conformance/event_log.hpp"

#include <ssepp/parser.hpp>

#include <string>
#include <vector>

namespace conformance {

using namespace std::string_literals;
using sselog::comment;
using sselog::ev;
using sselog::retry;

struct Case {
  const char* name;
  const char* rule;  // the spec text (paraphrased) the case checks
  std::string input;
  std::vector<std::string> log;
  std::string last_id = "";
  ssepp::ParserOptions options = {};
};

inline ssepp::ParserOptions replacing() {
  ssepp::ParserOptions o;
  o.utf8 = ssepp::Utf8::replace;
  return o;
}
inline ssepp::ParserOptions limits(std::size_t max_line, std::size_t max_event) {
  ssepp::ParserOptions o;
  o.limits.max_line = max_line;
  o.limits.max_event = max_event;
  return o;
}
inline const std::string fffd = "\xEF\xBF\xBD";
inline const std::string too_long = sselog::error(ssepp::errc::line_too_long);
inline const std::string too_large = sselog::error(ssepp::errc::event_too_large);

inline const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      // --- 9.2.5/9.2.6: line ends ---------------------------------------------------------------
      {"LF ends a line", "end-of-line = ( cr lf / cr / lf )",  //
       "data: a\n\n", {ev("message", "a")}},
      {"CRLF ends a line", "a CRLF character pair ... being the ways in which a line can end",
       "data: a\r\n\r\n", {ev("message", "a")}},
      {"CR alone ends a line", "a single CR not followed by LF ... can end a line",  //
       "data: a\r\r", {ev("message", "a")}},
      {"line ends mixed in one stream", "LF, CR and CRLF may all appear",
       "data: a\rdata: b\ndata: c\r\n\ndata: d\r\r\n", {ev("message", "a\nb\nc"), ev("message", "d")}},
      {"CRLF is one line end, not two", "a CRLF character pair ends one line",
       "data: a\r\ndata: b\r\n\r\n", {ev("message", "a\nb")}},
      {"LF then CR is two line ends", "an LF not preceded by CR; a CR not followed by LF",
       "data: a\n\rdata: b\n\n", {ev("message", "a"), ev("message", "b")}},
      {"CR CR LF: the CR ends the line, the CRLF a blank line",
       "a single CR not followed by LF ends a line", "data: a\r\r\ndata: b\n\n",
       {ev("message", "a"), ev("message", "b")}},
      {"CR at the end of the stream ends the line", "a single CR ... can end a line",
       "data: a\n\r", {ev("message", "a")}},
      {"NUL and other controls are ordinary characters", "any-char excludes only CR and LF",
       "data: a\0b\x01\x7F\n\n"s, {ev("message", "a\0b\x01\x7F"s)}},

      // --- 9.2.6: the BOM ------------------------------------------------------------------------
      {"leading BOM is skipped", "UTF-8 decode strips one leading BOM",
       "\xEF\xBB\xBF" "data: a\n\n", {ev("message", "a")}},
      {"only one BOM is skipped", "one leading BOM; a second is a character of the first line",
       "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", {ev("message", "b")}},
      {"BOM after the start is a character", "only a leading BOM is stripped",
       "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", {ev("message", "a")}},
      {"a BOM prefix is not a BOM", "only the whole BOM (EF BB BF) is stripped",
       "\xEF\xBB" "data: a\n\ndata: b\n\n", {ev("message", "b")}},
      {"a lone BOM byte starts the first line", "only the whole BOM is stripped",
       "\xEF\n" "data: b\n\n", {ev("message", "b")}},
      {"BOM inside a value is kept", "stripping applies to the stream start only",
       "data: \xEF\xBB\xBFx\n\n", {ev("message", "\xEF\xBB\xBFx")}},
      {"BOM then a blank line", "the BOM is stripped, the blank line remains",
       "\xEF\xBB\xBF\r\ndata:x\n\n", {ev("message", "x")}},
      {"stream of only a BOM", "the BOM is stripped; nothing else", "\xEF\xBB\xBF", {}},

      // --- 9.2.6: field and value ----------------------------------------------------------------
      {"no space after the colon", "collect the characters after the first colon",  //
       "data:a\n\n", {ev("message", "a")}},
      {"one space after the colon is removed", "if value starts with a SPACE, remove it",
       "data: a\n\n", {ev("message", "a")}},
      {"only one space is removed", "remove it (one space)",  //
       "data:  a\n\n", {ev("message", " a")}},
      {"trailing spaces are kept", "the value is the rest of the line",  //
       "data: a  \n\n", {ev("message", "a  ")}},
      {"a tab is not a space", "only U+0020 SPACE is removed",  //
       "data:\ta\n\n", {ev("message", "\ta")}},
      {"line without colon: whole line is the field name, value empty",
       "otherwise ... using the whole line as the field name, and the empty string as the value",
       "data\n\n", {ev("message", "")}},
      {"colon with nothing after it", "value is the empty string",  //
       "data:\n\n", {ev("message", "")}},
      {"colon and a space only", "the space is removed, value empty",  //
       "data: \n\n", {ev("message", "")}},
      {"the first colon splits; later ones are value",
       "collect the characters before the first colon",
       "data: a:b\n\ndata::\n\nevent:x:y\ndata\n\n",
       {ev("message", "a:b"), ev("message", ":"), ev("x:y", "")}},
      {"field names are case-sensitive", "compared literally, with no case folding",
       "Data: x\n\nDATA: y\n\nEvent: z\ndata: w\n\n", {ev("message", "w")}},
      {"space before the colon is part of the name", "the field name is everything before ':'",
       "data : x\n\n data: y\n\n", {}},
      {"unknown fields are ignored", "Otherwise: the field is ignored",
       "foo: bar\ndata: x\nbar\nevents: y\nid2: 3\n\n", {ev("message", "x")}},

      // --- 9.2.6: comments ----------------------------------------------------------------------
      {"comment lines are ignored", "if the line starts with ':', ignore the line",
       ": hello\ndata: x\n\n", {comment("hello"), ev("message", "x")}},
      {"comment forms", "a line starting with ':' (reported without ':' and one space)",
       ":\n:x\n::y\n:  z\n", {comment(""), comment("x"), comment(":y"), comment(" z")}},
      {"a comment does not end an event", "ignore the line", "data: a\n: c\ndata: b\n\n",
       {comment("c"), ev("message", "a\nb")}},
      {"a comment-only block dispatches nothing", "dispatch needs data",  //
       ": hi\n\n", {comment("hi")}},

      // --- 9.2.6: data and dispatch --------------------------------------------------------------
      {"data lines are joined with LF", "append the value, then LF, to the data buffer",
       "data: a\ndata: b\ndata: c\n\n", {ev("message", "a\nb\nc")}},
      {"empty data lines count", "append the value (empty) and LF",
       "data\ndata\n\ndata:\ndata: b\n\n", {ev("message", "\n"), ev("message", "\nb")}},
      {"only one trailing LF is removed", "if the data buffer's last character is LF, remove it",
       "data: a\ndata\n\n", {ev("message", "a\n")}},
      {"a blank line without data dispatches nothing", "if the data buffer is empty, return",
       "event: x\n\n\n\n", {}},
      {"several blank lines between events", "blank line: dispatch (nothing when empty)",
       "data: a\n\n\n\ndata: b\n\n", {ev("message", "a"), ev("message", "b")}},
      {"type is message by default", "initialize type to message",  //
       "data: a\n\n", {ev("message", "a")}},
      {"event sets the type", "event: set the event type buffer",
       "event: add\ndata: 7\n\n", {ev("add", "7")}},
      {"the type is reset after dispatch", "set the data and event type buffers to empty",
       "event: x\ndata: a\n\ndata: b\n\n", {ev("x", "a"), ev("message", "b")}},
      {"the type is reset by a blank line without data",
       "if the data buffer is empty, set data and event type buffers to empty and return",
       "event: x\n\ndata: b\n\n", {ev("message", "b")}},
      {"the last event field wins", "set the event type buffer (each time)",
       "event: a\nevent: b\ndata\n\n", {ev("b", "")}},
      {"an empty type means message", "if the type buffer is not empty, change the type",
       "event:\ndata: a\n\nevent\ndata: b\n\n", {ev("message", "a"), ev("message", "b")}},
      {"the type keeps a second leading space", "remove one SPACE",  //
       "event:  x\ndata\n\n", {ev(" x", "")}},
      {"field order within an event does not matter", "fields fill buffers until the blank line",
       "data: a\nevent: t\nid: 9\n\n", {ev("t", "a", "9")}, "9"},

      // --- 9.2.6: id -----------------------------------------------------------------------------
      {"id is attached to the event", "lastEventId is the last event ID string",
       "id: 1\ndata: a\n\n", {ev("message", "a", "1")}, "1"},
      {"id persists across events", "the buffer does not get reset",
       "id: 1\ndata: a\n\ndata: b\n\n", {ev("message", "a", "1"), ev("message", "b", "1")}, "1"},
      {"a later id replaces it", "set the last event ID buffer to the value",
       "id: 1\ndata: a\n\nid: 2\ndata: b\n\n", {ev("message", "a", "1"), ev("message", "b", "2")},
       "2"},
      {"an empty id resets it", "set the buffer to the (empty) field value",
       "id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\n\nid:\ndata: c\n\n",
       {ev("message", "a", "1"), ev("message", "b", ""), ev("message", "c", "")}},
      {"an id containing NUL is ignored", "if the value does not contain NULL ... otherwise ignore",
       "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s,
       {ev("message", "a", "1"), ev("message", "b", "1")}, "1"},
      {"an id keeps its spaces after the first", "remove one SPACE",  //
       "id:  7 \ndata\n\n", {ev("message", "", " 7 ")}, " 7 "},
      {"an id takes effect at a blank line without data",
       "set the last event ID string to the buffer, then return if data is empty",
       "id: 5\n\ndata: a\n\n", {ev("message", "a", "5")}, "5"},
      {"the id of an unfinished event is not taken",
       "the last event ID string is set when dispatching; an incomplete event is discarded",
       "id: 1\ndata: a\n\nid: 2\ndata: b\n", {ev("message", "a", "1")}, "1"},
      {"id may hold any other bytes", "the value is the rest of the line",
       "id: a b:c\xC3\xA9\ndata\n\n", {ev("message", "", "a b:c\xC3\xA9")}, "a b:c\xC3\xA9"},

      // --- 9.2.6: retry --------------------------------------------------------------------------
      {"retry with ASCII digits sets the reconnection time",
       "if the value consists of only ASCII digits, set the reconnection time",
       "retry: 1000\n", {retry(1000)}},
      {"retry with anything but digits is ignored", "otherwise, ignore the field",
       "retry: 10ms\nretry: -1\nretry: 1.5\nretry: +5\nretry:  5\nretry: 5 \nretry: \nretry\n"
       "retry: \xEF\xBC\x95\n",
       {}},
      {"retry keeps the last valid value", "set the reconnection time (each time)",
       "retry: 10\nretry: x\nretry: 20\n", {retry(10), retry(20)}},
      {"retry with leading zeros", "interpret the value as an integer in base ten",
       "retry: 007\nretry: 0\n", {retry(7), retry(0)}},
      {"retry beyond the range saturates", "an integer in base ten (clamped to milliseconds)",
       "retry: 99999999999999999999999\n", {retry(INT64_MAX)}},
      {"retry does not dispatch and does not end the event", "retry only sets the time",
       "data: a\nretry: 5\ndata: b\n\n", {retry(5), ev("message", "a\nb")}},
      {"retry on an unterminated line is not read", "lines end with a line end",
       "retry: 5", {}},
      {"retry ended by CR", "a single CR ends the line", "retry: 5\r", {retry(5)}},

      // --- 9.2.6: end of stream ------------------------------------------------------------------
      {"an unfinished event is dropped", "once the end of the file is reached, discard pending data",
       "data: a\n\ndata: b\n", {ev("message", "a")}},
      {"an unterminated line is dropped", "the incomplete event is not dispatched",
       "data: a\n\ndata: b", {ev("message", "a")}},
      {"an empty stream", "nothing to interpret", "", {}},

      // --- UTF-8 decode (Utf8::replace) ----------------------------------------------------------
      {"pass-through keeps ill-formed bytes", "Utf8::pass_through: bytes as received",
       "data: \xFF\xFE\xC3\n\nid: \x80\n\n", {ev("message", "\xFF\xFE\xC3")}, "\x80"},
      {"replace: a stray byte becomes U+FFFD", "UTF-8 decode: error -> U+FFFD",
       "data: a\xFF" "b\n\n", {ev("message", "a" + fffd + "b")}, "", replacing()},
      {"replace: a truncated sequence is one U+FFFD",
       "UTF-8 decode: a maximal subpart is one error", "data: \xE2\x82\n\ndata: \xF0\x9F\x98x\n\n",
       {ev("message", fffd), ev("message", fffd + "x")}, "", replacing()},
      {"replace: well-formed sequences are unchanged", "UTF-8 decode",
       "data: \xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9\n\n",
       {ev("message", "\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9")}, "", replacing()},
      {"replace: surrogates, overlongs and beyond U+10FFFF",
       "UTF-8 decode bounds: E0 A0.., ED ..9F, F0 90.., F4 ..8F; C0, C1, F5.. never lead",
       "data: \xED\xA0\x80|\xC0\xAF|\xF0\x80\x80\x80|\xF4\x90\x80\x80|\xF5\n\n",
       {ev("message", fffd + fffd + fffd + "|" + fffd + fffd + "|" + fffd + fffd + fffd + fffd +
                          "|" + fffd + fffd + fffd + fffd + "|" + fffd)},
       "", replacing()},
      {"replace: a sequence cut by a line end", "decoding happens before line splitting",
       "data: \xC3\ndata: \xA9\n\n", {ev("message", fffd + "\n" + fffd)}, "", replacing()},
      {"replace: type, id and comments are decoded too", "the whole stream is decoded",
       "event: \xFF\nid: \xFE\n: \xC3\ndata\n\n", {comment(fffd), ev(fffd, "", fffd)}, fffd,
       replacing()},
      {"replace: an ill-formed field name matches nothing", "names compare literally",
       "d\xFFta: x\n\ndata: y\n\n", {ev("message", "y")}, "", replacing()},
      {"replace: the BOM is still stripped once", "UTF-8 decode strips one leading BOM",
       "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", {}, "", replacing()},

      // --- limits (ssepp: untrusted input) -------------------------------------------------------
      {"a line of exactly max_line bytes is accepted", "max_line: the longest line accepted",
       "data: ab\r\n: 345678\n\n", {comment("345678"), ev("message", "ab")}, "", limits(8, 100)},
      {"a longer line is an error", "max_line exceeded -> line_too_long",
       "data: a\n\ndata: abc\n\ndata: b\n\n", {ev("message", "a"), too_long}, "", limits(8, 100)},
      {"an unterminated long line is an error at once", "memory stays bounded",
       "data: a\n\ndata: abcdefghijkl", {ev("message", "a"), too_long}, "", limits(8, 100)},
      {"a long comment is an error", "every line counts", ": 123456789\n", {too_long}, "",
       limits(8, 100)},
      {"blank lines never exceed a limit", "blank lines are empty", "\n\r\n\r\r\n", {}, "",
       limits(0, 0)},
      {"event data of exactly max_event bytes is accepted", "max_event counts joined data",
       "data: abc\ndata: d\n\n", {ev("message", "abc\nd")}, "", limits(100, 5)},
      {"larger event data is an error", "max_event exceeded -> event_too_large",
       "data: x\n\ndata: abc\ndata: de\n\ndata: y\n\n", {ev("message", "x"), too_large}, "",
       limits(100, 5)},
      {"one data line beyond max_event", "max_event exceeded -> event_too_large",
       "id: 1\ndata: 123456\n\n", {too_large}, "", limits(100, 5)},
      {"the error is sticky", "no output after an error until reset",
       "data: 123456789\nretry: 5\ndata: a\n\n", {too_long}, "", limits(8, 100)},
      {"the last event ID survives an error", "state before the error stays readable",
       "id: 7\ndata: a\n\ndata: 123456789\n", {ev("message", "a", "7"), too_long}, "7",
       limits(8, 100)},
  };
  return all;
}

}  // namespace conformance
