// The values a Jinja template computes with, modelled on the Python objects jinja2 uses (a chat template
// only ever sees JSON-like data): Undefined, None, bool, int, float, str, list/tuple, dict, namespace and
// callables (builtins, macros). Lists and dicts are immutable (transformers renders with jinja2's
// ImmutableSandboxedEnvironment, where append/update are refused), so they are shared, not copied; only a
// namespace() is mutable. Printing, equality, ordering and truthiness follow Python's rules, because the
// rendered prompt must be byte-identical to jinja2's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace punica::jinja {

struct SourcePos {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based, in bytes
};

enum class ErrorKind {
  kSyntax,       // the template text is malformed
  kUnsupported,  // valid Jinja that this interpreter does not implement
  kRender,       // a runtime error (type error, undefined value used, bad call)
  kRaised,       // the template called raise_exception(message)
  kLimit,        // a runaway-template guard tripped
};

// The interpreter reports errors by throwing JinjaError internally (deep recursion in the parser and the
// evaluator would make Status plumbing through every node noisy); ChatTemplate catches it at its API and
// turns it into a Status. It never escapes the tokenizer library.
class JinjaError : public std::runtime_error {
 public:
  JinjaError(ErrorKind kind, std::string message, SourcePos pos = {})
      : std::runtime_error(message), kind_(kind), message_(std::move(message)), pos_(pos) {}
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  SourcePos pos() const { return pos_; }
  void set_pos_if_unknown(SourcePos pos) {
    if (pos_.line == 0) pos_ = pos;
  }

 private:
  ErrorKind kind_;
  std::string message_;
  SourcePos pos_;
};

[[noreturn]] void throw_render_error(std::string message);

class Value;
class Interpreter;
using ValueList = std::vector<Value>;

// A dict, in insertion order (Python 3.7+ dicts keep it, and tojson/items() expose it). Keys are strings:
// the only keys that JSON messages and chat templates use.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* keyword_arg(std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // Undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double d);
  static Value string(std::string s);
  static Value list(ValueList items, bool is_tuple = false);
  static Value dict(Dict d);
  static Value namespace_object(Dict d);
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
  static Value from_json(const nlohmann::ordered_json& j);
  static Value from_json(const nlohmann::json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }   // also for bool (Python: bool is an int)
  double as_double() const;                // int, bool or float
  const std::string& as_string() const { return *s_; }
  const ValueList& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }       // dict or namespace
  Dict& namespace_dict() const { return *dict_; }      // namespace only: the one mutable object
  const Callable& as_callable() const { return *fn_; }
  const std::string& undefined_hint() const { return hint_; }
  // Nesting depth of lists/dicts (0 for scalars), bounded at creation so that printing, comparing and
  // destroying a value cannot exhaust the stack; and whether a namespace is inside (namespaces are the one
  // mutable object, so storing one inside another could make a cycle).
  int depth() const { return depth_; }
  bool holds_namespace() const { return holds_namespace_; }
  static constexpr int kMaxDepth = 256;

  // Python truthiness (Undefined is falsy).
  bool truthy() const;
  // Python str(): what {{ value }} prints. Undefined prints as "".
  std::string to_str() const;
  // Python repr(): how a value looks inside a printed list or dict.
  std::string repr() const;
  // Python type name, for error messages ("str", "NoneType", "list").
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Callable> fn_;
  int depth_ = 0;
  bool holds_namespace_ = false;
  std::string hint_;  // Undefined: the name that was missing, for "'x' is undefined"
};

// Python ==, with bool == int == float numerically and deep list/dict equality.
bool values_equal(const Value& a, const Value& b);
// Python <: numbers with numbers, strings with strings, lists lexicographically; else a render error.
bool value_less(const Value& a, const Value& b);

// Python float repr ("1.0", "0.1", "1e-05", "1e+20", "inf").
std::string python_float_repr(double d);
// Python repr() of a str.
std::string python_string_repr(std::string_view s);

struct JsonDumpOptions {
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps(value, ...) as Python does it (transformers' tojson filter).
std::string json_dumps(const Value& v, const JsonDumpOptions& opts);

// The items a for loop, `in`, list(), join and the sequence filters walk: list items, dict keys, str code
// points; undefined walks as empty; anything else is a render error.
ValueList value_items(const Value& v);

// UTF-8 helpers: Python indexes str by code point.
std::vector<std::string_view> utf8_code_points(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace punica::jinja
