// The syntax tree the parser builds and the evaluator walks. One Expr/Stmt struct per family with a kind
// tag (rather than a class per node) keeps the parser and evaluator short: chat templates are small.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace punica::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kConst,     // constant
    kName,      // name
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,      // args[0](args[1..], kwargs)
    kFilter,    // args[0] | name(args[1..], kwargs); args[0] is null inside a {% filter %} block
    kTest,      // args[0] is [not] name(args[1..])
    kUnary,     // op args[0]: "not", "-", "+"
    kBinary,    // args[0] op args[1]: + - * / // % ** ~ and or
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...: == != < > <= >= in notin
    kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
    kList,      // [args...]
    kTuple,     // (args...)
    kDict,      // {args[0]: args[1], args[2]: args[3], ...}
  };
  Kind kind = Kind::kConst;
  SourcePos pos;
  std::string name;  // name / attribute / filter / test / operator
  Value constant;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare
  bool negated = false;          // kTest: "is not"
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches: (cond, body)...; a final (null, body) is the else
    kFor,          // for targets in expr [if filter]: body [else else_body]
    kSet,          // set targets = expr, or set target_object.name = expr
    kSetBlock,     // set targets[0] [| filters]: body
    kMacro,        // macro name(params): body
    kBreak,
    kContinue,
    kFilterBlock,  // filter chain: body (expr is the filter chain with a null innermost operand)
    kScope,        // a body that renders in place ({% generation %})
  };
  Kind kind = Kind::kText;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;                                // kFor: loop filter; kSetBlock: filter chain
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::string> targets;
  std::string target_object;                     // kSet on a namespace attribute: ns
  std::string name;                              // kMacro name
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro (default may be null)
  Body body;
  Body else_body;
};

struct Template {
  Body body;
};

}  // namespace punica::jinja
