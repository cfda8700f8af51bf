// Python semantics shared by filters and methods: arithmetic, strip, slicing; plus the jinja tests, the
// str/dict methods and the globals that transformers gives chat templates (range, namespace, dict,
// raise_exception, strftime_now).
#include <cmath>
#include <ctime>

#include "tokenizer/jinja/interpreter.h"

namespace punica::jinja {

namespace {

uint32_t decode_cp(std::string_view cp) {
  unsigned char c = static_cast<unsigned char>(cp[0]);
  if (cp.size() == 1) return c;
  if (cp.size() == 2) return ((c & 0x1fu) << 6) | (cp[1] & 0x3fu);
  if (cp.size() == 3) return ((c & 0x0fu) << 12) | ((cp[1] & 0x3fu) << 6) | (cp[2] & 0x3fu);
  return ((c & 0x07u) << 18) | ((cp[1] & 0x3fu) << 12) | ((cp[2] & 0x3fu) << 6) | (cp[3] & 0x3fu);
}

// Python str.isspace() for one code point.
bool is_python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) throw_render_error("integer result out of 64-bit range");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

[[noreturn]] void type_error(const std::string& op, const Value& a, const Value& b) {
  if (op == "+" && a.is_string()) throw_render_error("can only concatenate str (not \"" + b.type_name() + "\") to str");
  throw_render_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

std::string repeat(const std::string& s, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += s;
  return out;
}

Value arg_or(const CallArgs& args, size_t index, const char* name, const Value& fallback) {
  if (index < args.positional.size()) return args.positional[index];
  if (const Value* v = args.keyword_arg(name)) return *v;
  return fallback;
}

std::string need_string(const Value& v, const char* what) {
  if (!v.is_string()) throw_render_error(std::string(what) + " must be a str, not " + v.type_name());
  return v.as_string();
}

ValueList split_whitespace(std::string_view s, int64_t maxsplit) {
  ValueList out;
  auto cps = utf8_code_points(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_python_space(decode_cp(cps[i]))) ++i;
    if (i >= cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      std::string rest;
      for (size_t k = i; k < cps.size(); ++k) rest += cps[k];
      // Python keeps the remainder's trailing whitespace stripped only when splitting on whitespace? No:
      // it strips nothing from the remainder's end.
      out.push_back(Value::string(rest));
      return out;
    }
    std::string word;
    while (i < cps.size() && !is_python_space(decode_cp(cps[i]))) word += cps[i++];
    out.push_back(Value::string(word));
  }
  return out;
}

ValueList split_on(const std::string& s, const std::string& sep, int64_t maxsplit) {
  if (sep.empty()) throw_render_error("empty separator");
  ValueList out;
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t at = s.find(sep, start);
    if (at == std::string::npos) break;
    out.push_back(Value::string(s.substr(start, at - start)));
    start = at + sep.size();
  }
  out.push_back(Value::string(s.substr(start)));
  return out;
}

bool prefix_test(const std::string& s, const Value& arg, bool suffix) {
  auto one = [&](const Value& p) {
    const std::string& x = need_string(p, suffix ? "endswith argument" : "startswith argument");
    if (x.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
  };
  if (arg.is_list()) {
    for (const auto& p : arg.as_list()) {
      if (one(p)) return true;
    }
    return false;
  }
  return one(arg);
}

std::string ascii_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  }
  return s;
}
std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}
bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

std::string python_str_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    auto cps = utf8_code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < cps.size()) out += cps[i];
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += repl;
    start = at + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string python_upper(const std::string& s) { return ascii_upper(s); }
std::string python_lower(const std::string& s) { return ascii_lower(s); }

std::string python_capitalize(const std::string& s) {
  if (s.empty()) return s;
  std::string out = ascii_lower(s);
  out[0] = ascii_upper(std::string(1, out[0]))[0];
  return out;
}

