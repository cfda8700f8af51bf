// Tree-walking evaluator for a parsed Template, with jinja2's scoping (each for-loop iteration and each
// macro call gets its own frame; `set` writes the innermost frame, so namespace() is how a template carries
// state out of a loop) and guards against runaway templates: output size, loop iterations, call depth.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace punica::jinja {

struct RenderLimits {
  size_t max_output_bytes = 64u << 20;
  uint64_t max_loop_iterations = 10'000'000;  // all loops of one render together
  int max_call_depth = 64;                     // nested macro calls
};

class Interpreter {
 public:
  Interpreter(const Template& tmpl, const RenderLimits& limits) : tmpl_(tmpl), limits_(limits) {}

  // Renders with `globals` as the outermost frame. Throws JinjaError.
  std::string render(std::unordered_map<std::string, Value> globals);

  // Used by builtins.
  Value call(const Value& callee, CallArgs& args);
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  void count_iterations(uint64_t n);
  const RenderLimits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Frame = std::unordered_map<std::string, Value>;

  Flow exec_body(const Body& body);
  Flow exec(const Stmt& s);
  void exec_for(const Stmt& s);
  void exec_set(const Stmt& s);
  void assign(const std::vector<std::string>& targets, const Value& v, SourcePos pos);
  Value make_macro(const Stmt& s);
  std::string capture(const Body& body);

  Value eval(const Expr& e);
  Value eval_binary(const Expr& e);
  Value eval_compare(const Expr& e);
  Value eval_slice(const Expr& e);
  Value apply_filter(const Expr& e, Value input);
  Value lookup(const std::string& name) const;
  void emit(std::string_view text);

  const Template& tmpl_;
  RenderLimits limits_;
  std::vector<Frame> frames_;
  std::string* out_ = nullptr;
  uint64_t iterations_ = 0;
  int call_depth_ = 0;
};

// The builtin filters, tests and globals (builtins.cpp).
bool jinja_is_known_filter(std::string_view name);
bool jinja_is_known_test(std::string_view name);
Value jinja_apply_filter(Interpreter& in, const std::string& name, Value input, CallArgs& args);
bool jinja_apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
// Methods of str and dict values ("strip", "items", ...); Undefined when the value has no such method.
Value jinja_bound_method(const Value& obj, const std::string& name);
void jinja_add_globals(std::unordered_map<std::string, Value>& globals);

// Python arithmetic used by both the evaluator and filters.
Value python_binary_op(const std::string& op, const Value& a, const Value& b);
// Python str.strip()/lstrip()/rstrip() with chars=nullptr meaning Unicode whitespace.
std::string python_strip(std::string_view s, const std::string* chars, bool left, bool right);
// Python slicing of a list or str by code points.
Value python_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

}  // namespace punica::jinja
