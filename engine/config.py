"""YAML file + key=value overrides -> validated arguments. Errors name the field.

Everything here is driven by engine.args.ARGS: nothing about a particular argument
is hard-coded except the few cross-field rules at the end of `validate`.
"""
from __future__ import annotations

import difflib
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from .args import ARGS, BY_NAME, STRICT, Arg, Namespace
from .data import recipes
from .devices import check as check_devices
from .errors import ConfigError
from .models import quantize
from .paths import default_output_dir, unwritable_folder
from .train.stages import STAGES, get_stage
from .utils import atomic_write_text, get_logger

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_NONE = {"", "none", "null", "~"}


def _suggest(name: str, command: str | None = None) -> str:
    names = [a.name for a in ARGS if command is None or command in a.commands]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def coerce(arg: Arg, value: Any, source: str = "") -> Any:
    """Turn a YAML value or a command-line string into the argument's type, or raise ConfigError."""
    where = f" ({source})" if source else ""
    if isinstance(value, str) and value.strip().lower() in _NONE and arg.type != "str":
        value = None
    if value is None:
        if arg.nullable or arg.default is None:
            return None
        raise ConfigError(f"{arg.name}: a value is required{where} (default: {arg.default!r}).", arg.name)
    try:
        if arg.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError
        if arg.type == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            if isinstance(value, int):
                return value
            f = float(str(value).strip())
            if not f.is_integer():
                raise ValueError
            return int(f)
        if arg.type == "float":
            if isinstance(value, bool):
                raise ValueError
            f = float(value) if not isinstance(value, str) else float(value.strip())
            if math.isnan(f):
                raise ValueError
            return f
        if arg.type == "dict":
            return _mapping(arg, value)
        if arg.type == "list":
            if isinstance(value, dict) or (isinstance(value, (list, tuple)) and
                                           any(isinstance(v, (dict, list, tuple)) for v in value)):
                raise ValueError  # a mapping or nested list is a mistake, not a name
            if isinstance(value, (list, tuple)):
                items = [str(v).strip() for v in value]
            else:
                items = [s.strip() for s in str(value).split(",")]
            items = [s for s in items if s]
            if not items:
                return None if (arg.nullable or arg.default is None) else _raise_empty(arg)
            return items
        # str
        if isinstance(value, (dict, list)):
            raise ValueError
        if isinstance(value, bool) and arg.name == "resume_from_checkpoint":
            return "true" if value else None
        s = str(value)
        return None if (arg.nullable and s.strip().lower() in _NONE) else s
    except (ValueError, TypeError):
        kind = {"bool": "true or false", "int": "a whole number", "float": "a number",
                "list": "a comma-separated list", "str": "text",
                "dict": 'a JSON/YAML mapping such as {"adam_beta2": 0.99}'}[arg.type]
        raise ConfigError(f"{arg.name}: expected {kind}, got {value!r}{where}.", arg.name) from None