// Python str.title(): a letter after a non-letter starts a word.
std::string python_str_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (is_ascii_alpha(c)) {
      c = prev_cased ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
      prev_cased = true;
    } else {
      prev_cased = static_cast<unsigned char>(c) >= 0x80 && prev_cased;
    }
  }
  return out;
}

std::string python_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  auto cps = utf8_code_points(s);
  std::vector<std::string_view> strip_set;
  if (chars) strip_set = utf8_code_points(*chars);
  auto strip_me = [&](std::string_view cp) {
    if (!chars) return is_python_space(decode_cp(cp));
    for (auto c : strip_set) {
      if (c == cp) return true;
    }
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_me(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_me(cps[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out += cps[i];
  return out;
}

Value python_binary_op(const std::string& op, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    bool is_float = a.is_float() || b.is_float();
    int64_t x = a.as_int(), y = b.as_int(), r = 0;
    double fx = a.as_double(), fy = b.as_double();
    if (op == "/") {
      if (fy == 0) throw_render_error("division by zero");
      return Value::floating(fx / fy);
    }
    if (op == "//" || op == "%") {
      if (is_float ? fy == 0 : y == 0) throw_render_error(op == "%" ? "modulo by zero" : "integer division or modulo by zero");
      if (is_float) {
        double m = std::fmod(fx, fy);
        if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
        return Value::floating(op == "%" ? m : std::floor((fx - m) / fy));
      }
      if (op == "//") return Value::integer(floor_div(x, y));
      return Value::integer(x - floor_div(x, y) * y);
    }
    if (op == "**") {
      if (!is_float && y >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(result, x, &result)) throw_render_error("integer result out of 64-bit range");
          if (result == 0 || result == 1) break;
        }
        return Value::integer(result);
      }
      return Value::floating(std::pow(fx, fy));
    }
    if (is_float) {
      if (op == "+") return Value::floating(fx + fy);
      if (op == "-") return Value::floating(fx - fy);
      if (op == "*") return Value::floating(fx * fy);
    } else {
      bool overflow = op == "+" ? __builtin_add_overflow(x, y, &r)
                      : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                  : __builtin_mul_overflow(x, y, &r);
      if (overflow) throw_render_error("integer result out of 64-bit range");
      return Value::integer(r);
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::string(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      ValueList items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(items), a.is_tuple());
    }
  }
  if (op == "*") {
    const Value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
    const Value* n = seq == &a ? &b : &a;
    if (seq && (n->is_int() || n->is_bool())) {
      int64_t times = std::max<int64_t>(0, n->as_int());
      if (seq->is_string()) return Value::string(repeat(seq->as_string(), times));
      ValueList items;
      for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq->as_list().begin(), seq->as_list().end());
      return Value::list(std::move(items), seq->is_tuple());
    }
  }
  if (op == "%" && a.is_string()) {
    throw JinjaError(ErrorKind::kUnsupported, "unsupported '%' string formatting");
  }
  type_error(op, a, b);
}

Value python_slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto as_index = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) throw_render_error(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  std::optional<int64_t> start = as_index(start_v, "start"), stop = as_index(stop_v, "stop");
  int64_t step = as_index(step_v, "step").value_or(1);
  if (step == 0) throw_render_error("slice step cannot be zero");
  std::vector<std::string_view> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = utf8_code_points(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().size());
  } else {
    throw_render_error("'" + obj.type_name() + "' object is not subscriptable");
  }
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t i = *v;
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  int64_t b = adjust(start, step < 0 ? n - 1 : 0);
  int64_t e = adjust(stop, step < 0 ? -1 : n);
  std::vector<int64_t> idx;
  for (int64_t i = b; step > 0 ? i < e : i > e;) {
    idx.push_back(i);
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) out += cps[static_cast<size_t>(i)];
    return Value::string(std::move(out));
  }
  ValueList out;
  for (int64_t i : idx) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
  return Value::list(std::move(out), obj.is_tuple());
}

