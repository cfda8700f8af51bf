// jinja2's builtin filters and tests, as chat templates use them, plus transformers' tojson override
// (json.dumps with ensure_ascii=False and no HTML escaping).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "tokenizer/jinja/interpreter.h"

namespace punica::jinja {

std::string python_str_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
std::string python_upper(const std::string& s);
std::string python_lower(const std::string& s);
std::string python_capitalize(const std::string& s);

namespace {

using FilterFn = Value (*)(Interpreter&, Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

Value arg(const CallArgs& a, size_t index, const char* name, const Value& fallback) {
  if (index < a.positional.size()) return a.positional[index];
  if (const Value* v = a.keyword_arg(name)) return *v;
  return fallback;
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(utf8_length(v.as_string()));
    case Value::Kind::kList: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: return static_cast<int64_t>(v.as_dict().items.size());
    default: throw_render_error("object of type '" + v.type_name() + "' has no len()");
  }
}

// jinja2's make_attrgetter: "a.b.0" walks items (ints for digit parts).
Value get_attribute_path(Interpreter& in, Value v, const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = in.getitem(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

// select/reject/selectattr/rejectattr share this: test name in positional[first_test_arg], extra args after.
Value filter_select(Interpreter& in, Value& input, CallArgs& a, bool by_attribute, bool keep_when) {
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (a.positional.empty() || !a.positional[0].is_string()) throw_render_error("selectattr/rejectattr need an attribute name");
    attribute = a.positional[0].as_string();
    next = 1;
  }
  std::string test;
  CallArgs test_args;
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) throw_render_error("the test name must be a string");
    test = a.positional[next].as_string();
    if (!jinja_is_known_test(test)) throw JinjaError(ErrorKind::kUnsupported, "unknown test '" + test + "'");
    test_args.positional.assign(a.positional.begin() + static_cast<long>(next) + 1, a.positional.end());
  }
  ValueList out;
  for (const auto& item : value_items(input)) {
    Value subject = by_attribute ? get_attribute_path(in, item, attribute) : item;
    bool r = test.empty() ? subject.truthy() : jinja_apply_test(in, test, subject, test_args);
    if (r == keep_when) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_selectattr(Interpreter& in, Value& v, CallArgs& a) { return filter_select(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, Value& v, CallArgs& a) { return filter_select(in, v, a, true, false); }
Value f_select(Interpreter& in, Value& v, CallArgs& a) { return filter_select(in, v, a, false, true); }
Value f_reject(Interpreter& in, Value& v, CallArgs& a) { return filter_select(in, v, a, false, false); }

Value f_map(Interpreter& in, Value& v, CallArgs& a) {
  ValueList out;
  if (const Value* attr = a.keyword_arg("attribute")) {
    const Value* def = a.keyword_arg("default");
    for (const auto& item : value_items(v)) {
      Value x = get_attribute_path(in, item, attr->to_str());
      out.push_back(x.is_undefined() && def ? *def : x);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) throw_render_error("map needs a filter name or attribute=");
  std::string filter = a.positional[0].as_string();
  if (!jinja_is_known_filter(filter)) throw JinjaError(ErrorKind::kUnsupported, "unknown filter '" + filter + "'");
  for (const auto& item : value_items(v)) {
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    out.push_back(jinja_apply_filter(in, filter, item, rest));
  }
  return Value::list(std::move(out));
}

Value f_tojson(Interpreter&, Value& v, CallArgs& a) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  JsonDumpOptions o;
  o.ensure_ascii = arg(a, 0, "ensure_ascii", Value::boolean(false)).truthy();
  const Value& indent = arg(a, 1, "indent", Value::none());
  if (indent.is_int() || indent.is_bool()) {
    if (indent.as_int() > 1024) throw_render_error("tojson indent above 1024");
    o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, indent.as_int())), ' ');
  } else if (indent.is_string()) {
    o.indent = indent.as_string();
  } else if (!indent.is_none()) {
    throw_render_error("tojson indent must be an int, a str or None");
  }
  if (o.indent) o.item_separator = ",";
  const Value& seps = arg(a, 2, "separators", Value::none());
  if (seps.is_list() && seps.as_list().size() == 2 && seps.as_list()[0].is_string() && seps.as_list()[1].is_string()) {
    o.item_separator = seps.as_list()[0].as_string();
    o.key_separator = seps.as_list()[1].as_string();
  } else if (!seps.is_none()) {
    throw_render_error("tojson separators must be a pair of strings");
  }
  o.sort_keys = arg(a, 3, "sort_keys", Value::boolean(false)).truthy();
  if (v.is_undefined()) throw_render_error(v.undefined_hint().empty() ? "tojson: value is undefined" : v.undefined_hint());
  return Value::string(json_dumps(v, o));
}

Value f_trim(Interpreter&, Value& v, CallArgs& a) {
  const Value& chars = arg(a, 0, "chars", Value::none());
  if (chars.is_none()) return Value::string(python_strip(v.to_str(), nullptr, true, true));
  std::string c = chars.to_str();
  return Value::string(python_strip(v.to_str(), &c, true, true));
}
Value f_length(Interpreter&, Value& v, CallArgs&) { return Value::integer(length_of(v)); }
Value f_upper(Interpreter&, Value& v, CallArgs&) { return Value::string(python_upper(v.to_str())); }
Value f_lower(Interpreter&, Value& v, CallArgs&) { return Value::string(python_lower(v.to_str())); }
Value f_capitalize(Interpreter&, Value& v, CallArgs&) { return Value::string(python_capitalize(v.to_str())); }
Value f_title(Interpreter&, Value& v, CallArgs&) {
  // jinja2 do_title: words start after '-', whitespace, or an opening bracket.
  std::string s = v.to_str(), out;
  bool word_start = true;
  for (char c : s) {
    bool sep = c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '(' ||
               c == '{' || c == '[' || c == '<';
    if (sep) {
      out += c;
      word_start = true;
    } else {
      out += word_start ? python_upper(std::string(1, c)) : python_lower(std::string(1, c));
      word_start = false;
    }
  }
  return Value::string(out);
}
Value f_replace(Interpreter&, Value& v, CallArgs& a) {
  if (a.positional.size() < 2) throw_render_error("replace needs two arguments");
  int64_t count = arg(a, 2, "count", Value::none()).is_none() ? -1 : arg(a, 2, "count", Value::none()).as_int();
  return Value::string(python_str_replace(v.to_str(), a.positional[0].to_str(), a.positional[1].to_str(), count));
}
Value f_join(Interpreter& in, Value& v, CallArgs& a) {
  std::string sep = arg(a, 0, "d", Value::string("")).to_str();
  const Value& attr = arg(a, 1, "attribute", Value::none());
  std::string out;
  bool first = true;
  for (const auto& item : value_items(v)) {
    if (!first) out += sep;
    first = false;
    out += attr.is_none() ? item.to_str() : get_attribute_path(in, item, attr.to_str()).to_str();
  }
  return Value::string(out);
}
Value f_default(Interpreter&, Value& v, CallArgs& a) {
  bool boolean = arg(a, 1, "boolean", Value::boolean(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", Value::string(""));
  return v;
}
Value f_first(Interpreter&, Value& v, CallArgs&) {
  ValueList items = value_items(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}
Value f_last(Interpreter&, Value& v, CallArgs&) {
  ValueList items = value_items(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}
Value f_list(Interpreter&, Value& v, CallArgs&) { return Value::list(value_items(v)); }
Value f_string(Interpreter&, Value& v, CallArgs&) { return Value::string(v.to_str()); }
// Python int(float) truncates; outside int64 we fall back to the default rather than overflow.
bool double_to_int64(double d, int64_t* out) {
  if (!std::isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

Value f_int(Interpreter&, Value& v, CallArgs& a) {
  Value def = arg(a, 0, "default", Value::integer(0));
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  int64_t converted = 0;
  if (v.is_float()) return double_to_int64(v.as_double(), &converted) ? Value::integer(converted) : def;
  if (v.is_string()) {
    std::string s = python_strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size() && errno == 0) return Value::integer(i);
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && double_to_int64(d, &converted)) return Value::integer(converted);
  }
  return def;
}
Value f_float(Interpreter&, Value& v, CallArgs& a) {
  Value def = arg(a, 0, "default", Value::floating(0.0));
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    std::string s = python_strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value::floating(d);
  }
  return def;
}
Value f_items(Interpreter&, Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_mapping()) throw_render_error("items filter needs a mapping, not " + v.type_name());
  ValueList out;
  for (const auto& [k, x] : v.as_dict().items) out.push_back(Value::list({Value::string(k), x}, true));
  return Value::list(std::move(out));
}
Value f_safe(Interpreter&, Value& v, CallArgs&) { return Value::string(v.to_str()); }
Value f_escape(Interpreter&, Value& v, CallArgs&) {
  std::string out;
  for (char c : v.to_str()) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(out);
}
Value f_abs(Interpreter&, Value& v, CallArgs&) {
  if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
  if (v.is_number()) {
    if (v.as_int() == INT64_MIN) throw_render_error("integer result out of 64-bit range");
    return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  throw_render_error("bad operand type for abs(): '" + v.type_name() + "'");
}
Value f_reverse(Interpreter&, Value& v, CallArgs&) {
  if (v.is_string()) return python_slice(v, Value(), Value(), Value::integer(-1));
  ValueList items = value_items(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}
Value sort_key(Interpreter& in, const Value& item, const Value& attr, bool case_sensitive) {
  Value k = attr.is_none() ? item : get_attribute_path(in, item, attr.to_str());
  if (!case_sensitive && k.is_string()) return Value::string(python_lower(k.as_string()));
  return k;
}
Value f_sort(Interpreter& in, Value& v, CallArgs& a) {
  bool reverse = arg(a, 0, "reverse", Value::boolean(false)).truthy();
  bool case_sensitive = arg(a, 1, "case_sensitive", Value::boolean(false)).truthy();
  Value attr = arg(a, 2, "attribute", Value::none());
  ValueList items = value_items(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) keyed.emplace_back(sort_key(in, item, attr, case_sensitive), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? value_less(y.first, x.first) : value_less(x.first, y.first);
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(kv.second);
  return Value::list(std::move(out));
}
Value f_unique(Interpreter& in, Value& v, CallArgs& a) {
  bool case_sensitive = arg(a, 0, "case_sensitive", Value::boolean(false)).truthy();
  Value attr = arg(a, 1, "attribute", Value::none());
  ValueList out, seen;
  for (const auto& item : value_items(v)) {
    Value k = sort_key(in, item, attr, case_sensitive);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, k); });
    if (!dup) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}
Value min_max(Interpreter& in, Value& v, CallArgs& a, bool want_max) {
  bool case_sensitive = arg(a, 0, "case_sensitive", Value::boolean(false)).truthy();
  Value attr = arg(a, 1, "attribute", Value::none());
  ValueList items = value_items(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    Value ki = sort_key(in, items[i], attr, case_sensitive), kb = sort_key(in, items[best], attr, case_sensitive);
    if (want_max ? value_less(kb, ki) : value_less(ki, kb)) best = i;
  }
  return items[best];
}
Value f_min(Interpreter& in, Value& v, CallArgs& a) { return min_max(in, v, a, false); }
Value f_max(Interpreter& in, Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_sum(Interpreter& in, Value& v, CallArgs& a) {
  Value attr = arg(a, 0, "attribute", Value::none());
  Value total = arg(a, 1, "start", Value::integer(0));
  for (const auto& item : value_items(v)) {
    total = python_binary_op("+", total, attr.is_none() ? item : get_attribute_path(in, item, attr.to_str()));
  }
  return total;
}
Value f_round(Interpreter&, Value& v, CallArgs& a) {
  int64_t precision = arg(a, 0, "precision", Value::integer(0)).as_int();
  std::string method = arg(a, 1, "method", Value::string("common")).to_str();
  if (!v.is_number()) throw_render_error("round needs a number");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_double() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
  return Value::floating(r / scale);
}
Value f_indent(Interpreter&, Value& v, CallArgs& a) {
  const Value& width = arg(a, 0, "width", Value::integer(4));
  bool first = arg(a, 1, "first", Value::boolean(false)).truthy();
  bool blank = arg(a, 2, "blank", Value::boolean(false)).truthy();
  if (!width.is_string() && width.as_int() > 1024) throw_render_error("indent width above 1024");
  std::string indention = width.is_string() ? width.as_string()
                                            : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  std::string s = v.to_str() + "\n";  // jinja2's quirk, so that splitlines() keeps a trailing empty line
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      lines.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  std::string rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) rv += "\n";
    bool indent_line = i > 0 && (blank || !lines[i].empty());
    rv += (indent_line ? indention : "") + lines[i];
  }
  return Value::string(first ? indention + rv : rv);
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> kFilters = {
      {"tojson", f_tojson}, {"trim", f_trim}, {"length", f_length}, {"count", f_length}, {"upper", f_upper},
      {"lower", f_lower}, {"capitalize", f_capitalize}, {"title", f_title}, {"replace", f_replace},
      {"join", f_join}, {"default", f_default}, {"d", f_default}, {"first", f_first}, {"last", f_last},
      {"list", f_list}, {"string", f_string}, {"int", f_int}, {"float", f_float}, {"items", f_items},
      {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"select", f_select}, {"reject", f_reject},
      {"map", f_map}, {"safe", f_safe}, {"escape", f_escape}, {"e", f_escape}, {"abs", f_abs},
      {"reverse", f_reverse}, {"sort", f_sort}, {"unique", f_unique}, {"min", f_min}, {"max", f_max},
      {"sum", f_sum}, {"round", f_round}, {"indent", f_indent},
  };
  return kFilters;
}

bool in_container(const Value& item, const Value& container) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        throw_render_error("'in <string>' requires string as left operand, not " + item.type_name());
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      return std::any_of(container.as_list().begin(), container.as_list().end(),
                         [&](const Value& x) { return values_equal(item, x); });
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default: throw_render_error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

const Value& test_arg(const CallArgs& a, const char* test) {
  if (a.positional.empty()) throw_render_error(std::string("test '") + test + "' needs an argument");
  return a.positional[0];
}

bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_iterable(Interpreter&, const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }
bool t_sequence(Interpreter&, const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_callable(Interpreter&, const Value& v, CallArgs&) { return v.is_callable(); }
bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return values_equal(v, test_arg(a, "equalto")); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !values_equal(v, test_arg(a, "ne")); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return value_less(v, test_arg(a, "lt")); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return value_less(test_arg(a, "gt"), v); }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return !value_less(test_arg(a, "le"), v); }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return !value_less(v, test_arg(a, "ge")); }
bool t_in(Interpreter&, const Value& v, CallArgs& a) { return in_container(v, test_arg(a, "in")); }
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value& o = test_arg(a, "sameas");
  if (v.kind() != o.kind()) return false;
  if (v.is_none() || v.is_undefined()) return true;
  if (v.is_bool()) return v.as_bool() == o.as_bool();
  if (v.is_list()) return &v.as_list() == &o.as_list();
  if (v.is_mapping()) return &v.as_dict() == &o.as_dict();
  return values_equal(v, o);
}
bool t_odd(Interpreter&, const Value& v, CallArgs&) { return v.is_number() && v.as_int() % 2 != 0; }
bool t_even(Interpreter&, const Value& v, CallArgs&) { return v.is_number() && v.as_int() % 2 == 0; }
bool t_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  int64_t d = test_arg(a, "divisibleby").as_int();
  if (d == 0) throw_render_error("divisibleby 0");
  return v.as_int() % d == 0;
}
bool t_lower(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && python_lower(v.as_string()) == v.as_string(); }
bool t_upper(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && python_upper(v.as_string()) == v.as_string(); }

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> kTests = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"string", t_string},
      {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence}, {"number", t_number},
      {"integer", t_integer}, {"float", t_float}, {"boolean", t_boolean}, {"true", t_true}, {"false", t_false},
      {"callable", t_callable}, {"equalto", t_eq}, {"eq", t_eq}, {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne},
      {"lt", t_lt}, {"<", t_lt}, {"lessthan", t_lt}, {"gt", t_gt}, {">", t_gt}, {"greaterthan", t_gt},
      {"le", t_le}, {"<=", t_le}, {"ge", t_ge}, {">=", t_ge}, {"in", t_in}, {"sameas", t_sameas},
      {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"lower", t_lower}, {"upper", t_upper},
  };
  return kTests;
}

}  // namespace

bool jinja_is_known_filter(std::string_view name) { return filters().count(std::string(name)) != 0; }
bool jinja_is_known_test(std::string_view name) { return tests().count(std::string(name)) != 0; }

Value jinja_apply_filter(Interpreter& in, const std::string& name, Value input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) throw JinjaError(ErrorKind::kUnsupported, "unknown filter '" + name + "'");
  return it->second(in, input, args);
}

bool jinja_apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw JinjaError(ErrorKind::kUnsupported, "unknown test '" + name + "'");
  return it->second(in, v, args);
}

}  // namespace punica::jinja
