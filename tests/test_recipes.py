"""Issue 20 item 4 (engine side): the identity dataset's recipe fills what a run left out, the same way for the
command line, a recipe file and the web UI's form (whose YAML, command preview and run all state the recipe's
arguments); item 12: an eval set is evaluated along the run by default (every tenth of it, before engine.train.best
plans it from the data), not at save_steps."""
from __future__ import annotations

import pytest
import yaml

from engine import runs
from engine.args import BY_NAME
from engine.config import changed, load_config, to_command
from engine.data.recipes import RECIPES, recipe_for
from engine.train.best import EVAL_SHARE, eval_steps
from engine.train.workflow import schema_fields

IDENTITY = RECIPES["identity"]["values"]


def test_identity_gets_its_recipe_where_the_run_left_it_out():
    ns = load_config(None, {"dataset": "identity"})
    assert {k: ns.values[k] for k in IDENTITY} == IDENTITY
    assert IDENTITY["learning_rate"] != BY_NAME["learning_rate"].default  # the schema's 5e-5 does not teach it
    given = load_config(None, {"dataset": "identity", "learning_rate": "1e-4", "packing": "false"})
    assert given.learning_rate == 1e-4 and given.packing is False  # what the run gives is kept
    assert given.cutoff_len == IDENTITY["cutoff_len"]


@pytest.mark.parametrize("values", [{"dataset": "identity,alpaca_en_demo"}, {"dataset": "alpaca_en_demo"},
                                    {"dataset": "identity", "finetuning_type": "full"}])
def test_no_recipe_where_it_does_not_hold(values):
    """Mixed with other data or another method, the identity recipe's numbers no longer hold: the schema's."""
    ns = load_config(None, values)
    assert ns.learning_rate == BY_NAME["learning_rate"].default and ns.packing is BY_NAME["packing"].default
    assert recipe_for(ns.dataset, ns.stage, ns.finetuning_type) is None


def test_the_form_the_preview_and_the_yaml_train_the_same(tmp_path):
    """A form left at the schema's defaults: its YAML and preview say so for the recipe's arguments, so the run
    trains what the form shows; the same command typed by hand (nothing given) gets the recipe."""
    form = {"dataset": "identity", "output_dir": str(tmp_path / "run")}
    data = runs.recipe(runs.check("train", form))
    assert {k: data[k] for k in IDENTITY} == {k: BY_NAME[k].default for k in IDENTITY}
    assert load_config(None, {k: str(v) for k, v in data.items()}).learning_rate == BY_NAME["learning_rate"].default
    cmd = to_command(load_config(None, form, finalize=False).values)
    assert "learning_rate=5e-05" in cmd and "packing=false" in cmd
    # the recipe's own values in the form: the same YAML whoever reads it
    filled = dict(form, **IDENTITY)
    data = runs.recipe(runs.check("train", filled))
    assert yaml.safe_load(yaml.safe_dump(data))["learning_rate"] == IDENTITY["learning_rate"]
    assert set(IDENTITY) <= set(changed(load_config(None, {"dataset": "identity"}).values))


def test_eval_runs_along_the_run_by_default():
    ns = load_config(None, {"dataset": "identity", "val_size": "0.1", "max_steps": "20"})
    assert ns.eval_strategy == "steps" and ns.eval_steps is None
    assert eval_steps(ns) == EVAL_SHARE  # the Trainer: every ceil(0.1 x 20) = 2 steps, whatever save_steps is
    fields = schema_fields(ns, {"bf16": False, "fp16": False}, "sft")
    assert fields["eval_steps"] == EVAL_SHARE and fields["save_steps"] == BY_NAME["save_steps"].default
    given = load_config(None, {"dataset": "identity", "val_size": "0.1", "eval_steps": "7"})
    assert eval_steps(given) == 7
