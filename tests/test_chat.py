"""ChatEngine on the tiny random model (seconds) and one check on the real bundled model (slow)."""
from __future__ import annotations

import builtins
import threading

import pytest

from engine.chat import ChatEngine, Response
from engine.errors import ConfigError
from engine.errors import UserError
from helpers import wait_for
from kits.args import as_args

# The random tiny model's plain greedy answer is a run of newlines; a repetition penalty keeps greedy
# decoding deterministic while making the text varied enough to test streaming and stop strings.
GREEDY = {"do_sample": False, "repetition_penalty": 2.0}
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(tiny_model):
    e = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "max_new_tokens": 24}, "infer"))
    yield e
    e.unload()


def _greedy_ids(engine, messages, n):
    """Reference: plain transformers greedy generate on the same prompt, no ChatEngine involved."""
    import torch
    ids = torch.tensor([engine.encode(messages)])
    out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                do_sample=False, repetition_penalty=2.0, eos_token_id=None,
                                pad_token_id=engine.tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_stream_deltas_join_to_chat_text(engine):
    r = engine.chat(Q, **GREEDY)
    assert isinstance(r, Response)
    deltas = list(engine.stream(Q, **GREEDY))
    assert len(deltas) > 1
    assert "".join(deltas) == r.text
    stats = engine.last_stats
    assert stats["prompt_tokens"] == r.prompt_tokens == len(engine.encode(Q))
    assert stats["completion_tokens"] == r.completion_tokens


def test_seeded_sampled_stream_joins_to_chat_text(engine):
    """Sampled text from the random model is full of multi-byte characters split across tokens."""
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=3, max_new_tokens=40)
    r = engine.chat(Q, **kw)
    assert "".join(engine.stream(Q, **kw)) == r.text
    assert r.text.strip() and len(set(r.text)) > 10


def test_chat_is_plain_greedy_decoding(engine):
    ids = _greedy_ids(engine, Q, 24)
    if 2 in ids:  # the random model happened to emit <|im_end|>: the answer ends there
        ids = ids[:ids.index(2)]
    r = engine.chat(Q, **GREEDY)
    assert r.text == engine.tokenizer.decode(ids, skip_special_tokens=True)
    assert r.finish_reason == "length" and r.completion_tokens == 24


def test_temperature_zero_is_greedy(engine):
    assert engine.chat(Q, do_sample=True, temperature=0, repetition_penalty=2.0).text == engine.chat(Q, **GREEDY).text


def test_batch_equals_individual_answers(engine):
    convs = [Q,
             [{"role": "user", "content": "Hi"}],
             [{"role": "user", "content": "Tell me a long story about a dragon and a knight, please."},
              {"role": "assistant", "content": "Once upon a time"},
              {"role": "user", "content": "Go on."}]]
    batched = engine.batch(convs, max_new_tokens=12, **GREEDY)
    single = [engine.chat(c, max_new_tokens=12, **GREEDY) for c in convs]
    assert [b.text for b in batched] == [s.text for s in single]
    assert [b.prompt_tokens for b in batched] == [s.prompt_tokens for s in single]
    assert len({b.prompt_tokens for b in batched}) == 3  # really different lengths: left padding was used


def test_stop_strings_end_generation(engine):
    full = engine.chat(Q, max_new_tokens=24, **GREEDY).text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    assert stop.strip(), f"pick a visible stop string from {full!r}"
    expected = full[:full.find(stop)]
    r = engine.chat(Q, max_new_tokens=24, stop=[stop], **GREEDY)
    assert r.text == expected and r.finish_reason == "stop"
    assert r.completion_tokens < 24
    streamed = list(engine.stream(Q, max_new_tokens=24, stop=[stop], **GREEDY))
    assert "".join(streamed) == expected
    assert engine.last_stats["finish_reason"] == "stop" and engine.last_stats["completion_tokens"] < 24


def test_template_stop_token_ends_generation(engine, monkeypatch):
    """Generation ends at a stop token id (what <|im_end|> is for a trained model); the token is not in the text."""
    ids = _greedy_ids(engine, Q, 24)
    stop_tok = ids[5]
    first = ids.index(stop_tok)
    monkeypatch.setattr(engine, "_stop_ids", [stop_tok])
    r = engine.chat(Q, max_new_tokens=24, **GREEDY)
    assert r.finish_reason == "stop" and r.completion_tokens == first + 1
    assert r.text == engine.tokenizer.decode(ids[:first], skip_special_tokens=True)
    assert "".join(engine.stream(Q, max_new_tokens=24, **GREEDY)) == r.text