Value jinja_bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    const std::string s = obj.as_string();
    auto method = [&](auto fn) { return Value::callable("str." + name, fn); };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      bool left = name != "rstrip", right = name != "lstrip";
      return method([s, left, right](Interpreter&, CallArgs& a) {
        const Value& chars = arg_or(a, 0, "chars", Value::none());
        if (chars.is_none()) return Value::string(python_strip(s, nullptr, left, right));
        std::string c = need_string(chars, "strip argument");
        return Value::string(python_strip(s, &c, left, right));
      });
    }
    if (name == "startswith" || name == "endswith") {
      bool suffix = name == "endswith";
      return method([s, suffix](Interpreter&, CallArgs& a) {
        if (a.positional.empty()) throw_render_error("startswith/endswith needs an argument");
        return Value::boolean(prefix_test(s, a.positional[0], suffix));
      });
    }
    if (name == "split" || name == "rsplit") {
      bool r = name == "rsplit";
      return method([s, r](Interpreter&, CallArgs& a) {
        const Value& sep = arg_or(a, 0, "sep", Value::none());
        int64_t maxsplit = arg_or(a, 1, "maxsplit", Value::integer(-1)).as_int();
        if (r && maxsplit >= 0) throw JinjaError(ErrorKind::kUnsupported, "unsupported str.rsplit with maxsplit");
        if (sep.is_none()) return Value::list(split_whitespace(s, maxsplit));
        return Value::list(split_on(s, need_string(sep, "separator"), maxsplit));
      });
    }
    if (name == "upper") return method([s](Interpreter&, CallArgs&) { return Value::string(python_upper(s)); });
    if (name == "lower") return method([s](Interpreter&, CallArgs&) { return Value::string(python_lower(s)); });
    if (name == "title") return method([s](Interpreter&, CallArgs&) { return Value::string(python_str_title(s)); });
    if (name == "capitalize") {
      return method([s](Interpreter&, CallArgs&) { return Value::string(python_capitalize(s)); });
    }
    if (name == "replace") {
      return method([s](Interpreter&, CallArgs& a) {
        if (a.positional.size() < 2) throw_render_error("str.replace needs two arguments");
        int64_t count = arg_or(a, 2, "count", Value::integer(-1)).as_int();
        return Value::string(python_str_replace(s, need_string(a.positional[0], "old"),
                                                need_string(a.positional[1], "new"), count));
      });
    }
    if (name == "join") {
      return method([s](Interpreter&, CallArgs& a) {
        if (a.positional.empty()) throw_render_error("str.join needs an argument");
        std::string out;
        const Value& seq = a.positional[0];
        ValueList items = seq.is_list() ? seq.as_list() : ValueList{};
        if (!seq.is_list()) throw_render_error("str.join argument must be a list");
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += s;
          out += need_string(items[i], "sequence item");
        }
        return Value::string(std::move(out));
      });
    }
    if (name == "find" || name == "count") {
      bool count = name == "count";
      return method([s, count](Interpreter&, CallArgs& a) {
        if (a.positional.empty()) throw_render_error("str.find/count needs an argument");
        std::string sub = need_string(a.positional[0], "substring");
        if (!count) {
          size_t at = s.find(sub);
          return Value::integer(at == std::string::npos ? -1 : static_cast<int64_t>(utf8_length(s.substr(0, at))));
        }
        if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
        int64_t n = 0;
        for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
        return Value::integer(n);
      });
    }
    if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "islower" || name == "isupper") {
      std::string which = name;
      return method([s, which](Interpreter&, CallArgs&) {
        if (s.empty()) return Value::boolean(false);
        bool all = true, any_cased = false;
        for (char c : s) {
          if (which == "isdigit") all = all && c >= '0' && c <= '9';
          if (which == "isspace") all = all && is_python_space(static_cast<unsigned char>(c));
          if (which == "isalpha") all = all && is_ascii_alpha(c);
          if (which == "islower") all = all && !(c >= 'A' && c <= 'Z');
          if (which == "isupper") all = all && !(c >= 'a' && c <= 'z');
          any_cased = any_cased || is_ascii_alpha(c);
        }
        if (which == "islower" || which == "isupper") all = all && any_cased;
        return Value::boolean(all);
      });
    }
    return Value();
  }
  if (obj.is_dict()) {
    const Value self = obj;
    if (name == "items") {
      return Value::callable("dict.items", [self](Interpreter&, CallArgs&) {
        ValueList items;
        for (const auto& [k, v] : self.as_dict().items) items.push_back(Value::list({Value::string(k), v}, true));
        return Value::list(std::move(items));
      });
    }
    if (name == "keys" || name == "values") {
      bool keys = name == "keys";
      return Value::callable("dict." + name, [self, keys](Interpreter&, CallArgs&) {
        ValueList items;
        for (const auto& [k, v] : self.as_dict().items) items.push_back(keys ? Value::string(k) : v);
        return Value::list(std::move(items));
      });
    }
    if (name == "get") {
      return Value::callable("dict.get", [self](Interpreter&, CallArgs& a) {
        if (a.positional.empty()) throw_render_error("dict.get needs a key");
        const Value& key = a.positional[0];
        if (key.is_string()) {
          if (const Value* v = self.as_dict().find(key.as_string())) return *v;
        }
        return a.positional.size() > 1 ? a.positional[1] : Value::none();
      });
    }
    return Value();
  }
  if (obj.is_list()) {
    static const char* kMutating[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"};
    for (const char* m : kMutating) {
      if (name == m) {
        return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() +
                                "' object is unsafe (chat templates render in an immutable sandbox)");
      }
    }
  }
  return Value();
}

