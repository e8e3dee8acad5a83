"""Raw records -> one standard form per kind of dataset (KINDS; a stage's record in engine.train.stages says which
kind it reads, so rm and dpo read the same pairs).

  sft: {"system": str, "messages": [{"role": "user"|"assistant", "content": str}, ...]}  (alternating, ends with assistant)
       tool datasets (columns.tools): + "tools": JSON text of the tool list, and the roles "function" (the assistant's
       call, JSON) and "observation" (the tool's result, user side); see engine.data.tools
  dpo: {"system": str, "messages": [... ending with user], "chosen": str, "rejected": str}   (read by dpo and rm)
  kto: {"system": str, "messages": [... ending with user], "completion": str, "label": bool}
  prompt: {"system": str, "messages": [... ending with user], "answer": str | None}   (grpo: the reference answer)
  pt:  {"text": str}

A record that cannot be converted is skipped with a reason; the caller reports the counts (nothing is
dropped silently). Columns that are missing from the whole file are an error naming the column.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .registry import ALPACA_COLUMNS, DatasetAttr, dataset_stage
from .tools import FUNCTION, OBSERVATION, calls_json, parse_calls, tools_json

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
_ASKS, _ANSWERS = (USER, OBSERVATION), (ASSISTANT, FUNCTION)  # the two sides of the alternation
_ALIASES = {"human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT, "bot": ASSISTANT,
            "model": ASSISTANT, "system": SYSTEM}


class Invalid(UserError):
    """A record that cannot be used; str() is the reason (counted, never silent)."""


def _kind(v) -> str:
    return {dict: "an object", list: "a list", bool: "true/false"}.get(type(v), type(v).__name__)


def _text(v, where: str = "a text field", depth: int = 0) -> str:
    """A column's value as text. Numbers become their digits; an object or list that is not a message
    (content/value/text) is a mapping mistake and makes the record Invalid, naming the column."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    if depth < 8:
        if isinstance(v, dict):  # {"role": ..., "content": ...} / {"from": ..., "value": ...}
            for k in ("content", "value", "text"):
                if k in v:
                    return _text(v[k], where, depth + 1)
        if isinstance(v, list) and v and isinstance(v[-1], dict):  # [..., {"role": "assistant", "content": ...}]
            return _text(v[-1], where, depth + 1)
    raise Invalid(f"{where} holds {_kind(v)}, not text")


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _columns_present(rows: list[dict]) -> set:
    seen: set = set()
    for r in rows:
        seen.update(r)
    return seen


def _require(attr: DatasetAttr, present: set, needed: dict[str, str]) -> None:
    """needed: {our key: their column}. Raise naming the first missing column and what the file has."""
    for key, col in needed.items():
        if col not in present:
            have = ", ".join(sorted(map(str, present))) or "none"
            raise UserError(f"dataset {attr.name!r}: column {col!r} (columns.{key}) is not in the data; the data has "
                            f"columns: {have}. Map them in dataset_info.json, e.g. \"columns\": {{\"{key}\": "
                            f"\"<one of those>\"}}.")


def _role_map(attr: DatasetAttr) -> dict:
    t = attr.tags
    m = dict(_ALIASES)
    m.update({t.get("user_tag"): USER, t.get("observation_tag"): OBSERVATION, t.get("assistant_tag"): ASSISTANT,
              t.get("function_tag"): FUNCTION, t.get("system_tag"): SYSTEM})
    m.pop(None, None)
    return m


