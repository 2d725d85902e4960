// Turns the backend's answer to an HTTP request's pipeline into the JSON the Neon driver reads, message by
// message, straight into the response buffer.
#include "http/result_json.hpp"

#include "http/json_text.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::http {

namespace {

using protocol::read_u32;

std::uint16_t read_u16(const char* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(p[0]) << 8) |
                                    static_cast<unsigned char>(p[1]));
}

// Reads a NUL-terminated string at `pos`; false if there is no NUL.
bool read_cstr(std::string_view body, std::size_t& pos, std::string_view& out) {
  std::size_t end = body.find('\0', pos);
  if (end == std::string_view::npos) return false;
  out = body.substr(pos, end - pos);
  pos = end + 1;
  return true;
}

// The JSON names of ErrorResponse fields, as node-postgres names them (the driver copies these).
const char* error_field_name(char code) {
  switch (code) {
    case 'S':
      return "severity";
    case 'C':
      return "code";
    case 'M':
      return "message";
    case 'D':
      return "detail";
    case 'H':
      return "hint";
    case 'P':
      return "position";
    case 'p':
      return "internalPosition";
    case 'q':
      return "internalQuery";
    case 'W':
      return "where";
    case 's':
      return "schema";
    case 't':
      return "table";
    case 'c':
      return "column";
    case 'd':
      return "dataType";
    case 'n':
      return "constraint";
    case 'F':
      return "file";
    case 'L':
      return "line";
    case 'R':
      return "routine";
    default:
      return nullptr;  // 'V' (unlocalised severity) and future fields
  }
}

}  // namespace

ResultJsonWriter::ResultJsonWriter(std::string& out, bool array_mode, int hidden_before, int queries,
                                   std::size_t max_size)
    : out_(out),
      array_mode_(array_mode),
      hidden_before_(hidden_before),
      queries_(queries),
      max_size_(max_size) {}

bool ResultJsonWriter::on_message(char type, std::string_view body) {
  switch (type) {
    case '1':  // ParseComplete
    case '2':  // BindComplete
    case 'N':  // NoticeResponse
    case 'A':  // NotificationResponse
    case 'S':  // ParameterStatus: the caller records it on the backend
      return true;
    case 'T':
      if (!current_is_callers() || failed()) return true;
      return start_result(body);
    case 'n':  // NoData: a statement without a result set
      if (!current_is_callers() || failed()) return true;
      return start_result(std::string_view("\0\0", 2));
    case 'D':
      if (!current_is_callers() || failed() || too_large_) return true;
      if (!in_result_) return false;
      return append_row(body);
    case 'C':
    case 'I': {  // CommandComplete, EmptyQueryResponse
      if (current_is_callers() && !failed()) {
        if (!in_result_) start_result(std::string_view("\0\0", 2));
        std::string_view tag;
        std::size_t pos = 0;
        if (type == 'C' && !read_cstr(body, pos, tag)) return false;
        finish_result(tag);
      }
      ++completed_;
      return true;
    }
    case 'E':
      if (error_json_.empty()) error_json_ = error_json_from_response(body);
      return true;
    case 'Z':
      if (body.size() != 1) return false;
      ready_status_ = body[0];
      return true;
    default:
      return false;  // CopyIn/CopyOut and anything else: not something one Execute of ours can get back
  }
}