def test_closing_the_stream_stops_generation(engine):
    gen = engine.stream(Q, max_new_tokens=1500, **GREEDY)
    got = [next(gen), next(gen)]
    gen.close()
    assert all(got)
    n = engine.last_stats["completion_tokens"]
    assert 2 <= n < 200, n  # bounded run-ahead (queue of 64), far from 1500
    assert not any(t.name == "tuneboard-generate" and t.is_alive() for t in threading.enumerate())
    # the lock was released: the engine answers again
    assert engine.chat(Q, max_new_tokens=3, **GREEDY).completion_tokens == 3


def test_concurrent_requests_are_serialised(engine, monkeypatch):
    """Three requests at once: one decodes at a time. The first is held inside the model until the other two have
    reached the engine's lock, so with a lock that does not exclude they would be counted inside too."""
    expected = engine.chat(Q, max_new_tokens=10, **GREEDY).text
    real_decoder, real_lock = engine.decoder, engine._lock
    release, guard = threading.Event(), threading.Lock()
    count = {"at_lock": 0, "inside": 0, "most_inside": 0, "runs": 0}

    class CountingLock:  # the engine's own lock, counting the requests that reached it
        def __enter__(self):
            with guard:
                count["at_lock"] += 1
            return real_lock.__enter__()

        def __exit__(self, *exc):
            return real_lock.__exit__(*exc)

    def decoder():  # the engine's decoder, counting the requests decoding at once
        dec = real_decoder()
        real_run = dec.run

        def run(rows):
            with guard:
                count["inside"] += 1
                count["runs"] += 1
                count["most_inside"] = max(count["most_inside"], count["inside"])
                first = count["runs"] == 1
            try:
                if first:
                    release.wait(120)  # the first answer holds the model until the others are at the door
                return real_run(rows)
            finally:
                with guard:
                    count["inside"] -= 1
        dec.run = run
        return dec

    monkeypatch.setattr(engine, "_lock", CountingLock())
    monkeypatch.setattr(engine, "decoder", decoder)
    results, errors = {}, []

    def ask(i):
        try:
            results[i] = engine.chat(Q, max_new_tokens=10, **GREEDY).text
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    try:
        threads[0].start()
        wait_for(lambda: count["runs"] == 1, what="the first request inside the model")
        for t in threads[1:]:
            t.start()
        wait_for(lambda: count["at_lock"] == 3, what="the other two requests at the engine's lock")
        assert count["inside"] == 1  # they wait outside while the first decodes
    finally:
        release.set()
        for t in threads:
            if t.is_alive() or t.ident is not None:
                t.join(timeout=120)
    assert not errors and results == {0: expected, 1: expected, 2: expected}
    assert count["most_inside"] == 1 and count["runs"] == 3


def test_seeded_sampling_is_reproducible(engine):
    a = engine.chat(Q, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=7, max_new_tokens=12)
    b = engine.chat(Q, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=7, max_new_tokens=12)
    c = engine.chat(Q, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, seed=8, max_new_tokens=12)
    assert a.text == b.text
    assert a.text != c.text


def test_system_prompt_is_in_the_prompt(engine):
    with_sys = engine.tokenizer.decode(engine.encode(Q, system="You are Tuney."))
    assert "You are Tuney." in with_sys
    from_messages = engine.tokenizer.decode(engine.encode([{"role": "system", "content": "Be brief."}] + Q))
    assert "Be brief." in from_messages and "SmolLM" not in from_messages