def _sharegpt_messages(attr: DatasetAttr, raw, roles: dict) -> tuple[list[dict], str]:
    """(alternating user/assistant messages, system text from a leading system turn)."""
    if isinstance(raw, str):
        raise Invalid("messages column holds text, not a list of turns")
    if not raw:
        raise Invalid("no messages")
    if not isinstance(raw, (list, tuple)):
        raise Invalid(f"messages column holds {_kind(raw)}, not a list of turns")
    rt, ct = attr.tags.get("role_tag", "from"), attr.tags.get("content_tag", "value")
    out, system = [], ""
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise Invalid("a turn is not an object")
        tag = m.get(rt, m.get("role", m.get("from")))
        role = roles.get(tag) if isinstance(tag, str) else None
        if role is None:
            raise Invalid(f"unknown role {_short(tag)} (set tags.role_tag / user_tag / assistant_tag)")
        content = _text(m.get(ct, m.get("content", m.get("value"))), "a turn's content")
        if role == SYSTEM:
            if i != 0:
                raise Invalid("system turn not at the start")
            system = content
            continue
        if role == OBSERVATION and (not out or out[-1]["role"] != FUNCTION):
            raise Invalid("a tool result (observation) that follows no function_call")
        side = _ASKS if role in _ASKS else _ANSWERS
        if out and out[-1]["role"] in side:
            raise Invalid("turns do not alternate user/assistant")
        if not out and role != USER:
            raise Invalid("conversation starts with the assistant")
        if role == FUNCTION:
            try:
                content = calls_json(parse_calls(content, "a function_call turn"))
            except UserError as e:
                raise Invalid(str(e)) from None
        out.append({"role": role, "content": content})
    return out, system


def _alpaca_prompt(attr: DatasetAttr, row: dict) -> tuple[list[dict], str]:
    cols = {**ALPACA_COLUMNS, **attr.columns}
    prompt = _text(row.get(cols["prompt"]), f"column {cols['prompt']!r}")
    query = _text(row.get(cols["query"]), f"column {cols['query']!r}")
    user = "\n".join(s for s in (prompt, query) if s)
    messages = []
    hist = row.get(cols["history"]) if cols.get("history") else None
    if hist and not isinstance(hist, (list, tuple)):
        raise Invalid("history must be a list of [question, answer] pairs")
    for turn in hist or []:
        if not isinstance(turn, (list, tuple)) or len(turn) != 2:
            raise Invalid("history items must be [question, answer] pairs")
        messages += [{"role": USER, "content": _text(turn[0], "history")},
                     {"role": ASSISTANT, "content": _text(turn[1], "history")}]
    messages.append({"role": USER, "content": user})
    system = _text(row.get(cols["system"]), f"column {cols['system']!r}") if cols.get("system") else ""
    return messages, system


def _check_answers(messages: list[dict]) -> None:
    for m in messages:
        if m["role"] == ASSISTANT and not m["content"].strip():
            raise Invalid("empty answer")


def _tools(attr: DatasetAttr, row: dict, messages: list[dict]) -> dict:
    """{"tools": JSON text or None} when the dataset maps a tools column, else {} (records stay as they were)."""
    col = attr.columns.get("tools")
    if not col:
        if any(m["role"] in (FUNCTION, OBSERVATION) for m in messages):
            return {"tools": None}
        return {}
    try:
        return {"tools": tools_json(row.get(col), f"column {col!r}")}
    except UserError as e:
        raise Invalid(str(e)) from None


_TRUE, _FALSE = {"true", "yes", "1", "desirable", "good"}, {"false", "no", "0", "undesirable", "bad"}


def _label(v, col: str) -> bool:
    """A kto_tag value -> desirable (True) / undesirable (False); JSON true/false, 1/0 or the words."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise Invalid(f"column {col!r} (kto_tag) holds {_short(v)}, not true/false")


def _prompt(attr: DatasetAttr, row: dict, roles: dict | None) -> tuple[list[dict], str]:
    """(messages, system) of a record that is not plain text."""
    cols = attr.columns
    if attr.formatting == "sharegpt":
        messages, system = _sharegpt_messages(attr, row.get(cols.get("messages", "conversations")),
                                              roles or _role_map(attr))
        if cols.get("system") and row.get(cols["system"]):
            system = _text(row.get(cols["system"]), f"column {cols['system']!r}")
        return messages, system
    return _alpaca_prompt(attr, row)


def _alpaca_answer(attr: DatasetAttr, row: dict, messages: list[dict]) -> None:
    """An alpaca record's response column becomes the last (assistant) turn."""
    if attr.formatting == "alpaca":
        col = {**ALPACA_COLUMNS, **attr.columns}["response"]
        messages.append({"role": ASSISTANT, "content": _text(row.get(col), f"column {col!r}")})


def _to_text(attr: DatasetAttr, row: dict, roles: dict | None) -> dict:
    cols = attr.columns
    col = cols.get("text") or cols.get("prompt") or "text"
    text = _text(row.get(col), f"column {col!r}")
    if not text.strip():
        raise Invalid("empty text")
    return {"text": text}


