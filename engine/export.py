"""`tuneboard export`: merge LoRA adapter(s) into the base model and save a standalone model folder.

The folder loads with plain transformers (AutoModelForCausalLM / AutoTokenizer, no TuneBoard code):
sharded safetensors, the tokenizer with a chat template that formats prompts as TuneBoard did in
training, a generation_config that stops at the template's stop words, and a README model card.
It is written to a temporary sibling folder and moved into place at the end, so a failed export
never leaves half a model and never destroys a previous one.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import ConfigError
from .models.registry import EXPORT_MARKER, lookup
from .utils import UserError, atomic_write_json, atomic_write_text, get_logger, share_like_umask

log = get_logger()
CONFIG_NAMES = ("training_args.yaml", "training_config.yaml", "train_config.yaml")
RESULTS_NAMES = ("all_results.json",)
DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _as_dict(args: Any) -> dict:
    from .args import values_of
    return values_of(args)


def _check_target(out: Path, a: dict, adapters: list[str]) -> None:
    from .models.loader import model_path
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export_dir: {out} is a file; give a folder.", "export_dir")
    src = [Path(model_path(a)).resolve()] + [Path(p).resolve() for p in adapters]
    if out.resolve() in src:
        raise ConfigError(f"export_dir: {out} is the model or adapter being exported; choose another folder.",
                          "export_dir")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARKER).is_file():
        raise UserError(f"export_dir: {out} is not empty and is not a previous TuneBoard export; refusing to "
                        "overwrite it. Choose a new folder (or empty this one yourself). Nothing was written.")


def _export_dtype(a: dict, base: str):
    import torch
    name = a.get("export_dtype") or "auto"
    if name == "auto":
        cfg = _read_json(Path(base) / "config.json")
        name = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32").replace("torch.", "")
    return getattr(torch, DTYPES.get(name, "float32"))


def _read_json(p: Path) -> dict:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _run_file(adapter: Path, names: tuple) -> Path | None:
    """A run file next to the adapter, or in the run folder above a checkpoint-N adapter."""
    for folder in (adapter, adapter.parent):
        for n in names:
            if (folder / n).is_file():
                return folder / n
    return None


# ---- chat template for plain transformers
def _literal(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid Jinja string literal (\n, \", \uXXXX)


def _expr(fmt: str, content: str, bos: str, eos: str) -> str:
    """A Template format string ('...{content}...') as one Jinja expression."""
    terms = []
    for part in re.split(r"(\{content\}|\{bos\}|\{eos\})", fmt):
        if part == "{content}":
            terms.append(content)
        elif part == "{bos}":
            terms.append(_literal(bos))
        elif part == "{eos}":
            terms.append(_literal(eos))
        elif part:
            terms.append(_literal(part))
    return " ~ ".join(terms) if terms else '""'


def _answer_jinja(t) -> str:
    """Jinja that sets `text` to m['content'] as Template._answer writes it (`final`: the answer after the last user
    message): thinking dropped from earlier answers, the last one with its thought block."""
    strip = "assistant" in t.trim
    if not t.thought:
        return "{%- set text = m['content'] | trim -%}" if strip else "{%- set text = m['content'] -%}"
    open_, close = t.thought
    o, c = _literal(open_.strip()), _literal(close.strip())
    out = ("{%- set text = m['content'] -%}{%- set r = none -%}"
           f"{{%- if {c} in text -%}}{{%- set r = text.split({c})[0].rstrip('\\n').split({o})[-1].lstrip('\\n') -%}}"
           f"{{%- set text = text.split({c})[-1] -%}}{{%- endif -%}}")
    if strip:
        out += "{%- set text = text.strip() -%}"
    rest = "{%- if final or r is not none -%}{%- set text = text.lstrip('\\n') -%}{%- endif -%}"
    if t.history_thought:
        rest += f"{{%- set text = {_literal(open_ + close)} ~ text -%}}"
    if not t.thinking:
        return out + rest
    r = "(r or '').strip()" if strip else "(r or '').strip('\\n')"
    head = "" if t.thought_in_prompt else f"{_literal(open_)} ~ "
    return (out + f"{{%- if final -%}}{{%- set text = {head}{r} ~ {_literal(close)} ~ text.lstrip('\\n') -%}}"
            + "{%- else -%}" + rest + "{%- endif -%}")


def _tools_jinja() -> str:
    """Jinja that renders `tools` and the OpenAI / transformers tool turns (assistant `tool_calls`, role `tool`) in
    engine.data.tools' documented format, as tools.flatten does before a template renders: the tool list joins
    the system prompt, calls become the assistant's turn, consecutive results one user turn."""
    from .data.tools import CALL_CLOSE, CALL_OPEN, RESULT_CLOSE, RESULT_OPEN, TOOLS_PROMPT
    head, tail = TOOLS_PROMPT.format(tools="\0").split("\0")
    nl = _literal("\n")
    spec = ("{%- set f = t['function'] if t['function'] is defined else t -%}"
            "{%- set d = {'name': f['name'], 'description': f['description'] if f['description'] is defined and "
            "f['description'] is not none else ''} -%}"
            "{%- if f['parameters'] is defined and f['parameters'] is not none -%}"
            "{%- set d = {'name': d['name'], 'description': d['description'], 'parameters': f['parameters']} -%}"
            "{%- endif -%}")
    tool_list = (
        "{%- if tools -%}{%- set tb = namespace(lines=[]) -%}{%- for t in tools -%}" + spec
        + "{%- set tb.lines = tb.lines + [{'type': 'function', 'function': d} | tojson] -%}{%- endfor -%}"
        + "{%- set system = (system ~ " + _literal("\n\n") + " if system else '') ~ " + _literal(head)
        + " ~ (tb.lines | join(" + nl + ")) ~ " + _literal(tail) + " -%}{%- endif -%}")
    call = ("{%- set f = c['function'] if c['function'] is defined else c -%}"
            "{%- set a = f['arguments'] if f['arguments'] is defined and f['arguments'] is not none else {} -%}"
            "{%- set a = a if a is string else a | tojson -%}"
            "{%- set tb.text = tb.text ~ (" + nl + " if not loop.first else '') ~ " + _literal(CALL_OPEN + "\n")
            + " ~ " + _literal('{"name": ') + " ~ (f['name'] | tojson) ~ " + _literal(', "arguments": ')
            + " ~ a ~ " + _literal("}\n" + CALL_CLOSE) + " -%}")
    result = _literal(RESULT_OPEN + "\n") + " ~ m['content'] ~ " + _literal("\n" + RESULT_CLOSE)
    turns = (
        "{%- set tb = namespace(msgs=[], text='', result=false) -%}{%- for m in loop_messages -%}"
        "{%- if m['role'] == 'assistant' and m['tool_calls'] is defined and m['tool_calls'] -%}"
        "{%- set tb.text = '' -%}{%- for c in m['tool_calls'] -%}" + call + "{%- endfor -%}"
        "{%- set tb.msgs = tb.msgs + [{'role': 'assistant', 'content': tb.text}] -%}{%- set tb.result = false -%}"
        "{%- elif m['role'] == 'tool' -%}{%- set r = " + result + " -%}"
        "{%- if tb.result -%}"  # several results answer one turn of calls: one user turn
        "{%- set tb.msgs = tb.msgs[:-1] + [{'role': 'user', 'content': tb.msgs[-1]['content'] ~ " + nl + " ~ r}] -%}"
        "{%- else -%}{%- set tb.msgs = tb.msgs + [{'role': 'user', 'content': r}] -%}{%- endif -%}"
        "{%- set tb.result = true -%}"
        "{%- else -%}{%- set tb.msgs = tb.msgs + [m] -%}{%- set tb.result = false -%}{%- endif -%}"
        "{%- endfor -%}{%- set loop_messages = tb.msgs -%}")
    return tool_list + turns