def _mapping(arg: Arg, value: Any) -> dict | None:
    """A mapping given as a dict, or as JSON / YAML text (the command line, the UI's text box)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)  # JSON first: YAML would read 1e-7 as text
        except ValueError:
            pass
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)  # YAML is a superset of JSON: both spellings work
        except yaml.YAMLError as e:
            raise ConfigError(f"{arg.name}: not a valid JSON/YAML mapping ({getattr(e, 'problem', e)}); write it "
                              f'like {{"adam_beta2": 0.99, "max_grad_norm": 0.5}}.', arg.name) from None
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise ValueError
    return {str(k): v for k, v in value.items()}


def _raise_empty(arg: Arg):
    raise ConfigError(f"{arg.name}: the list is empty; give at least one value.", arg.name)


def check_value(arg: Arg, value: Any) -> None:
    if value is None:
        return
    if arg.choices is not None:
        vals = value if isinstance(value, list) else [value]
        for v in vals:
            if v not in arg.choices:
                names = [str(c) for c in arg.choices]  # quantization_bit's are numbers
                close = difflib.get_close_matches(str(v), names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{arg.name}: {v!r} is not one of {', '.join(names)}.{hint}", arg.name)
    if arg.type in ("int", "float"):
        if arg.min is not None and value < arg.min:
            raise ConfigError(f"{arg.name}: {value} is below the smallest allowed value {_num(arg.min)}.", arg.name)
        if arg.max is not None and value > arg.max:
            raise ConfigError(f"{arg.name}: {value} is above the largest allowed value {_num(arg.max)}.", arg.name)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"{item!r}: overrides are written key=value (for example learning_rate=1e-4).")
        out[key] = value
    return out


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: this is a folder, not a config file; give the path of a .yaml file (for example "
                          f"one in examples/).")
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{line}: {getattr(e, 'problem', e)}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the file as UTF-8.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of key: value lines.")
    return data


def load_config(path: str | Path | None = None, overrides: Iterable[str] | dict | None = (),
                command: str = "train", finalize: bool = True) -> Namespace:
    """Defaults <- YAML <- overrides, each value typed and range-checked; unknown keys refused.

    The Namespace holds every argument; `ns.explicit` names those the file or the overrides gave. finalize
    applies the cross-field rules and derived defaults of `command` (validate)."""
    raw: dict[str, tuple[Any, str]] = {}
    if path:
        for k, v in read_yaml(path).items():
            raw[str(k)] = (v, f"{path}")
    ov = overrides if isinstance(overrides, dict) else parse_overrides(overrides or ())
    for k, v in ov.items():
        raw[k] = (v, "command line")
    values = {}
    # known keys first: a recipe for something unsupported (stage: ppo) is refused for that, not for the
    # stage's own extra key that happens to come first in the file
    for key, (value, source) in sorted(raw.items(), key=lambda kv: kv[0] not in BY_NAME):
        arg = BY_NAME.get(key)
        if arg is None:
            raise ConfigError(f"{key}: unknown argument ({source}).{_suggest(key, command)}", key)
        if command not in arg.commands and (command in STRICT or set(arg.commands) <= set(STRICT)):
            if isinstance(overrides, dict) and key in ov and value == arg.default:
                continue  # a Namespace's values passed back whole: another command's untouched default
            owner = f"`tuneboard {arg.commands[0]}`" if set(arg.commands) <= set(STRICT) else "other commands"
            raise ConfigError(f"{key}: not an argument of {command} ({source}); it belongs to {owner}."
                              f"{_suggest(key, command)}", key)
        v = coerce(arg, value, source)
        check_value(arg, v)
        values[key] = v
    ns = Namespace(values, explicit=raw)
    if finalize:
        validate(ns, command)
    return ns


def validate(ns: Namespace, command: str = "train") -> None:
    """Cross-field rules and derived defaults. Cheap: no model or data is loaded here."""
    v = ns.values
    if v.get("neat_packing"):
        v["packing"] = True
    if v["bf16"] and v["fp16"]:
        raise ConfigError("bf16 and fp16: choose one of them, not both.", "bf16")
    for flag in ("bf16", "fp16"):  # LLaMA-Factory's names for two values of precision: one value, not two
        if v[flag] and v["precision"] not in ("auto", flag):
            raise ConfigError(f"{flag}: true asks for precision={flag}, but precision is {v['precision']}; keep one "
                              "of them.", "precision")
    if v["lora_alpha"] is None:
        v["lora_alpha"] = 2 * v["lora_rank"]
    if command == "train":
        given = ns.explicit
        if "do_train" in given and not v["do_train"] or (v["do_predict"] and "do_train" not in given):
            raise ConfigError("do_train: this recipe asks for predictions, not training; run it with "
                              "`tuneboard eval <recipe.yaml>` (it reads eval_dataset, adapter_name_or_path and "
                              "the generation settings).", "do_train")
        if not v["dataset"]:
            raise ConfigError("dataset: no dataset given; name one or more from dataset_info.json "
                              "(for example dataset=identity).", "dataset")
        filled = recipes.apply(v, given)  # what the dataset needs to teach in a short run, where not given
        if filled:
            get_logger().info("%s's recipe: %s (give them to change them)", v["dataset"][0],
                              " ".join(f"{k}={format_value(x)}" for k, x in filled.items()))
        if v.get("devices") or v.get("cpu_threads"):  # devices this machine has (nvidia-smi), before any run
            check_devices(v)
        if v["quantization_bit"] is not None:  # QLoRA: refused here, before any model is read, if it cannot run
            quantize.check(v)
        stage = get_stage(v["stage"])
        if v["packing"] and not stage.packs:
            raise ConfigError(f"packing: not available for stage {stage.name} (only "
                              f"{' and '.join(s.name for s in STAGES.values() if s.packs)}); turn it off.", "packing")
        if v["eval_strategy"] is None:
            has_eval = v["val_size"] > 0 or bool(v["eval_dataset"])
            v["eval_strategy"] = "steps" if has_eval else "no"
        if v["eval_strategy"] != "no" and not (v["val_size"] > 0 or v["eval_dataset"]):
            raise ConfigError("eval_strategy: evaluation needs data; set val_size (e.g. 0.1) or eval_dataset.",
                              "eval_strategy")
        if stage.validate:  # the stage's own rules (they see eval_strategy resolved)
            stage.validate(v)
        for k in ("early_stopping_patience", "load_best_model_at_end"):
            if v.get(k) and v["eval_strategy"] == "no":
                raise ConfigError(f"{k}: needs evaluation; set val_size (e.g. 0.1) or eval_dataset.", k)
        if v["num_train_epochs"] <= 0 and v["max_steps"] <= 0:
            raise ConfigError("num_train_epochs: must be > 0 unless max_steps is set.", "num_train_epochs")
        if v["output_dir"] is None:
            v["output_dir"] = default_output_dir(v["model_name_or_path"], v["finetuning_type"])
        if v.get("extra_args"):
            from .train.extra import check_extra_args
            check_extra_args(ns, v["stage"])
    for name in ("output_dir", "export_dir"):  # a folder the command writes: checked before anything loads
        if v.get(name) and command in BY_NAME[name].commands:
            problem = unwritable_folder(v[name])
            if problem:
                raise ConfigError(f"{name}: {problem}; choose a folder you can write to.", name)
    if v["fsdp"] and v["deepspeed"]:
        raise ConfigError("fsdp: FSDP and DeepSpeed both shard the model; choose one of them (fsdp or deepspeed).",
                          "fsdp")
    if v["fsdp"] and v["quantization_bit"] is not None:
        raise ConfigError("fsdp: not available with QLoRA (quantization_bit); remove one of them.", "fsdp")
    if v["deepspeed"] and not Path(v["deepspeed"]).is_file():
        raise ConfigError(f"deepspeed: {v['deepspeed']} does not exist; see examples/deepspeed/ for configs.",
                          "deepspeed")


def compat_notes(ns: Namespace) -> list[str]:
    """What happens to the LLaMA-Factory keys a recipe gave that have no effect of their own here (one line each,
    for the run's log): only those set to something other than their default, which changes nothing."""
    return [f"{a.name}={format_value(ns.values[a.name])}: {a.help_en}" for a in ARGS
            if a.compat and a.name in ns.explicit and ns.values.get(a.name) != a.default]


def changed(ns_or_dict: Namespace | dict, command: str = "train") -> dict[str, Any]:
    """Values that differ from the defaults, in schema order (what the preview and saved config show), and the
    arguments of the dataset's recipe whatever their value: left out, the recipe would replace them."""
    v = ns_or_dict.values if isinstance(ns_or_dict, Namespace) else ns_or_dict
    keep = (recipes.recipe_for(v.get("dataset"), v.get("stage"), v.get("finetuning_type")) or {}) \
        if command == "train" else {}
    out = {}
    for a in ARGS:
        if a.name in v and command in a.commands and (v[a.name] != a.default or a.name in keep) and not a.compat \
                and not a.secret:
            if a.name == "lora_alpha" and v[a.name] == 2 * v.get("lora_rank", 8):
                continue
            out[a.name] = v[a.name]
    return out


def format_value(value: Any) -> str:
    """A value as written on a command line or in key=value text (true, a,b, {"k":1}, null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if value is None:
        return "null"
    return str(value)


def to_overrides(values: dict, command: str = "train") -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in changed(values, command).items()]


def to_command(values: dict, command: str = "train", program: str | None = None) -> str:
    """A shell command that, pasted at the repo root, runs exactly this configuration."""
    prog = program or launcher()
    return " ".join([prog, command] + [shlex.quote(t) for t in to_overrides(values, command)])


def launcher() -> str:
    """How to call tuneboard from the repo root: the venv's script when it exists, else the module."""
    exe = Path(sys.executable)
    script = exe.parent / "tuneboard"
    try:
        rel = script.relative_to(Path.cwd())
        if script.exists():
            return str(rel)
    except ValueError:
        pass
    return f"{shlex.quote(str(exe))} -m engine"


def save_config(ns: Namespace | dict, path: str | Path, command: str = "train") -> None:
    """Write the full resolved config atomically (a crash never leaves half a file)."""
    v = ns.values if isinstance(ns, Namespace) else ns
    data = {a.name: v[a.name] for a in ARGS if a.name in v and command in a.commands and not a.compat
            and not a.secret}
    atomic_write_text(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