def _to_sft(attr: DatasetAttr, row: dict, roles: dict | None) -> dict:
    messages, system = _prompt(attr, row, roles)
    _alpaca_answer(attr, row, messages)
    while messages and messages[-1]["role"] in _ASKS:  # a trailing question has no answer to learn
        messages.pop()
    if not messages:
        raise Invalid("no assistant answer")
    _check_answers(messages)
    return {"system": system, "messages": messages, **_tools(attr, row, messages)}


def _to_kto(attr: DatasetAttr, row: dict, roles: dict | None) -> dict:
    messages, system = _prompt(attr, row, roles)
    _alpaca_answer(attr, row, messages)  # the last assistant turn is the answer that is labelled
    if not messages or messages[-1]["role"] != ASSISTANT:
        raise Invalid("no assistant answer to label")
    _check_answers(messages)
    col = attr.columns["kto_tag"]
    return {"system": system, "messages": messages[:-1], "completion": messages[-1]["content"],
            "label": _label(row.get(col), col)}


def _to_pairs(attr: DatasetAttr, row: dict, roles: dict | None) -> dict:
    cols = attr.columns
    messages, system = _prompt(attr, row, roles)
    if not messages or messages[-1]["role"] not in _ASKS:
        raise Invalid("the prompt turns must end with the user")
    _check_answers(messages)
    extra = _tools(attr, row, messages)
    chosen_col, rejected_col = cols.get("chosen", "chosen"), cols.get("rejected", "rejected")
    if chosen_col not in row and isinstance(row.get(cols.get("response", "output")), list):
        pair = row[cols.get("response", "output")]  # older LLaMA-Factory: response = [chosen, rejected]
        chosen, rejected = (_text(pair[0], "chosen"), _text(pair[1], "rejected")) if len(pair) == 2 else ("", "")
    else:
        chosen = _text(row.get(chosen_col), f"column {chosen_col!r}")
        rejected = _text(row.get(rejected_col), f"column {rejected_col!r}")
    if not chosen.strip() or not rejected.strip():
        raise Invalid("empty chosen or rejected answer")
    return {"system": system, "messages": messages, "chosen": chosen, "rejected": rejected, **extra}


def _to_prompt(attr: DatasetAttr, row: dict, roles: dict | None) -> dict:
    """A prompt to sample answers for (grpo) and its reference answer (None without one)."""
    messages, system = _prompt(attr, row, roles)
    if not messages or messages[-1]["role"] not in _ASKS:
        raise Invalid("the prompt turns must end with the user")
    _check_answers(messages)
    if not messages[-1]["content"].strip():
        raise Invalid("empty prompt")
    col = attr.columns.get("answer")
    answer = _text(row.get(col), f"column {col!r}").strip() if col else ""
    return {"system": system, "messages": messages, "answer": answer or None, **_tools(attr, row, messages)}


def _needs_text(attr: DatasetAttr, present: set) -> None:
    cols = attr.columns
    key = "text" if "text" in cols else "prompt"
    _require(attr, present, {key: cols.get("text") or cols.get("prompt") or "text"})


def _needs_prompt(attr: DatasetAttr, present: set, answer: bool) -> None:
    """The conversation column (sharegpt), or the prompt column and, when `answer`, the response (alpaca)."""
    cols = attr.columns
    if attr.formatting == "sharegpt":
        _require(attr, present, {"messages": cols.get("messages", "conversations")})
        return
    c = {**ALPACA_COLUMNS, **cols}
    _require(attr, present, {"prompt": c["prompt"]})
    if answer:
        _require(attr, present, {"response": c["response"]})


def _needs_sft(attr: DatasetAttr, present: set) -> None:
    _needs_prompt(attr, present, answer=True)


def _needs_kto(attr: DatasetAttr, present: set) -> None:
    _needs_prompt(attr, present, answer=True)
    _require(attr, present, {"kto_tag": attr.columns["kto_tag"]})


def _needs_prompts(attr: DatasetAttr, present: set) -> None:
    _needs_prompt(attr, present, answer=False)
    if attr.columns.get("answer"):
        _require(attr, present, {"answer": attr.columns["answer"]})


