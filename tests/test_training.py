"""The training loop: the prefix-cached batched loss equals the model's own per-example loss, two steps run, and a
run interrupted after a checkpoint resumes to exactly the same loss trajectory."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from train.train_config import TrainConfig
from train.train_qformer import BridgeTrainer, example_indices


@pytest.fixture(scope="module")
def llm():
    from train.frozen_models import load_tiny_llm

    torch.set_num_threads(2)
    return load_tiny_llm()


@pytest.fixture(scope="module")
def qformer_tokenizer():
    from train.frozen_models import load_qformer_tokenizer

    return load_qformer_tokenizer()


def _synthetic_set(folder, samples: int = 6, passes: int = 2, tokens: int = 5, width: int = 32):
    generator = torch.Generator().manual_seed(0)
    features = folder / "train" / "audio.safetensors"
    features.parent.mkdir(parents=True)
    mask = torch.ones(samples, passes, tokens, dtype=torch.bool)
    mask[0, 1, 3:] = False
    save_file({"tokens": torch.randn(samples, passes, tokens, width, generator=generator).half(), "mask": mask},
              str(features))
    colours = ["red", "blue", "green", "red", "yellow", "white"]
    features.with_suffix(".jsonl").write_text(
        "".join(json.dumps({"id": i, "caption": f"a {c} beep", "properties": {}}) + "\n" for i, c in enumerate(colours)))
    instructions = folder / "instructions.jsonl"
    rows = [{"sample": i, "question": "What colour is it?", "answer": c, "task": "colour"} for i, c in enumerate(colours)]
    rows += [{"sample": i, "question": "Describe the sound.", "answer": f"a {c} beep", "task": "caption"}
             for i, c in enumerate(colours)]
    instructions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return features, instructions


def _config(tmp_path, features, instructions, **overrides) -> TrainConfig:
    values = dict(modality="audio", features=str(features), instructions=str(instructions), out=str(tmp_path / "run"),
                  steps=3, batch_size=2, grad_accum=1, lr=1e-3, warmup_steps=1, checkpoint_every=2, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def _settings(width: int = 32):
    from core.qformer import QFormerSettings

    return QFormerSettings(encoder_width=width, num_query_tokens=4)


def test_batched_prefix_loss_matches_the_models_single_example_loss(tmp_path, llm, qformer_tokenizer):
    from core.model import XModalModel

    features, instructions = _synthetic_set(tmp_path)
    trainer = BridgeTrainer(_config(tmp_path, features, instructions), llm=llm, qformer_tokenizer=qformer_tokenizer,
                            settings=_settings())
    trainer.bridge.eval()
    examples = [trainer.examples[0], trainer.examples[7], trainer.examples[2]]
    model = XModalModel(llm=llm, qformer_tokenizer=qformer_tokenizer, encoders={}, encoder_modules={}, bridges={})
    with torch.no_grad():
        media = trainer.media_tokens(examples)
        expected = []
        for row, example in zip(media, examples):
            prompt = model.build_input(example["question"], {"audio": row}, history=[])
            expected.append(model.answer_loss(prompt, example["answer"]))
        answer_lengths = torch.tensor([len(trainer._answer_ids(e["answer"])) for e in examples], dtype=torch.float)
        batched = trainer.loss(examples)
    token_weighted = (torch.stack(expected) * answer_lengths).sum() / answer_lengths.sum()
    assert torch.allclose(batched, token_weighted, atol=1e-4), (batched, token_weighted)


def test_example_order_is_a_function_of_seed_and_position_and_covers_every_example():
    first_epoch = example_indices(seed=5, count=7, start=0, size=7)
    assert sorted(first_epoch) == list(range(7))
    assert example_indices(seed=5, count=7, start=3, size=6) == (first_epoch + example_indices(5, 7, 7, 7))[3:9]
    assert example_indices(seed=6, count=7, start=0, size=7) != first_epoch


def test_two_steps_then_resume_gives_the_same_step_and_loss_trajectory(tmp_path, llm, qformer_tokenizer):
    from safetensors.torch import load_file

    from core.checkpoints import load_checkpoint
    from core.model import ModalityBridge

    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())

    straight = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "straight")), **common)
    reference = straight.train()
    assert len(reference) == 3 and all(torch.isfinite(torch.tensor(reference)))
    assert reference[-1] != pytest.approx(reference[0], abs=1e-6), "the weights must change between steps"

    interrupted = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "resumed")), **common)
    first = interrupted.train(stop_after=2)
    assert interrupted.step == 2 and (tmp_path / "resumed" / "state" / "progress.json").is_file()
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "resumed")), **common)
    assert resumed.try_resume() and resumed.step == 2
    rest = resumed.train()
    assert resumed.step == 3
    assert first + rest == pytest.approx(reference, abs=1e-5)

    # the export holds trained parameters only, in fp16, and loads into a fresh bridge
    path = tmp_path / "bridge.safetensors"
    straight.export(path)
    stored = load_file(str(path))
    assert all(t.dtype == torch.float16 for t in stored.values())
    assert not any("word_embeddings" in k or "position_embeddings" in k for k in stored)
    fresh = ModalityBridge(_settings(), llm.width)
    assert load_checkpoint(fresh, path)["trained"]["qformer"]["steps"] == 3
    trained = dict(straight.bridge.named_parameters())
    assert torch.allclose(dict(fresh.named_parameters())["qformer.query_tokens"],
                          trained["qformer.query_tokens"].half().float(), atol=1e-3)


def test_caption_targets_are_the_content_words_padded_with_a_full_stop_and_exact_embeddings_score_best(llm):
    from train.word_targets import caption_embedding_loss, caption_target_ids

    tokenizer = llm.tokenizer
    ids = caption_target_ids(tokenizer, ["Two large red squares on the left.", "a " + "very " * 20 + "long"], 6)
    words = tokenizer(" two large red squares left", add_special_tokens=False).input_ids
    stop = tokenizer(".", add_special_tokens=False).input_ids[0]
    assert ids[0].tolist() == words + [stop] * (6 - len(words))
    assert ids[1].tolist() == tokenizer(" " + "very " * 20, add_special_tokens=False).input_ids[:6]
    exact = llm.embed(ids).float()
    shuffled = exact[:, torch.randperm(6, generator=torch.Generator().manual_seed(0))]
    vocabulary = ids.unique()
    assert caption_embedding_loss(llm, exact, ids, vocabulary) < caption_embedding_loss(llm, shuffled, ids, vocabulary)


def test_answer_embedding_targets_put_the_answer_first_and_keep_captions_alone():
    from train.word_targets import word_target_text

    question = {"task": "colour", "answer": "red", "question": "What color is the cube?"}
    caption_task = {"task": "caption", "answer": "a red cube", "question": "Describe the image."}
    assert word_target_text(question, "a red cube and a blue sphere", "answer_embedding") == \
        "red a red cube and a blue sphere"
    assert word_target_text(question, "a red cube", "caption_embedding") == "a red cube"
    assert word_target_text(caption_task, "a red cube", "answer_embedding") == "a red cube"


def test_answer_embedding_warm_start_lowers_its_loss_without_the_llm_forward(tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    with open(instructions, "a") as f:  # an answer word that no caption holds must still be a target class
        f.write(json.dumps({"sample": 0, "question": "How many beeps?", "answer": "four", "task": "events"}) + "\n")
    config = _config(tmp_path, features, instructions, objective="answer_embedding", steps=6, batch_size=6, lr=3e-3)
    trainer = BridgeTrainer(config, llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    four = trainer.llm.tokenizer(" four", add_special_tokens=False).input_ids
    assert set(four) <= set(trainer.word_vocabulary.tolist())
    losses = trainer.train()
    assert losses[-1] < losses[0]


def test_a_finished_run_trained_on_with_more_steps_is_what_its_continued_from_config_reproduces(
        tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    out = str(tmp_path / "continued")
    first = BridgeTrainer(_config(tmp_path, features, instructions, out=out, steps=2), **common).train()
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, out=out, steps=4, continued_from=(2,)), **common)
    assert resumed.try_resume() and resumed.step == 2
    rest = resumed.train()
    straight = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "straight"), steps=4,
                                     continued_from=(2,)), **common).train()
    assert first + rest == pytest.approx(straight, abs=1e-5)


def test_resuming_under_a_config_that_learns_something_else_is_refused(tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    BridgeTrainer(_config(tmp_path, features, instructions), **common).train(stop_after=2)
    changed = BridgeTrainer(_config(tmp_path, features, instructions, lr=5e-4), **common)
    with pytest.raises(ValueError, match=r"another config \(lr: 0.001 -> 0.0005\)"):
        changed.try_resume()
    shorter = BridgeTrainer(_config(tmp_path, features, instructions, steps=1), **common)
    with pytest.raises(ValueError, match="at step 2, past steps=1"):
        shorter.try_resume()
    kept_less_often = BridgeTrainer(_config(tmp_path, features, instructions, checkpoint_every=4), **common)
    assert kept_less_often.try_resume() and kept_less_often.step == 2


def test_train_samples_keeps_the_first_samples_examples_and_refuses_more_than_there_are(
        tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    every = BridgeTrainer(_config(tmp_path, features, instructions), **common).examples
    first = BridgeTrainer(_config(tmp_path, features, instructions, train_samples=4), **common)
    assert first.examples == [e for e in every if e["sample"] < 4] and len(first.rows) == 4
    assert {e["sample"] for e in first.micro_batch(0, 0) + first.micro_batch(1, 0)} <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="train_samples=7, but .* holds 6 samples"):
        BridgeTrainer(_config(tmp_path, features, instructions, train_samples=7), **common)


def test_the_cosine_ends_at_each_earlier_end_then_stretches_to_the_next(tmp_path):
    from train.train_config import warmup_cosine

    once, continued = warmup_cosine(2, (10,)), warmup_cosine(2, (10, 20))
    assert [continued(s) for s in range(11)] == [once(s) for s in range(11)]
    assert continued(10) == pytest.approx(0.1)
    assert continued(11) > 0.5 and continued(20) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="continued_from must be increasing steps below steps=3"):
        _config(tmp_path, "f", "i", continued_from=(3,))


def test_an_unknown_objective_is_refused(tmp_path):
    with pytest.raises(ValueError, match="objective must be"):
        _config(tmp_path, "f", "i", objective="captions")


def test_an_export_keeps_the_other_projection_only_when_it_was_trained_on_the_same_features(
        tmp_path, llm, qformer_tokenizer):
    """Q-Former and baseline share one file; a baseline trained on narrower encoder tokens cannot be kept beside a
    Q-Former for wider ones, so the export drops it (and says so in `trained`) instead of failing to load it."""
    sets = {width: _synthetic_set(tmp_path / f"width{width}", width=width) for width in (32, 48)}
    target = tmp_path / "image.safetensors"

    def run(projection, width, name):
        config = _config(tmp_path, *sets[width], projection=projection, steps=1, out=str(tmp_path / name))
        trainer = BridgeTrainer(config, llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings(width))
        trainer.train()
        trainer.export(target, merge_with=target)
        return json.loads(target.with_suffix(".json").read_text())["trained"]

    assert set(run("linear", 32, "linear")) == {"linear"}
    assert set(run("qformer", 32, "qformer")) == {"linear", "qformer"}
    assert set(run("qformer", 48, "wider")) == {"qformer"}


class _Killed(Exception):
    """Stands for a kill -9 inside save_state."""


def test_a_kill_after_the_state_files_but_before_progress_resumes_exactly_from_the_previous_state(
        tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    reference = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "straight"),
                                      checkpoint_every=1), **common).train()

    killed = BridgeTrainer(_config(tmp_path, features, instructions, checkpoint_every=1), **common)
    save_accelerate_state = killed.accelerator.save_state

    def save_then_die(folder):
        save_accelerate_state(folder)
        if killed.step == 2:  # the step-2 weights, optimizer and scheduler are on disk, its progress.json is not
            raise _Killed

    killed.accelerator.save_state = save_then_die
    with pytest.raises(_Killed):
        killed.train()
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, checkpoint_every=1), **common)
    assert resumed.try_resume() and resumed.step == 1
    assert sorted(p.name for p in (tmp_path / "run").glob("state*")) == ["state"]
    assert resumed.train() == pytest.approx(reference[1:], abs=1e-5)


def test_a_kill_between_the_state_swaps_renames_resumes_from_the_previous_complete_state(
        tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    BridgeTrainer(_config(tmp_path, features, instructions), **common).train(stop_after=2)
    run = tmp_path / "run"
    (run / "state").rename(run / "state.previous")  # the swap had moved the old state aside ...
    (run / "state.partial").mkdir()  # ... but not yet moved the new one in
    resumed = BridgeTrainer(_config(tmp_path, features, instructions), **common)
    assert resumed.try_resume() and resumed.step == 2
    assert sorted(p.name for p in run.glob("state*")) == ["state"]


def test_the_learning_rate_schedule_counts_optimizer_steps_whatever_the_number_of_processes(
        tmp_path, llm, qformer_tokenizer, monkeypatch):
    import accelerate.scheduler

    from train.train_config import warmup_cosine

    class TwoProcesses:  # what AcceleratorState reports under `accelerate launch --num_processes 2`
        num_processes = 2

    monkeypatch.setattr(accelerate.scheduler, "AcceleratorState", TwoProcesses)
    features, instructions = _synthetic_set(tmp_path)
    config = _config(tmp_path, features, instructions, steps=6, warmup_steps=2, grad_accum=2)
    trainer = BridgeTrainer(config, llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    trainer.train(stop_after=3)
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(config.lr * warmup_cosine(2, (6,))(3))


def test_a_resumed_run_logs_each_step_once(tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    first = BridgeTrainer(_config(tmp_path, features, instructions, steps=4), **common)
    first.train(stop_after=3)  # checkpoint at step 2; step 3 is logged, then the run "dies"
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, steps=4), **common)
    assert resumed.try_resume() and resumed.step == 2
    resumed.train()
    log = (tmp_path / "run" / "train.log").read_text()
    steps = [int(line.split()[2]) for line in log.splitlines() if " step " in line and " loss " in line]
    assert steps == [1, 2, 3, 4]
    assert "the 1 logged steps after it were lost" in log


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('["a list"]', "must hold a JSON object"),
    ('{"modality": "audio", "features": "f"}', "missing config keys ['instructions', 'out']"),
    ('{"modality": "audio", "features": "f", "instructions": "i", "out": "o", "steps": 0}', "steps must be"),
])
def test_a_bad_config_file_is_refused_with_a_message_naming_it(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad.json") as error:
        TrainConfig.from_json(path)
    assert message in str(error.value)


def test_a_resume_may_spell_out_differently(tmp_path, llm, qformer_tokenizer, monkeypatch):
    features, instructions = _synthetic_set(tmp_path)
    monkeypatch.chdir(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    BridgeTrainer(_config(tmp_path, features, instructions, out="run"), **common).train(stop_after=2)
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, out=str(tmp_path / "run")), **common)
    assert resumed.try_resume() and resumed.step == 2


def test_two_cpu_processes_split_each_step_and_keep_the_schedule(tmp_path):
    """The scale-out path for real: torchrun with two gloo processes (what `accelerate launch` does on GPUs)."""
    import os
    import subprocess
    import sys

    from train.train_config import warmup_cosine

    features, instructions = _synthetic_set(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(modality="audio", features=str(features), instructions=str(instructions),
                                      out=str(tmp_path / "run"), export=str(tmp_path / "audio.safetensors"),
                                      steps=3, batch_size=2, lr=1e-3, warmup_steps=1, checkpoint_every=2,
                                      num_query_tokens=4)))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "train.train_qformer", "--config", str(config), "--threads", "1"],
                          env={**os.environ, "ACCELERATE_USE_CPU": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in (tmp_path / "run" / "train.log").read_text().splitlines() if " loss " in line]
    assert [int(words[2]) for words in lines] == [1, 2, 3]  # logged once, by the main process
    schedule = warmup_cosine(1, (3,))
    assert [float(words[6]) for words in lines] == pytest.approx([1e-3 * schedule(s) for s in (1, 2, 3)], rel=1e-2)
    assert (tmp_path / "audio.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "state").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]


def test_two_processes_whose_clocks_disagree_stop_for_max_minutes_together(tmp_path):
    """Each process times its own run: when only rank 0 is out of time, rank 1 must stop with it (alone, rank 0
    waits in save_state while rank 1 waits in its next step's gradient sync, and both hang)."""
    import os
    import signal
    import subprocess
    import sys

    features, instructions = _synthetic_set(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dict(modality="audio", features=str(features), instructions=str(instructions),
                                      out=str(tmp_path / "run"), steps=3, batch_size=2, lr=1e-3, warmup_steps=1,
                                      checkpoint_every=2, num_query_tokens=4, max_minutes=0.0001)))
    launcher = tmp_path / "slow_clock_on_rank_1.py"
    launcher.write_text(
        "import os, sys, time, types\n"
        "import train.train_qformer as t\n"
        "if os.environ['RANK'] == '1':  # a clock 1000 times slower: this process is never out of time\n"
        "    start = time.perf_counter()\n"
        "    t.time = types.SimpleNamespace(perf_counter=lambda: start + (time.perf_counter() - start) / 1000,\n"
        "                                   strftime=time.strftime)\n"
        "t.main(sys.argv[1:])\n")
    launch = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                               "2", str(launcher), "--config", str(config), "--threads", "1"],
                              env={**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": os.getcwd()},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = launch.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)  # the workers too, which killing torchrun alone would orphan
        launch.communicate()
        pytest.fail("the two processes hung (one stopped for max_minutes, the other trained on)")
    assert launch.returncode == 0, stderr[-3000:]
    assert json.loads((tmp_path / "run" / "state" / "progress.json").read_text())["step"] == 1
    assert "stopping after" in (tmp_path / "run" / "train.log").read_text()


def test_features_of_another_modality_are_refused_before_the_llm_loads(tmp_path):
    features, instructions = _synthetic_set(tmp_path)
    rows_file = features.with_suffix(".jsonl")
    rows = [dict(json.loads(line), modality="image") for line in rows_file.read_text().splitlines()]
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"holds image features, not audio ones"):
        BridgeTrainer(_config(tmp_path, features, instructions), llm=None, qformer_tokenizer=None)