bool ResultJsonWriter::start_result(std::string_view description) {
  if (description.size() < 2) return false;
  const char* p = description.data();
  columns_ = read_u16(p);
  if (completed_ > hidden_before_) out_.push_back(',');
  out_.append("{\"fields\":[");
  keys_.clear();
  key_end_.clear();
  std::size_t pos = 2;
  for (int i = 0; i < columns_; ++i) {
    std::string_view name;
    if (!read_cstr(description, pos, name) || description.size() < pos + 18) return false;
    p = description.data() + pos;
    std::uint32_t table = read_u32(p), type = read_u32(p + 6);
    std::int64_t column = read_u16(p + 4);
    auto size = static_cast<std::int16_t>(read_u16(p + 10));
    auto modifier = static_cast<std::int32_t>(read_u32(p + 12));
    pos += 18;
    if (i > 0) out_.push_back(',');
    out_.append("{\"name\":");
    append_json_string(out_, name);
    out_.append(",\"dataTypeID\":");
    append_json_int(out_, type);
    out_.append(",\"tableID\":");
    append_json_int(out_, table);
    out_.append(",\"columnID\":");
    append_json_int(out_, column);
    out_.append(",\"dataTypeSize\":");
    append_json_int(out_, size);
    out_.append(",\"dataTypeModifier\":");
    append_json_int(out_, modifier);
    out_.append(",\"format\":\"text\"}");
    if (!array_mode_) {
      append_json_key(keys_, name);
      key_end_.push_back(static_cast<std::uint32_t>(keys_.size()));
    }
  }
  out_.append("],\"rows\":[");
  in_result_ = true;
  return true;
}

bool ResultJsonWriter::append_row(std::string_view row) {
  if (row.size() < 2 || read_u16(row.data()) != columns_) return false;
  const std::size_t row_start = out_.size();
  if (out_.back() != '[') out_.push_back(',');
  out_.push_back(array_mode_ ? '[' : '{');
  std::size_t pos = 2;
  for (int i = 0; i < columns_; ++i) {
    if (row.size() < pos + 4) return false;
    auto length = static_cast<std::int32_t>(read_u32(row.data() + pos));
    pos += 4;
    if (i > 0) out_.push_back(',');
    if (!array_mode_) {
      std::uint32_t key_start = i == 0 ? 0 : key_end_[i - 1];
      out_.append(keys_, key_start, key_end_[i] - key_start);
    }
    if (length < 0) {
      out_.append("null");
      continue;
    }
    if (row.size() < pos + static_cast<std::size_t>(length)) return false;
    append_json_string(out_, row.substr(pos, length));
    pos += length;
  }
  out_.push_back(array_mode_ ? ']' : '}');
  if (out_.size() > max_size_) {
    out_.resize(row_start);  // what is kept stays valid JSON text, though it will not be sent
    too_large_ = true;
  }
  return true;
}

void ResultJsonWriter::finish_result(std::string_view tag) {
  // "INSERT 0 5", "SELECT 5", "UPDATE 3", "CREATE TABLE": the command is the first word, the row count the
  // last number if there is one (node-postgres reads it the same way).
  std::string_view command = tag.substr(0, tag.find(' '));
  // SET LOCAL is harmless, but the tag does not say which it was.
  if (command == "SET" || command == "LISTEN" || command == "PREPARE" || command == "LOAD")
    left_session_state_ = true;
  std::size_t last_space = tag.rfind(' ');
  std::string_view count = last_space == std::string_view::npos ? "" : tag.substr(last_space + 1);
  bool numeric = !count.empty() && count.find_first_not_of("0123456789") == std::string_view::npos;
  out_.append("],\"command\":");
  append_json_string(out_, command);
  out_.append(",\"rowCount\":");
  if (numeric)
    out_.append(count);
  else
    out_.append("null");
  out_.append(",\"rowAsArray\":");
  out_.append(array_mode_ ? "true}" : "false}");
  in_result_ = false;
}

std::string error_json_from_response(std::string_view body) {
  std::string out = "{";
  std::size_t pos = 0;
  while (pos < body.size() && body[pos] != '\0') {
    char code = body[pos++];
    std::string_view value;
    if (!read_cstr(body, pos, value)) break;
    const char* name = error_field_name(code);
    if (!name) continue;
    if (out.size() > 1) out.push_back(',');
    append_json_key(out, name);
    append_json_string(out, value);
  }
  out.push_back('}');
  return out;
}

std::string error_json(std::string_view sqlstate, std::string_view message) {
  std::string out = "{\"message\":";
  append_json_string(out, message);
  out.append(",\"code\":");
  append_json_string(out, sqlstate);
  out.append(",\"severity\":\"ERROR\"}");
  return out;
}

}  // namespace pgmux::http