def _needs_pairs(attr: DatasetAttr, present: set) -> None:
    cols = attr.columns
    _needs_prompt(attr, present, answer=False)
    chosen = cols.get("chosen", "chosen")
    legacy = (attr.formatting == "alpaca" and chosen not in present
              and {**ALPACA_COLUMNS, **cols}["response"] in present)  # response = [chosen, rejected]
    if not legacy:
        _require(attr, present, {"chosen": chosen, "rejected": cols.get("rejected", "rejected")})


@dataclass(frozen=True)
class Kind:
    """A kind of dataset (engine.data.registry.dataset_stage): its standard form and the words for it."""
    convert: Callable        # (attr, raw record, roles) -> standard record; raises Invalid
    needs: Callable          # (attr, columns present in the file) -> raises UserError naming a missing column
    what: str                # "dataset X is <what> dataset"
    wants: str               # "Choose <wants> dataset"


KINDS: dict[str, Kind] = {
    "pt": Kind(_to_text, _needs_text, "a pre-training (text)", "a pre-training"),
    "sft": Kind(_to_sft, _needs_sft, "an instruction (sft)", "an instruction"),
    "dpo": Kind(_to_pairs, _needs_pairs, "a preference (ranking)", "a ranking (chosen/rejected)"),
    "kto": Kind(_to_kto, _needs_kto, "a KTO (answers labelled by kto_tag)", "a KTO (kto_tag)"),
    "prompt": Kind(_to_prompt, _needs_prompts, "a prompt (with a reference answer column)",
                   "a prompt (columns.answer: the reference)"),
}


def convert_row(attr: DatasetAttr, row: dict, kind: str, roles: dict | None = None) -> dict:
    """One raw record -> the standard form of its `kind` of data. Raises Invalid with a reason."""
    return KINDS[kind].convert(attr, row, roles)


def check_columns(attr: DatasetAttr, rows: list[dict], kind: str) -> None:
    present = _columns_present(rows)
    KINDS[kind].needs(attr, present)
    for key in ("system", "history", "tools"):
        if attr.columns.get(key):
            _require(attr, present, {key: attr.columns[key]})


def convert(attr: DatasetAttr, rows: list[dict], kind: str) -> tuple[list[dict], Counter]:
    """All records of one dataset -> (standard rows, Counter of skip reasons)."""
    out, _, skipped = convert_indexed(attr, rows, kind)
    return out, skipped


def convert_indexed(attr: DatasetAttr, rows: list[dict], kind: str, stage: str | None = None
                    ) -> tuple[list[dict], list[int], Counter]:
    """Like convert, plus the index in `rows` of each converted record (the skipped ones leave gaps). `stage`
    (the one reading `kind`) names it in the message when the dataset is of another kind."""
    have = dataset_stage(attr)
    if have != kind:
        raise UserError(f"dataset {attr.name!r} is {KINDS[have].what} dataset; stage {stage or kind} cannot train "
                        f"on it. Choose {KINDS[kind].wants} dataset (the web UI lists only those), or change the "
                        "stage.")
    if not rows:
        raise UserError(f"dataset {attr.name!r}: no records in {attr.path() or attr.hf_hub_url or attr.ms_hub_url}.")
    check_columns(attr, rows, kind)
    roles = _role_map(attr) if attr.formatting == "sharegpt" else None
    out, kept, skipped = [], [], Counter()
    for i, row in enumerate(rows):
        try:
            out.append(convert_row(attr, row, kind, roles))
        except Invalid as e:
            skipped[str(e)] += 1
        else:
            kept.append(i)
    return out, kept, skipped


def replace_identity(row: dict, name: str | None, author: str | None) -> dict:
    """{{name}} / {{author}} placeholders (the identity dataset) -> the configured values."""
    def sub(s: str) -> str:
        if "{{" not in s:
            return s
        if name is not None:
            s = s.replace("{{name}}", name)
        if author is not None:
            s = s.replace("{{author}}", author)
        return s

    out = dict(row)
    for k in ("system", "text", "chosen", "rejected", "completion"):
        if k in out:
            out[k] = sub(out[k])
    if "messages" in out:
        out["messages"] = [{"role": m["role"], "content": sub(m["content"])} for m in out["messages"]]
    return out