def template_jinja(template, tokenizer) -> str:
    """A Jinja chat template that renders what `template.encode_prompt` encodes (tests/test_reference_templates.py
    checks it against Template.render for every template). The assistant header is part of each user turn (as in
    TuneBoard's templates), so add_generation_prompt has no extra effect."""
    from .data.templates import _tokenizer_adds_bos
    t = template
    bos, eos = t._bos(), t._eos()
    add_bos = t.add_bos if t.add_bos is not None else _tokenizer_adds_bos(tokenizer)
    stop = t.stop_words[0] if t.stop_words else ""
    later_user = t.format_user[len(stop):] if t.stop_opens_turn and stop and t.format_user.startswith(stop) \
        else t.format_user  # the previous answer ended with the header
    system = _expr(t.format_system, "system", bos, eos)
    user = _expr(t.format_user, "u", bos, eos)
    user_later = _expr(later_user, "u", bos, eos)
    at = "ns.last" if t.system_last else "0"
    gen = t._generation_suffix()
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
        f"{{%- else -%}}{{%- set system = {_literal(t.default_system or '')} -%}}"
        "{%- set loop_messages = messages -%}{%- endif -%}"
        + _tools_jinja()
        + ("{%- set system = system | trim -%}" if "system" in t.trim else "")
        + f"{{%- set sys_text = ({system}) if (system or {str(t.system_always).lower()}) else '' -%}}"
        "{%- set ns = namespace(last=-1) -%}"
        "{%- for m in loop_messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}"
        + (f"{{{{ {_literal(bos)} }}}}" if add_bos and bos else "")
        + (f"{{{{ {_literal(t.prefix)} }}}}" if t.prefix else "")
        + "{%- for m in loop_messages -%}"
        "{%- if m['role'] == 'user' -%}"
        + ("{%- set u = m['content'] | trim -%}" if "user" in t.trim else "{%- set u = m['content'] -%}")
        + f"{{%- if not loop.first -%}}{{{{ {_literal(t.separator)} }}}}{{%- endif -%}}"
        + (f"{{%- if sys_text and loop.index0 == {at} -%}}{{%- set u = sys_text ~ u -%}}{{%- endif -%}}"
           if t.system_in_user else "{%- if loop.first -%}{{ sys_text }}{%- endif -%}")
        + f"{{%- if loop.first -%}}{{{{ {user} }}}}{{%- else -%}}{{{{ {user_later} }}}}{{%- endif -%}}"
        + (f"{{%- if loop.index0 == ns.last -%}}{{{{ {_literal(gen)} }}}}{{%- endif -%}}" if gen else "")
        + "{%- elif m['role'] == 'assistant' -%}{%- set final = loop.index0 == ns.last + 1 -%}"
        + _answer_jinja(t)
        + f"{{{{ {_expr(t.format_assistant, 'text', bos, eos)} }}}}"
        "{%- endif -%}{%- endfor -%}"
    )


