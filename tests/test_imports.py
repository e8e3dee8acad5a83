"""Imports at the top of the file. A function-level import is kept only where it pays: a heavy or optional library
(torch and friends load in seconds and are not installed everywhere), a project module that imports one at its top
(the web UI and `tuneboard --help` start without torch), or one of the two-way imports listed in CYCLES."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "webui", "tuneboard")
HEAVY = {  # heavy, or optional extras a command needs only when used
    "torch", "transformers", "peft", "trl", "datasets", "gradio", "bitsandbytes", "deepspeed", "accelerate",
    "huggingface_hub", "modelscope", "matplotlib", "pandas", "numpy", "gguf", "safetensors", "tokenizers",
    "sentencepiece", "liger_kernel", "vllm", "fastapi", "uvicorn", "starlette", "sse_starlette", "pydantic",
    "httpx", "openai", "psutil", "pyarrow", "jieba", "nltk", "jinja2", "tensorboard", "playwright",
}
# (module, what it imports inside a function): the two import each other, so one side must wait
CYCLES = {
    ("engine.export_gguf", "engine.export"),  # export's FORMATS table names the gguf writer
    ("engine.data.template_export", "engine.data.templates"),  # Template.to_jinja() and the writer of it
    ("engine.data.processing", "engine.data.records"),  # stages -> processing -> records -> stages
    ("engine.data.processing", "engine.train.stages"),
    ("engine.config", "engine.train.extra"),  # extra_args are checked with config's coerce / check_value
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


MODULES = _modules()


def _targets(mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads, as dotted names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        pkg = mod.split(".") if MODULES[mod].name == "__init__.py" else mod.split(".")[:-1]
        pkg = pkg[:len(pkg) - node.level + 1]
        base = ".".join(pkg + ([node.module] if node.module else []))
    else:
        base = node.module
    return [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]


def _imports(mod: str) -> tuple[list, list]:
    """(top-level imports, function-level imports) of a module, each (line, [targets])."""
    top, inner = [], []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (inner if in_function else top).append((child.lineno, _targets(mod, child)))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    visit(ast.parse(MODULES[mod].read_text(encoding="utf-8")), False)
    return top, inner


@functools.lru_cache(maxsize=None)
def _heavy(mod: str, seen: frozenset = frozenset()) -> bool:
    """A heavy library, or a project module that imports one at its top (directly or through others)."""
    if mod.split(".")[0] in HEAVY:
        return True
    if mod not in MODULES or mod in seen:
        return False
    return any(_heavy(t, seen | {mod}) for _, targets in _imports(mod)[0] for t in targets if t != mod)


def test_function_level_imports_are_heavy_optional_or_a_named_cycle():
    light = []
    for mod in sorted(MODULES):
        for line, targets in _imports(mod)[1]:
            if any(_heavy(t) for t in targets) or any((mod, t) in CYCLES for t in targets):
                continue
            light.append(f"{MODULES[mod].relative_to(ROOT)}:{line} imports {targets[0]} inside a function")
    assert not light, "move these imports to the top of the file:\n" + "\n".join(light)


def test_the_named_cycles_are_real():
    """Each CYCLES entry still needs its lazy import: the other module imports this one at its top (or through a
    chain), so the entry goes once the cycle does."""
    def reaches(src: str, dst: str, seen=frozenset()) -> bool:
        if src == dst:
            return True
        if src not in MODULES or src in seen:
            return False
        return any(reaches(t, dst, seen | {src}) for _, ts in _imports(src)[0] for t in ts)
    for mod, target in CYCLES:
        assert reaches(target, mod), f"{target} no longer imports {mod}: import it at the top of {mod}"

