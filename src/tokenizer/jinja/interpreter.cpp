#include "tokenizer/jinja/interpreter.h"

#include <utility>

namespace punica::jinja {

namespace {

[[noreturn]] void throw_undefined(const Value& v) {
  throw_render_error(v.undefined_hint().empty() ? "undefined value used" : v.undefined_hint());
}

}  // namespace

std::string Interpreter::render(std::unordered_map<std::string, Value> globals) {
  frames_.clear();
  frames_.push_back(std::move(globals));
  std::string out;
  out_ = &out;
  iterations_ = 0;
  call_depth_ = 0;
  exec_body(tmpl_.body);
  out_ = nullptr;
  return out;
}

void Interpreter::emit(std::string_view text) {
  if (out_->size() + text.size() > limits_.max_output_bytes) {
    throw JinjaError(ErrorKind::kLimit,
                     "rendered output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
  out_->append(text);
}

void Interpreter::count_iterations(uint64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations) {
    throw JinjaError(ErrorKind::kLimit, "template ran more than " + std::to_string(limits_.max_loop_iterations) +
                                            " loop iterations");
  }
}

Value Interpreter::lookup(const std::string& name) const {
  for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
    auto found = it->find(name);
    if (found != it->end()) return found->second;
  }
  return Value::undefined("'" + name + "' is undefined");
}

std::string Interpreter::capture(const Body& body) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  try {
    exec_body(body);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  if (saved->size() + buffer.size() > limits_.max_output_bytes) emit(buffer);  // reports the limit
  return buffer;
}

Interpreter::Flow Interpreter::exec_body(const Body& body) {
  for (const auto& s : body) {
    Flow f = exec(*s);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s) {
  try {
    switch (s.kind) {
      case Stmt::Kind::kText: emit(s.text); return Flow::kNormal;
      case Stmt::Kind::kOutput: emit(eval(*s.expr).to_str()); return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (!cond || eval(*cond).truthy()) return exec_body(body);
        }
        return Flow::kNormal;
      case Stmt::Kind::kFor: exec_for(s); return Flow::kNormal;
      case Stmt::Kind::kSet: exec_set(s); return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        Value v = Value::string(capture(s.body));
        if (s.filter) v = apply_filter(*s.filter, v);
        assign(s.targets, v, s.pos);
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro: frames_.back()[s.name] = make_macro(s); return Flow::kNormal;
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
      case Stmt::Kind::kFilterBlock: {
        Value v = apply_filter(*s.expr, Value::string(capture(s.body)));
        emit(v.to_str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kScope: return exec_body(s.body);
    }
  } catch (JinjaError& err) {
    err.set_pos_if_unknown(s.pos);
    throw;
  }
  return Flow::kNormal;
}

void Interpreter::assign(const std::vector<std::string>& targets, const Value& v, SourcePos pos) {
  Frame& frame = frames_.back();
  if (targets.size() == 1) {
    frame[targets[0]] = v;
    return;
  }
  ValueList items = value_items(v);
  if (items.size() != targets.size()) {
    throw JinjaError(ErrorKind::kRender,
                     "cannot unpack " + std::to_string(items.size()) + " values into " +
                         std::to_string(targets.size()) + " names",
                     pos);
  }
  for (size_t i = 0; i < targets.size(); ++i) frame[targets[i]] = items[i];
}

void Interpreter::exec_set(const Stmt& s) {
  Value v = eval(*s.expr);
  if (s.target_object.empty()) {
    assign(s.targets, v, s.pos);
    return;
  }
  Value obj = lookup(s.target_object);
  if (!obj.is_namespace()) {
    throw JinjaError(ErrorKind::kRender,
                     "cannot assign attribute on '" + s.target_object + "' (a " + obj.type_name() +
                         ", not a namespace())",
                     s.pos);
  }
  if (!s.targets[0].empty() && s.targets[0][0] == '_') {
    throw JinjaError(ErrorKind::kRender,
                     "chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                         s.targets[0] + "'",
                     s.pos);
  }
  if (v.is_namespace() || v.holds_namespace()) {
    throw JinjaError(ErrorKind::kUnsupported, "unsupported: storing a namespace inside a namespace attribute", s.pos);
  }
  if (v.depth() >= Value::kMaxDepth) {
    throw JinjaError(ErrorKind::kLimit, "value nested deeper than " + std::to_string(Value::kMaxDepth) + " levels", s.pos);
  }
  obj.namespace_dict().set(s.targets[0], v);
}

void Interpreter::exec_for(const Stmt& s) {
  ValueList items = value_items(eval(*s.expr));
  if (s.filter) {
    ValueList kept;
    for (auto& item : items) {
      count_iterations(1);
      frames_.emplace_back();
      assign(s.targets, item, s.pos);
      bool keep = eval(*s.filter).truthy();
      frames_.pop_back();
      if (keep) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_body(s.else_body);
    return;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    count_iterations(1);
    Dict loop;
    loop.items.reserve(12);
    loop.items.emplace_back("index", Value::integer(i + 1));
    loop.items.emplace_back("index0", Value::integer(i));
    loop.items.emplace_back("revindex", Value::integer(n - i));
    loop.items.emplace_back("revindex0", Value::integer(n - i - 1));
    loop.items.emplace_back("first", Value::boolean(i == 0));
    loop.items.emplace_back("last", Value::boolean(i == n - 1));
    loop.items.emplace_back("length", Value::integer(n));
    loop.items.emplace_back("depth", Value::integer(1));
    loop.items.emplace_back("depth0", Value::integer(0));
    loop.items.emplace_back("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    loop.items.emplace_back("nextitem", i + 1 < n ? items[i + 1] : Value::undefined("there is no next item"));
    loop.items.emplace_back("cycle", Value::callable("loop.cycle", [i](Interpreter&, CallArgs& args) {
      if (args.positional.empty()) throw_render_error("loop.cycle() needs at least one argument");
      return args.positional[static_cast<size_t>(i) % args.positional.size()];
    }));
    frames_.emplace_back();
    frames_.back()["loop"] = Value::dict(std::move(loop));
    assign(s.targets, items[i], s.pos);
    Flow f;
    try {
      f = exec_body(s.body);
    } catch (...) {
      frames_.pop_back();
      throw;
    }
    frames_.pop_back();
    if (f == Flow::kBreak) break;
  }
}

Value Interpreter::make_macro(const Stmt& s) {
  const Stmt* macro = &s;
  return Value::callable(s.name, [macro](Interpreter& in, CallArgs& args) -> Value {
    if (args.positional.size() > macro->params.size()) {
      throw_render_error("macro '" + macro->name + "' takes not more than " + std::to_string(macro->params.size()) +
                         " argument(s)");
    }
    if (in.call_depth_ >= in.limits_.max_call_depth) {
      throw JinjaError(ErrorKind::kLimit,
                       "macro calls nest deeper than " + std::to_string(in.limits_.max_call_depth) + " levels");
    }
    // A macro sees the template's top-level names and its own arguments, not its caller's locals.
    std::vector<Frame> saved(std::make_move_iterator(in.frames_.begin() + 1), std::make_move_iterator(in.frames_.end()));
    in.frames_.resize(1);
    in.frames_.emplace_back();
    ++in.call_depth_;
    auto restore = [&]() {
      --in.call_depth_;
      in.frames_.resize(1);
      for (auto& f : saved) in.frames_.push_back(std::move(f));
    };
    try {
      for (const auto& [key, value] : args.keyword) {
        bool known = false;
        for (const auto& p : macro->params) known = known || p.first == key;
        if (!known) throw_render_error("macro '" + macro->name + "' takes no keyword argument '" + key + "'");
      }
      for (size_t i = 0; i < macro->params.size(); ++i) {
        const auto& [pname, pdefault] = macro->params[i];
        const Value* kw = args.keyword_arg(pname);
        Value v;
        if (i < args.positional.size()) {
          v = args.positional[i];
        } else if (kw) {
          v = *kw;
        } else if (pdefault) {
          v = in.eval(*pdefault);
        } else {
          v = Value::undefined("'" + pname + "' is undefined (missing argument of macro '" + macro->name + "')");
        }
        in.frames_.back()[pname] = v;
      }
      std::string text = in.capture(macro->body);
      restore();
      return Value::string(std::move(text));
    } catch (...) {
      restore();
      throw;
    }
  });
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) throw_undefined(callee);
  if (!callee.is_callable()) throw_render_error("'" + callee.type_name() + "' object is not callable");
  return callee.as_callable().fn(*this, args);
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined: throw_undefined(obj);
    case Value::Kind::kDict: {
      Value method = jinja_bound_method(obj, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Kind::kNamespace: {
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined("'Namespace object' has no attribute '" + name + "'");
    }
    case Value::Kind::kString: {
      Value method = jinja_bound_method(obj, name);
      if (!method.is_undefined()) return method;
      return Value::undefined("'str object' has no attribute '" + name + "'");
    }
    default: {
      Value method = jinja_bound_method(obj, name);
      if (!method.is_undefined() || !method.undefined_hint().empty()) return method;
      return Value::undefined("'" + obj.repr() + "' has no attribute '" + name + "'");
    }
  }
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) throw_undefined(obj);
  if (key.is_undefined()) return Value::undefined("undefined subscript");
  if (obj.is_mapping()) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
      Value method = obj.is_dict() ? jinja_bound_method(obj, key.as_string()) : Value();
      if (!method.is_undefined()) return method;
      return Value::undefined("'dict object' has no attribute '" + key.as_string() + "'");
    }
    return Value::undefined("'dict object' has no attribute " + key.repr());
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.as_list();
      int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined(obj.type_name() + " object has no element " + key.to_str());
      return items[static_cast<size_t>(i)];
    }
    auto cps = utf8_code_points(obj.as_string());
    int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("str object has no element " + key.to_str());
    return Value::string(std::string(cps[static_cast<size_t>(i)]));
  }
  if (key.is_string()) return getattr(obj, key.as_string());
  return Value::undefined("'" + obj.type_name() + "' object has no element " + key.repr());
}

Value Interpreter::apply_filter(const Expr& e, Value input) {
  // Filter chains in {% filter %} blocks and `set x | f` have a null innermost operand: the captured text.
  if (e.args[0]) {
    input = e.args[0]->kind == Expr::Kind::kFilter && !e.args[0]->args[0] ? apply_filter(*e.args[0], input)
                                                                        : eval(*e.args[0]);
  }
  CallArgs args;
  for (size_t i = 1; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
  try {
    return jinja_apply_filter(*this, e.name, std::move(input), args);
  } catch (JinjaError& err) {
    err.set_pos_if_unknown(e.pos);
    throw;
  }
}

Value Interpreter::eval(const Expr& e) {
  try {
    switch (e.kind) {
      case Expr::Kind::kConst: return e.constant;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kGetAttr: return getattr(eval(*e.args[0]), e.name);
      case Expr::Kind::kGetItem: {
        Value obj = eval(*e.args[0]);
        return getitem(obj, eval(*e.args[1]));
      }
      case Expr::Kind::kSlice: return eval_slice(e);
      case Expr::Kind::kCall: {
        Value callee = eval(*e.args[0]);
        CallArgs args;
        for (size_t i = 1; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
        for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
        return call(callee, args);
      }
      case Expr::Kind::kFilter: return apply_filter(e, Value());
      case Expr::Kind::kTest: {
        Value v = eval(*e.args[0]);
        CallArgs args;
        for (size_t i = 1; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
        for (const auto& [k, val] : e.kwargs) args.keyword.emplace_back(k, eval(*val));
        bool r = jinja_apply_test(*this, e.name, v, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.is_undefined()) throw_undefined(v);
        if (!v.is_number()) throw_render_error("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v.is_bool() ? Value::integer(v.as_int()) : v;
        if (v.is_float()) return Value::floating(-v.as_double());
        if (v.as_int() == INT64_MIN) throw_render_error("integer result out of 64-bit range");
        return Value::integer(-v.as_int());
      }
      case Expr::Kind::kBinary: return eval_binary(e);
      case Expr::Kind::kCompare: return eval_compare(e);
      case Expr::Kind::kCondExpr: {
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the inline if-expression evaluated to false and has no else section");
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        items.reserve(e.args.size());
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (!k.is_string()) {
            throw JinjaError(ErrorKind::kUnsupported, "unsupported dict key of type '" + k.type_name() +
                                                          "' (only string keys are supported)");
          }
          d.set(k.as_string(), eval(*e.args[i + 1]));
        }
        return Value::dict(std::move(d));
      }
    }
  } catch (JinjaError& err) {
    err.set_pos_if_unknown(e.pos);
    throw;
  }
  return Value();
}

Value Interpreter::eval_binary(const Expr& e) {
  if (e.name == "and") {
    Value l = eval(*e.args[0]);
    return l.truthy() ? eval(*e.args[1]) : l;
  }
  if (e.name == "or") {
    Value l = eval(*e.args[0]);
    return l.truthy() ? l : eval(*e.args[1]);
  }
  Value l = eval(*e.args[0]);
  Value r = eval(*e.args[1]);
  if (e.name == "~") {
    std::string s = l.to_str();
    s += r.to_str();
    if (s.size() > limits_.max_output_bytes) throw JinjaError(ErrorKind::kLimit, "string grows past the output limit");
    return Value::string(std::move(s));
  }
  if (l.is_undefined()) throw_undefined(l);
  if (r.is_undefined()) throw_undefined(r);
  if (e.name == "*" && ((l.is_string() || l.is_list()) && r.is_int())) {
    int64_t size = l.is_string() ? static_cast<int64_t>(l.as_string().size()) : static_cast<int64_t>(l.as_list().size());
    if (r.as_int() > 0 && size > 0 && static_cast<uint64_t>(size) * static_cast<uint64_t>(r.as_int()) > limits_.max_output_bytes) {
      throw JinjaError(ErrorKind::kLimit, "repetition grows past the output limit");
    }
  }
  return python_binary_op(e.name, l, r);
}

Value Interpreter::eval_compare(const Expr& e) {
  Value left = eval(*e.args[0]);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i + 1]);
    const std::string& op = e.ops[i];
    bool r = false;
    if (op == "==") {
      r = values_equal(left, right);
    } else if (op == "!=") {
      r = !values_equal(left, right);
    } else if (op == "in" || op == "notin") {
      CallArgs args;
      args.positional.push_back(right);
      r = jinja_apply_test(*this, "in", left, args);
      if (op == "notin") r = !r;
    } else {
      if (left.is_undefined()) throw_undefined(left);
      if (right.is_undefined()) throw_undefined(right);
      if (op == "<") r = value_less(left, right);
      else if (op == ">") r = value_less(right, left);
      else if (op == "<=") r = !value_less(right, left);
      else r = !value_less(left, right);
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interpreter::eval_slice(const Expr& e) {
  Value obj = eval(*e.args[0]);
  if (obj.is_undefined()) throw_undefined(obj);
  Value parts[3];
  for (int i = 0; i < 3; ++i) {
    if (e.args[1 + i]) parts[i] = eval(*e.args[1 + i]);
  }
  return python_slice(obj, parts[0], parts[1], parts[2]);
}

}  // namespace punica::jinja