_PROBES = (
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
)


_TOOL = {"name": "lookup", "description": "Look a word up.",
         "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}
_TOOL_PROBE = (  # (TuneBoard's turns, the same as transformers writes them)
    [{"role": "user", "content": "Look up 'tune'"}, {"role": "function", "content": '{"name": "lookup", '
     '"arguments": {"word": "tune"}}'}, {"role": "observation", "content": "a melody"}],
    [{"role": "user", "content": "Look up 'tune'"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "lookup", "arguments": {"word": "tune"}}}]},
     {"role": "tool", "content": "a melody"}])


def _own_template_matches(template, tokenizer) -> bool:
    """Does the tokenizer's own chat template already produce TuneBoard's prompts, tool turns included?"""
    if not tokenizer.chat_template:
        return False
    ours, theirs = _TOOL_PROBE
    try:
        for msgs in _PROBES:
            own = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
            if list(own) != template.encode_prompt(tokenizer, msgs):
                return False
        own = tokenizer.apply_chat_template(theirs, tools=[{"type": "function", "function": _TOOL}],
                                            add_generation_prompt=True, tokenize=True, return_dict=False)
        if list(own) != template.encode_prompt(tokenizer, ours, tools=[_TOOL]):
            return False
    except Exception:  # a template that refuses system messages etc.: not a match
        return False
    return True