def test_template_and_default_system_come_from_args(tiny_model):
    base = {"model_name_or_path": str(tiny_model), "max_new_tokens": 2}
    auto = ChatEngine(as_args({**base, "template": "auto"}, "infer"))
    assert auto.template_name == "auto"
    assert "named SmolLM" in auto.tokenizer.decode(auto.encode(Q))  # the tokenizer's own template
    custom = ChatEngine(as_args({**base, "default_system": "You are Tuney."}, "infer"))
    assert custom.template_name == "chatml"
    text = custom.tokenizer.decode(custom.encode(Q))
    assert text.startswith("<|im_start|>system\nYou are Tuney.<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert "Be brief." in custom.tokenizer.decode(custom.encode(Q, system="Be brief."))
    with pytest.raises(UserError, match="unknown template 'chatmll'"):
        ChatEngine(as_args({**base, "template": "chatmll"}, "infer"))


def test_template_of_the_adapter_run_is_used(tiny_model, tiny_adapter, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run)
    (run / "all_results.json").write_text('{"template": "alpaca", "train_loss": 1.0}')
    e = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(run)]}, "infer"))
    assert e.template_name == "alpaca"
    assert "### Instruction:" in e.tokenizer.decode(e.encode(Q))
    e2 = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(run)],
                             "template": "chatml"}, "infer"))
    assert e2.template_name == "chatml"  # an explicit template wins


def test_rope_scaling_of_the_adapter_run_is_applied(tiny_model, tiny_adapter, tmp_path):
    """An adapter trained with rope_scaling works on the scaled positions: chat (and eval / api / export, which load
    through the same loader) scale the base config the same way, from the run's training_args.yaml."""
    import shutil
    from engine.config import load_config, save_config
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run / "checkpoint-2")
    trained = load_config(None, {"model_name_or_path": str(tiny_model), "dataset": "identity", "rope_scaling": "yarn",
                                 "cutoff_len": "5000", "output_dir": str(run)})
    save_config(trained, run / "training_args.yaml")  # what a training run records
    e = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(run / "checkpoint-2")]},
                           "infer"))
    rope = e.model.config.rope_parameters
    assert rope["rope_type"] == "yarn" and rope["factor"] == 3.0  # 5000 / 2048 rounded up, from the run's cutoff_len
    assert rope["original_max_position_embeddings"] == 2048 and e.model.config.max_position_embeddings == 3 * 2048
    e.unload()
    explicit = ChatEngine(as_args({"model_name_or_path": str(tiny_model),
                                   "adapter_name_or_path": [str(run / "checkpoint-2")],
                                   "rope_scaling": "linear", "rope_factor": 2.0}, "infer"))
    assert explicit.model.config.rope_parameters["rope_type"] == "linear"  # an explicit setting wins
    assert explicit.model.config.rope_parameters["factor"] == 2.0
    explicit.unload()
    plain = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)]},
                               "infer"))
    assert plain.model.config.rope_parameters.get("rope_type", "default") == "default"
    plain.unload()


@pytest.mark.parametrize("messages,words", [
    ([], "non-empty"),
    ([{"role": "robot", "content": "hi"}], "messages[0].role"),
    ([{"role": "user"}], "messages[0]"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "last turn"),
])
def test_bad_messages_are_user_errors(engine, messages, words):
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
        engine.stream(messages)  # raised before the first delta, not inside the generator


def test_bad_generation_settings_name_the_field(engine):
    with pytest.raises(ConfigError, match="temperature"):
        engine.chat(Q, temperature=-1)
    with pytest.raises(UserError, match="max_tokenz"):
        engine.chat(Q, max_tokenz=5)
    with pytest.raises(UserError, match="seed"):
        engine.stream(Q, do_sample=True, seed=2**63)


def test_models_that_cannot_batch_answer_the_same_through_generate(engine, monkeypatch):
    """The fallback for models whose cache rows cannot be merged (sliding windows): transformers' generate."""
    assert engine.batches
    decoded = [engine.chat(Q, **GREEDY), "".join(engine.stream(Q, **GREEDY)),
               [r.text for r in engine.batch([Q, [{"role": "user", "content": "Hi"}]], **GREEDY)]]
    monkeypatch.setattr(engine, "_batches", False)
    assert not engine.batches
    fallback = [engine.chat(Q, **GREEDY), "".join(engine.stream(Q, **GREEDY)),
                [r.text for r in engine.batch([Q, [{"role": "user", "content": "Hi"}]], **GREEDY)]]
    assert fallback[0].text == decoded[0].text and fallback[0].completion_tokens == decoded[0].completion_tokens
    assert fallback[1:] == [decoded[0].text, decoded[2]] and decoded[1] == decoded[0].text