def test_an_init_from_bridge_for_other_features_is_a_value_error_naming_it(tmp_path, llm, qformer_tokenizer):
    from core.checkpoints import save_checkpoint
    from core.model import ModalityBridge

    features, instructions = _synthetic_set(tmp_path)
    other = tmp_path / "other_width.safetensors"
    save_checkpoint(ModalityBridge(_settings(width=16), llm.width), other, {})
    with pytest.raises(ValueError, match=r"init_from .*other_width.safetensors is not a bridge for these features"):
        BridgeTrainer(_config(tmp_path, features, instructions, init_from=str(other)), llm=llm,
                      qformer_tokenizer=qformer_tokenizer, settings=_settings())
    with pytest.raises(FileNotFoundError, match=r"init_from .*absent.safetensors does not exist; run the config"):
        BridgeTrainer(_config(tmp_path, features, instructions, init_from=str(tmp_path / "absent.safetensors")),
                      llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())


def test_training_a_finished_run_on_with_more_steps_records_where_it_had_ended(tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    export = tmp_path / "audio.safetensors"
    BridgeTrainer(_config(tmp_path, features, instructions, steps=2), **common).train()
    resumed = BridgeTrainer(_config(tmp_path, features, instructions, steps=4, export=str(export)), **common)
    assert resumed.try_resume() and resumed.config.continued_from == (2,)
    resumed.train()
    recorded = json.loads(export.with_suffix(".json").read_text())["trained"]["qformer"]["config"]
    assert recorded["steps"] == 4 and recorded["continued_from"] == [2]


def test_a_state_saved_by_another_number_of_processes_is_not_resumed(tmp_path, llm, qformer_tokenizer):
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    BridgeTrainer(_config(tmp_path, features, instructions), **common).train(stop_after=2)
    progress = tmp_path / "run" / "state" / "progress.json"
    saved = json.loads(progress.read_text())
    assert saved["processes"] == 1
    progress.write_text(json.dumps({**saved, "processes": 2}))
    with pytest.raises(ValueError, match="was trained by 2 processes, this run has 1"):
        BridgeTrainer(_config(tmp_path, features, instructions), **common).try_resume()


def test_instructions_for_more_samples_than_the_features_say_how_they_must_match(tmp_path):
    from train.train_qformer import load_instructions

    instructions = tmp_path / "i.jsonl"
    instructions.write_text(json.dumps({"sample": 5, "question": "Q?", "answer": "a", "task": "colour"}) + "\n")
    with pytest.raises(ValueError, match=r"sample 5 but the features hold 5; .*same manifest .*without --limit"):
        load_instructions(instructions, [{"sample_id": f"s{i}"} for i in range(5)])


def test_instructions_made_from_another_manifest_of_the_same_size_are_refused(tmp_path):
    from train.features import manifest_rows
    from train.qa_gen import main as qa_gen
    from train.train_qformer import load_instructions
    from train.world.dataset import generate_world

    for seed in (0, 1):
        generate_world(str(tmp_path / f"world{seed}"), {"train": 2}, ["image"], world_seed=seed, progress=False)
    qa_gen(["--data", str(tmp_path / "world0"), "--out", str(tmp_path / "instructions"), "--split", "train",
            "--modality", "image"])
    instructions = tmp_path / "instructions" / "train" / "image.jsonl"
    assert load_instructions(instructions, manifest_rows(tmp_path / "world0", "train", "image"))
    with pytest.raises(ValueError, match="sample 0 .*another manifest row"):
        load_instructions(instructions, manifest_rows(tmp_path / "world1", "train", "image"))


def test_an_unfinished_run_is_not_resumed_under_another_step_count(tmp_path, llm, qformer_tokenizer):
    """Its schedule (a cosine towards the first end, then towards the new one from mid-way) no config can record."""
    features, instructions = _synthetic_set(tmp_path)
    common = dict(llm=llm, qformer_tokenizer=qformer_tokenizer, settings=_settings())
    BridgeTrainer(_config(tmp_path, features, instructions, steps=4), **common).train(stop_after=2)
    stretched = BridgeTrainer(_config(tmp_path, features, instructions, steps=6), **common)
    with pytest.raises(ValueError, match=r"at step 2 of a run set to 4 steps.*--steps 4"):
        stretched.try_resume()
    assert BridgeTrainer(_config(tmp_path, features, instructions, steps=4), **common).try_resume()


def test_a_resume_keeps_the_continued_from_its_run_trained_under():
    """Ends the run never passed would be recorded as its schedule, and ends it still heads for, dropped, would
    bend the cosine the scheduler follows from here (it is built from the config's ends)."""
    from dataclasses import asdict
    from pathlib import Path

    from train.train_config import check_resumable

    def config(**values):
        return TrainConfig(**{**dict(modality="audio", features="f", instructions="i", out="o", steps=8), **values})

    state = Path("run/state")
    stretched = asdict(config(continued_from=(4,)))  # trained to 4, then on towards 8
    check_resumable(stretched, config(continued_from=(4,)), 6, state)
    check_resumable(stretched, config(), 6, state)  # the end it passed is kept by the resume itself
    with pytest.raises(ValueError, match=r"continued_from \[2\] names ends its run never had .*to step 6"):
        check_resumable(stretched, config(continued_from=(2, 4)), 6, state)
    finished = asdict(config(steps=4))
    check_resumable(finished, config(continued_from=(4,)), 4, state)  # the finished run's own end
    with pytest.raises(ValueError, match=r"continued_from \[6\] names ends"):
        check_resumable(finished, config(continued_from=(6,)), 4, state)
    reproducing = asdict(config(continued_from=(4,)))  # a fresh run of the stretched config, stopped at step 2
    with pytest.raises(ValueError, match=r"its run's cosine still ends at step 4 .*which this config drops"):
        check_resumable(reproducing, config(), 2, state)


def test_the_command_line_overrides_reach_the_config(tmp_path, monkeypatch):
    """A trial chain on a small world: its own sample count, warm start and checkpoint spacing, from the CLI."""
    import train.train_qformer as train_qformer

    seen = []

    class Recording:
        def __init__(self, config):
            seen.append(config)

        def try_resume(self):
            pass

        def train(self):
            pass

    monkeypatch.setattr(train_qformer, "BridgeTrainer", Recording)
    train_qformer.main(["--config", "train/configs/image_qformer.json", "--train-samples", "40", "--init-from",
                        str(tmp_path / "stage1.safetensors"), "--checkpoint-every", "2", "--steps", "4",
                        "--out", str(tmp_path / "run")])
    config = seen[0]
    assert (config.train_samples, config.init_from, config.checkpoint_every, config.steps) == (
        40, str(tmp_path / "stage1.safetensors"), 2, 4)


def test_a_config_for_an_unknown_modality_is_refused(tmp_path):
    path = tmp_path / "smell.json"
    path.write_text(json.dumps({"modality": "smell", "features": "f", "instructions": "i", "out": "o"}))
    with pytest.raises(ValueError, match="modality must be one of audio, video, points, image, not 'smell'"):
        TrainConfig.from_json(path)
