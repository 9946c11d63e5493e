// A minimal JSON reader for the reference vectors in shared/vectors: objects, arrays, numbers,
// strings (no escapes beyond \" and \\), true/false/null. Numbers are read as double with
// strtod, which is exact for the 17-digit values Python's json module writes.
#pragma once

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace json_lite {

struct Value {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  const Value& operator[](const std::string& key) const {
    auto it = object.find(key);
    if (kind != Kind::object || it == object.end()) throw std::runtime_error("no key " + key);
    return it->second;
  }
  const Value& operator[](std::size_t i) const { return array.at(i); }
  std::size_t size() const { return kind == Kind::array ? array.size() : object.size(); }
  double num() const {
    if (kind != Kind::number) throw std::runtime_error("not a number");
    return number;
  }
  // A (nested) array of numbers, flattened row-major.
  std::vector<double> flat() const {
    std::vector<double> out;
    flatten_into(out);
    return out;
  }

 private:
  void flatten_into(std::vector<double>& out) const {
    if (kind == Kind::number) {
      out.push_back(number);
    } else if (kind == Kind::array) {
      for (const auto& v : array) v.flatten_into(out);
    } else {
      throw std::runtime_error("not a numeric array");
    }
  }
};

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}
  Value parse() {
    Value v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("json: " + what + " at offset " + std::to_string(i_));
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool consume(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') ++i_;
      out += s_[i_++];
    }
    expect('"');
    return out;
  }
  Value value() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    Value v;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Value::Kind::object;
      if (consume('}')) return v;
      do {
        skip();
        std::string key = string_literal();
        expect(':');
        v.object[key] = value();
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = Value::Kind::array;
      if (consume(']')) return v;
      do v.array.push_back(value());
      while (consume(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Value::Kind::string;
      v.string = string_literal();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = Value::Kind::boolean;
      v.boolean = s_[i_] == 't';
      i_ += v.boolean ? 4 : 5;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      const char* start = s_.c_str() + i_;
      char* end = nullptr;
      v.kind = Value::Kind::number;
      v.number = std::strtod(start, &end);
      if (end == start) fail("bad value");
      i_ += static_cast<std::size_t>(end - start);
    }
    return v;
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

inline Value parse(const std::string& text) {
  return Parser(text).parse();
}

inline Value load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str());
}

}  // namespace json_lite
