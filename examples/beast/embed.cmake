# cmake -DINPUT=page.html -DOUTPUT=page.cpp -P embed.cmake: writes page.cpp defining
# demo::page_html() over the bytes of INPUT, as a char array (no raw string length limits).
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
# One line per 32 bytes keeps the file readable by compilers and people alike.
string(REGEX REPLACE "(('[^']*',){32})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from page.html by embed.cmake. Do not edit.\n"
"#include \"page.hpp\"\n\n"
"namespace demo {\n"
"namespace {\n"
"const char page[${size} + 1] = {\n    ${bytes}'\\0'};\n"
"}  // namespace\n\n"
"std::string_view page_html() noexcept { return {page, ${size}}; }\n\n"
"}  // namespace demo\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