CONVS = [Q, [{"role": "user", "content": "Hi"}],
         [{"role": "user", "content": "Tell me a long story about a dragon and a knight, please."},
          {"role": "assistant", "content": "Once upon a time"}, {"role": "user", "content": "Go on."}]]


def _rows(engine, gen, lengths):
    return [engine.row(engine.prepare(c, max_new_tokens=n, **gen)) for c, n in zip(CONVS, lengths)]


@pytest.mark.parametrize("gen", [GREEDY, {"do_sample": True, "temperature": 0.8, "top_p": 0.9, "top_k": 40,
                                          "seed": 11}], ids=["greedy", "seeded-sampling"])
def test_rows_joining_and_leaving_a_batch_answer_as_alone(engine, gen):
    """Continuous batching: rows join a running batch at different steps (left padding grows on either side),
    end at different steps, and one is cancelled half-way; every other row gives the answer it gives alone."""
    lengths = [20, 9, 30]
    alone = [engine.decoder().run([engine.row(engine.prepare(c, max_new_tokens=n, **gen))])[0].text.text
             for c, n in zip(CONVS, lengths)]
    rows = _rows(engine, gen, lengths)
    extra = engine.row(engine.prepare(CONVS[2], max_new_tokens=30, **gen))
    dec = engine.decoder()
    dec.add([rows[2], extra])  # the longest prompt first: later rows are padded to its length
    for _ in range(3):
        dec.step()
    dec.add([rows[0]])
    dec.step()
    dec.remove(extra)  # its client left
    dec.add([rows[1]])
    peak = len(dec)
    while len(dec):
        dec.step()
    assert peak == 3 and extra.finish == "cancelled" and extra.count == 5
    assert [r.text.text for r in rows] == alone
    assert [r.count for r in rows] == lengths and all(r.finish == "length" for r in rows)


def test_engine_reads_namespace_args(tiny_model):
    from engine.config import load_config
    ns = load_config(None, [f"model_name_or_path={tiny_model}", "max_new_tokens=4", "do_sample=false"],
                     command="infer")
    e = ChatEngine(ns)
    r = e.chat(Q)
    assert r.completion_tokens <= 4 and e.template_name == "chatml"
    e.unload()
    assert e.model is None


def test_cli_chat_session(tiny_model, monkeypatch, capsys):
    from engine.cli import main
    inputs = iter(["Hello there", "clear", "What is 2+2?"])

    def fake_input(prompt=""):
        print(prompt, end="")
        try:
            return next(inputs)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)
    rc = main(["chat", f"model_name_or_path={tiny_model}", "max_new_tokens=5", "do_sample=false"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.count("Assistant: ") == 2 and "History cleared." in out
    assert err.count("tokens/s") == 2
    assert "Traceback" not in out + err


def test_cli_missing_model_is_a_user_error(tmp_path):
    from engine.cli import main
    assert main(["chat", f"model_name_or_path={tmp_path / 'nope'}"]) == 2


@pytest.mark.slow
def test_bundled_model_knows_paris(bundled_model):
    """examples/inference/smollm2.yaml as-is, greedy."""
    from engine.config import load_config
    e = ChatEngine(load_config("examples/inference/smollm2.yaml", ["do_sample=false", "max_new_tokens=40"],
                               command="infer"))
    assert e.model_path.endswith("models/SmolLM2-135M-Instruct") and e.template_name == "chatml"
    r = e.chat(Q)
    assert "Paris" in r.text
    assert r.finish_reason == "stop" and r.completion_tokens < 40  # ended at <|im_end|>
    assert "<|im_end|>" not in r.text
    assert "".join(e.stream(Q)) == r.text
    e.unload()


def test_unloaded_engine_says_so(tiny_model):
    e = ChatEngine(as_args({"model_name_or_path": str(tiny_model)}, "infer"))
    e.unload()
    with pytest.raises(UserError, match="unloaded"):
        e.chat(Q)


def test_which_models_batch():
    """Rows can be merged where every layer caches plain keys and values; a sliding-window layer cannot."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    from engine.batching import Decoder
    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=8)
    assert Decoder.supports(LlamaForCausalLM(LlamaConfig(**small)))
    assert not Decoder.supports(Gemma2ForCausalLM(Gemma2Config(**small, sliding_window=4)))