# ---- model card
def _model_card(base: str, adapters: list[str], template: str, dtype: str, shard: str, chat_source: str) -> str:
    import yaml
    hit = lookup(base)
    base_id = hit[1]["hf"] if hit else base
    meta = {"base_model": base_id} if hit else {}  # the hub wants an id here, not a local path
    meta.update({"library_name": "transformers", "tags": ["tuneboard", "merged" if adapters else "export"]})
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
             f"# {Path(base).name}{' + LoRA (merged)' if adapters else ''}", "",
             f"Exported by TuneBoard on {time.strftime('%Y-%m-%d %H:%M')}.", "",
             f"- **Base model:** `{base_id}`" + (f" (local copy `{base}`)" if base_id != base else ""),
             f"- **Adapter(s) merged:** {', '.join(f'`{a}`' for a in adapters) if adapters else 'none'}",
             f"- **Chat template:** `{template}` ({chat_source})",
             f"- **Weights:** {dtype} safetensors, shards of at most {shard}", ""]
    for a in adapters:
        cfg_file = _run_file(Path(a), CONFIG_NAMES)
        if cfg_file is not None:
            try:
                cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                cfg = None
            if isinstance(cfg, dict):
                lines += [f"## Training configuration (`{cfg_file}`)", "", "```yaml",
                          yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False).rstrip(), "```", ""]
        res_file = _run_file(Path(a), RESULTS_NAMES)
        results = _read_json(res_file) if res_file else {}
        if results:
            lines += [f"## Final metrics (`{res_file}`)", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {round(v, 6) if isinstance(v, float) else v} |" for k, v in results.items()]
            lines += [""]
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'path = "."  # this folder',
              "tok = AutoTokenizer.from_pretrained(path)",
              "model = AutoModelForCausalLM.from_pretrained(path)",
              'ids = tok.apply_chat_template([{"role": "user", "content": "Hello!"}], add_generation_prompt=True,',
              '                              return_tensors="pt", return_dict=True)',
              "out = model.generate(**ids, max_new_tokens=128)",
              "print(tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))", "```", "",
              "Or in TuneBoard: `tuneboard chat model_name_or_path=<this folder>`.", ""]
    return "\n".join(lines)


def export_model(args: Any, *, max_shard_size: str | int | None = None) -> Path:
    """Merge the adapters of `args` into the base model and save it to args.export_dir. Returns the folder.
    max_shard_size overrides args.export_size (GB), e.g. "200KB" in tests."""
    from .data.templates import resolve_template
    from .models.loader import adapter_paths, check_adapter, load_model, load_tokenizer, model_path

    a = _as_dict(args)
    if not a.get("export_dir"):
        raise ConfigError("export_dir: no export folder given; set export_dir (for example "
                          "export_dir=models/SmolLM2-135M-Instruct-sft-merged).", "export_dir")
    out = Path(a["export_dir"]).expanduser()
    adapters = [str(check_adapter(p)) for p in adapter_paths(a)]
    base = model_path(a)
    _check_target(out, a, adapters)
    if not adapters:
        log.info("no adapter_name_or_path given: re-saving the base model (dtype / shards only)")

    tokenizer = load_tokenizer(a)
    template = resolve_template(a, tokenizer)
    dtype = _export_dtype(a, base)
    shard = max_shard_size or f"{int(a.get('export_size') or 5)}GB"
    t0 = time.time()
    model = load_model(a, trainable=False, device="cpu", dtype=dtype)  # adapters merged (merge_and_unload)

    if template.name == "auto" or _own_template_matches(template, tokenizer):
        chat_source = "the tokenizer's own chat template"
    else:
        tokenizer.chat_template = template_jinja(template, tokenizer)
        chat_source = "written by TuneBoard from its template; the tokenizer's own one was replaced"
    stop_ids = template.stop_token_ids(tokenizer)
    gen = model.generation_config
    gen.eos_token_id = stop_ids if len(stop_ids) > 1 else stop_ids[0]
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = None
    try:
        log.info("saving to %s (%s, shards <= %s)...", out, str(dtype).replace("torch.", ""), shard)
        model.save_pretrained(tmp, max_shard_size=shard)
        tokenizer.save_pretrained(tmp)
        dtype_name = str(dtype).replace("torch.", "")
        atomic_write_text(tmp / "README.md", _model_card(base, adapters, template.name, dtype_name, str(shard),
                                                         chat_source))
        atomic_write_json(tmp / EXPORT_MARKER, {"base": base, "adapters": adapters, "template": template.name,
                                                "dtype": dtype_name, "max_shard_size": str(shard),
                                                "exported": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if out.exists():  # a previous export (checked above): keep it until the new one is in place
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
        share_like_umask(tmp)  # mkdtemp made it 0700 and safetensors writes 0600: readable as the umask allows
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.rename(out)
    log.info("exported %s in %.0f s", out, time.time() - t0)
    return out


def run_cli(path=None, overrides=(), flags=()) -> int:
    """`tuneboard export [recipe.yaml] [key=value ...]`."""
    from .config import load_config
    args = load_config(path, overrides, command="export")
    out = export_model(args)
    files = sorted(p.name for p in out.glob("*.safetensors"))
    print(f"exported to {out} ({len(files)} safetensors file{'s' if len(files) != 1 else ''})")
    print(f"chat with it: tuneboard chat model_name_or_path={out}")
    return 0