void jinja_add_globals(std::unordered_map<std::string, Value>& globals) {
  globals["range"] = Value::callable("range", [](Interpreter& in, CallArgs& a) {
    if (a.positional.empty() || a.positional.size() > 3) throw_render_error("range expected 1 to 3 arguments");
    for (const auto& v : a.positional) {
      if (!v.is_int() && !v.is_bool()) throw_render_error("range() arguments must be integers, not " + v.type_name());
    }
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = a.positional[0].as_int();
    } else {
      start = a.positional[0].as_int();
      stop = a.positional[1].as_int();
      if (a.positional.size() == 3) step = a.positional[2].as_int();
    }
    if (step == 0) throw_render_error("range() arg 3 must not be zero");
    ValueList items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      in.count_iterations(1);
      items.push_back(Value::integer(i));
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    return Value::list(std::move(items));
  });
  auto make_dict = [](CallArgs& a) {
    Dict d;
    if (!a.positional.empty()) {
      if (a.positional.size() > 1 || !a.positional[0].is_dict()) {
        throw JinjaError(ErrorKind::kUnsupported, "unsupported positional argument (only one dict is supported)");
      }
      d = a.positional[0].as_dict();
    }
    for (auto& [k, v] : a.keyword) d.set(k, v);
    return d;
  };
  globals["namespace"] = Value::callable("namespace", [make_dict](Interpreter&, CallArgs& a) {
    Dict d = make_dict(a);
    for (const auto& kv : d.items) {
      if (!kv.first.empty() && kv.first[0] == '_') {
        throw_render_error("chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                           kv.first + "'");
      }
    }
    return Value::namespace_object(std::move(d));
  });
  globals["dict"] = Value::callable("dict", [make_dict](Interpreter&, CallArgs& a) { return Value::dict(make_dict(a)); });
  globals["raise_exception"] = Value::callable("raise_exception", [](Interpreter&, CallArgs& a) -> Value {
    std::string message = a.positional.empty() ? std::string() : a.positional[0].to_str();
    throw JinjaError(ErrorKind::kRaised, message);
  });
  globals["strftime_now"] = Value::callable("strftime_now", [](Interpreter&, CallArgs& a) {
    if (a.positional.empty() || !a.positional[0].is_string()) throw_render_error("strftime_now needs a format string");
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[256];
    size_t n = std::strftime(buf, sizeof(buf), a.positional[0].as_string().c_str(), &local);
    return Value::string(std::string(buf, n));
  });
}

}  // namespace punica::jinja
