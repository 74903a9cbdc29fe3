"""Bad inputs, every config group (issue 18): each is one line on stderr, exit code 2, naming the bad
value and what is valid (the expected type, the choices, the hyperparameters a strategy takes), and no
run directory is made. The cases the issue reproduced run in the default suite; the rest of the 100+
(every group: env, algorithm, algorithm.network, strategy, schedule, logger, top level, sweep spec)
are marked slow, since each composes the config with Hydra (about a second on a busy CPU)."""

import pytest

from tests.recipes.test_faults import TINY

# two phases switching inside the tiny budget, so each case fails on its own setting only
BASE = [a for a in TINY if not a.startswith("schedule")] + ["schedule.switch_at=320"]
SINGLE = ["schedule=single", "schedule.switch_at=null"]
LORA = ["strategy=ps_lora", *SINGLE]

# (overrides, a phrase of the one line); the issue's reproductions first
ISSUE = [
    (["algorithm.entropy_coeff=inf"], "algorithm.entropy_coeff=inf must be a finite number"),
    (["total_frames=nan"], "total_frames=nan must be an integer"),
    (["algorithm.lr=abc"], "algorithm.lr=abc must be a number"),
    (["algorithm.epochs=2.5"], "algorithm.epochs=2.5 must be an integer"),
    (["seed=1.5"], "seed=1.5 must be an integer"),
    (["algorithm.actor_hidden=64"], "algorithm.actor_hidden moved to algorithm.network.actor_hidden (write "
                                    "algorithm.network.actor_hidden=64)"),  # which then names the type:
    (["algorithm.network.actor_hidden=64"], "algorithm.network.actor_hidden=64 must be a list of integers"),
    (["algorithm.network.activation=relux"], "activation='relux' is not valid; choose one of ['elu', 'gelu', 'relu', "
                                             "'tanh']"),
    (["strategy=nps", "strategy.rank=8"], "strategy.rank: strategy nps takes no 'rank'; its hyperparameters are "
                                          "['append_id']"),
    (["schedule.switch_at=null", "total_frames=2400", "schedule.chain=[ps,ps_lora]", "schedule.phases.1.strategy.rank=0"],
     "schedule phase 1 (ps_lora): ps_lora: rank must be a positive integer, got rank=0"),
    (["schedule.phases.1.strategy.rank=32"], "schedule.phases.1.strategy.rank=32 exceeds min(d_in, d_out)=16 of the "
                                             "adapted hidden layer (16 -> 16): choose rank <= 16"),
    (["logger=wandbx"], "logger='wandbx' is not valid; choose one of ['csv', 'default', 'tensorboard']"),
    (["algorithm=mapo"], "algorithm='mapo' is not valid; choose one of ['a2po', 'benchmarl', 'happo', 'ippo', "
                         "'lorasa_a2po_mamujoco'"),
    (["threads=0"], "threads=0 is not a thread count: give an integer >= 1, or threads=null for auto"),
]

MORE = [
    # env
    (["env=foo/bar"], "unknown env family 'foo'"),
    (["env.num_envs=0"], "env.num_envs=0 must be > 0"),
    (["env.num_envs=abc"], "env.num_envs=abc must be an integer"),
    (["env.eval_num_envs=-1"], "env.eval_num_envs=-1 must be > 0"),
    (["env.max_steps=0"], "env.max_steps=0 must be an integer >= 1"),
    (["env.max_steps=1.5"], "env.max_steps=1.5 must be an integer (or null)"),
    (["env.eval_max_steps=0"], "env.eval_max_steps=0 must be > 0"),
    (["env.options.n_agents=0"], "env.options.n_agents=0 must be an integer >= 1"),
    (["env.options.n_agents=1.5"], "env.options.n_agents=1.5 must be an integer >= 1"),
    (["env.options.nagents=3"], "vmas/navigation does not take the option(s) {'nagents': 3}"),
    (["env.options.max_steps=inf"], "env.options.max_steps=inf must be a finite number"),
    (["env.device=tpu"], "env.device='tpu' is not a device; valid: cpu, cuda, cuda:N, auto"),
    (["env.name=vmas/nope"], "unknown VMAS scenario 'nope'"),
    (["env.num_envs=7"], "algorithm.frames_per_batch=160 must be a multiple of env.num_envs=7"),
    # algorithm
    (["algorithm.lr=0"], "algorithm.lr=0.0 must be > 0"),
    (["algorithm.lr=-1"], "algorithm.lr=-1.0 must be > 0"),
    (["algorithm.lr=inf"], "algorithm.lr=inf must be a finite number"),
    (["algorithm.lr=nan"], "algorithm.lr=nan must be a finite number"),
    (["algorithm.epochs=0"], "algorithm.epochs=0 must be > 0"),
    (["algorithm.minibatch_size=1000"], "algorithm.minibatch_size=1000 exceeds frames_per_batch=160"),
    (["algorithm.frames_per_batch=0"], "algorithm.frames_per_batch=0 must be > 0"),
    (["algorithm.gamma=1.5"], "algorithm.gamma=1.5 must be in (0, 1]"),
    (["algorithm.gamma=nan"], "algorithm.gamma=nan must be a finite number"),
    (["algorithm.lmbda=2"], "algorithm.lmbda=2.0 must be in [0, 1]"),
    (["algorithm.entropy_coeff=-0.1"], "algorithm.entropy_coeff=-0.1 must be >= 0"),
    (["algorithm.clip_epsilon=-1"], "algorithm.clip_epsilon=-1.0 must be >= 0"),
    (["algorithm.critic_coeff=nan"], "algorithm.critic_coeff=nan must be a finite number"),
    (["algorithm.max_grad_norm=0"], "algorithm.max_grad_norm=0.0 must be > 0"),
    (["algorithm.max_grad_norm=inf"], "algorithm.max_grad_norm=inf must be a finite number"),
    (["algorithm.adam_eps=0"], "algorithm.adam_eps=0.0 must be > 0"),
    (["algorithm.compile=maybe"], "algorithm.compile='maybe' is not valid; choose one of ['auto', 'true', 'false']"),
    (["algorithm.huber_delta=-1"], "algorithm.huber_delta=-1.0 must be > 0"),
    (["algorithm.normalize_advantage=maybe"], "algorithm.normalize_advantage=maybe must be true or false"),
    (["algorithm.foo=1"], "unknown setting algorithm.foo; valid keys here: ['a2po', 'adam_eps'"),
    (["algorithm=a2po", "algorithm.a2po.loop=turns"], "algorithm.a2po.loop='turns' is not valid"),
    (["algorithm=a2po", "algorithm.a2po.others_clip=inf"], "algorithm.a2po.others_clip=inf must be a finite number"),
    (["algorithm.chunk_length=7", "algorithm.network.recurrent=true"], "algorithm.chunk_length=7 must divide"),
    # algorithm.network
    (["algorithm.network.actor_hidden=[16,0]"], "algorithm.network.actor_hidden entry=0 must be an integer >= 1"),
    (["algorithm.network.critic_hidden=[abc]"], "algorithm.network.critic_hidden=[abc] must be a list of integers"),
    (["algorithm.network.action_dist=beta"], "algorithm.network.action_dist='beta' is not valid"),
    (["algorithm.network.critic_sharing=half"], "algorithm.network.critic_sharing='half' is not valid"),
    (["algorithm.network.log_std=weird"], "log_std='weird' is not valid; choose one of ['auto', 'shared', 'agent'"),
    (["algorithm.network.std_mapping=softmax"], "algorithm.network.std_mapping='softmax' is not valid"),
    (["algorithm.network.head_gain=-1"], "algorithm.network.head_gain=-1.0 must be > 0"),
    (["algorithm.network.recurrent=maybe"], "algorithm.network.recurrent=maybe must be true or false"),
    (["algorithm.network.recurrent=true", "algorithm.network.gru_hidden=0"],
     "algorithm.network.gru_hidden=0 must be an integer >= 1"),
    (["algorithm.network.log_std_init=inf"], "algorithm.network.log_std_init=inf must be a finite number"),
    (["algorithm.network.foo=1"], "unknown setting algorithm.network.foo; valid keys here: ['action_dist'"),
    # strategy
    (["strategy=nonsense"], "strategy='nonsense' is not valid; choose one of ["),
    ([*LORA, "strategy.rank=0"], "ps_lora: rank must be a positive integer, got rank=0"),
    ([*LORA, "strategy.rank=32"], "strategy.rank=32 exceeds min(d_in, d_out)=16"),
    ([*LORA, "strategy.rank=8", "algorithm.network.actor_hidden=[4,4]"], "strategy.rank=8 exceeds min(d_in, d_out)=4"),
    ([*LORA, "algorithm.network.recurrent=true", "algorithm.network.gru_hidden=2"],
     "strategy.rank=8 exceeds min(d_in, d_out)=6 of the adapted gru_ih layer (16 -> 6)"),
    ([*LORA, "strategy.alpha=inf"], "strategy.alpha=inf must be a finite number"),
    ([*LORA, "strategy.init=c_zero"], "init must be one of ['a_zero', 'b_zero'], got init='c_zero'"),
    ([*LORA, "strategy.layers=[foo]"], "LoRA layers must be 'all' or a non-empty list"),
    (["strategy=seps", "strategy.clusters=[0,1,0]"], "clusters has 3 labels but the network has n_agents=2"),
    (["strategy.append_id=maybe"], "ps: append_id must be True or False, got append_id='maybe'"),
    # schedule
    (["schedule=nope"], "schedule='nope' is not valid; choose one of ['single', 'three_phase', 'two_phase', "
                        "'two_phase_auto']"),
    ([*SINGLE, "schedule.phases.0.strategy.rank=4"], "schedule.phases.0.strategy.rank: strategy ps takes no 'rank'"),
    (["schedule.phases.1.strategy.foo=3"], "strategy ps_lora takes no 'foo'; its hyperparameters are ['append_id', "
                                           "'rank'"),
    (["schedule.chain=[]"], "schedule.chain is empty"),
    (["schedule.switch_at=99999"], "until=99999 must be a frame count in (0, total_frames=640)"),
    (["schedule.switch_at=[1,2]"], "schedule.switch_at=[1, 2] needs 1 frame count(s)"),
    (["schedule.switch_at=abc"], "schedule.switch_at='abc' must be a frame count (an integer), or a list of them"),
    (["schedule.phases.1.lr=-1"], "schedule phase 1: lr=-1.0 must be a positive number"),
    (["schedule.phases.1.lr=inf"], "schedule.phases.1.lr=inf must be a finite number"),
    (["schedule=two_phase_auto", "schedule.auto_window=1"], "auto switch window must be an integer >= 2"),
    (["schedule=two_phase_auto", "schedule.auto_decel=nan"], "schedule.auto_decel=nan must be a finite number"),
    (["schedule.phases.5.until=3"], "schedule.phases.5 does not exist"),
    # logger
    (["logger.wandb_mode=foo"], "logger.wandb_mode='foo' is not valid; choose one of ['auto', 'offline'"),
    (["logger.csv=maybe"], "logger.csv=maybe must be true or false"),
    (["logger.wandb_tags=abc"], "logger.wandb_tags=abc must be a list of strings"),
    (["logger.wandb_project=[a,b]"], "logger.wandb_project=[a,b] must be a string"),
    # top level
    (["total_frames=0"], "total_frames=0 must be > 0"),
    (["total_frames=-5"], "total_frames=-5 must be > 0"),
    (["seed=-1"], "seed=-1 must be an integer >= 0"),
    (["threads=-1"], "threads=-1 is not a thread count"),
    (["threads=auto"], "threads=auto must be an integer (or null)"),
    (["eval_every=0"], "eval_every=0 must be > 0"),
    (["checkpoint_every=-1"], "checkpoint_every=-1 must be >= 0"),
    (["checkpoint_keep=0"], "checkpoint_keep=0 must be an integer >= 1"),
    (["max_nonfinite=0"], "max_nonfinite=0 must be > 0"),
    (["device=tpu"], "device='tpu' is not a device"),
    (["+totl_frames=1200"], "unknown setting totl_frames; did you mean total_frames?"),
    (["resume=/nonexistent"], "resume='/nonexistent': no config.yaml there"),
    (["experiment=lorasa/nope"], "experiment='lorasa/nope' is not a cell of the LoRASA grid"),
]

CASES = ISSUE + [pytest.param(*case, marks=pytest.mark.slow) for case in MORE]


@pytest.mark.parametrize("bad,message", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_input_is_one_line_before_any_directory(tmp_path, bad, message, monkeypatch, capsys):
    from marlshare.recipes.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *BASE, *bad])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marlshare: invalid configuration: "), lines
    assert message in lines[0], lines[0]
    assert "_schema" not in lines[0] and "Error merging override" not in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run directory, no outputs/ or multirun/


# --- sweep specs ---------------------------------------------------------------------------------
SPECS = {"unknown.yaml": "name: x\nbogus: 1\n", "broken.yaml": "name: [x\n  axes: {\n", "list.yaml": "- a\n- b\n",
         "notlist.yaml": "axes:\n  seed: 3\n", "overrides.yaml": "overrides: seed=1\n",
         "cpus.yaml": "axes:\n  seed: [0, 1]\ncpus_per_trial: -1\n", "ok.yaml": "axes:\n  seed: [0, 1]\n"}

SWEEPS = [
    (["no_such_spec"], "sweep spec 'no_such_spec' is neither a file nor a name in"),
    (["unknown.yaml"], "unknown keys ['bogus']; valid keys: ['name', 'overrides', 'axes'"),
    (["broken.yaml"], "broken.yaml: not valid YAML (while parsing a flow sequence"),
    (["list.yaml"], "a sweep spec is a mapping with the keys ['name', 'overrides'"),
    (["notlist.yaml"], "axes.seed: expected a non-empty list of values, got 3"),
    (["overrides.yaml"], "overrides: expected a list of key=value strings, got 'seed=1'"),
    (["cpus.yaml"], "cpus_per_trial=-1 must be a finite number > 0"),
    (["ok.yaml", "--gpus-per-trial", "-1"], "gpus_per_trial=-1.0 must be a finite number >= 0"),
    (["seed=0,0"], "axis seed repeats a value: ['0', '0']"),
    (["seed=[0,1"], "command line: no viable alternative at input '[0,1'"),
    (["seed=0,1", "algorithm.lr=abc"], "2 of 2 trials have an invalid configuration (nothing was started): seed-0, "
                                       "seed-1: ConfigCompositionException: algorithm.lr=abc must be a number"),
    (["strategy=ps,bogus"], "strategy-bogus: MissingConfigException: strategy='bogus' is not valid; choose one of"),
    (["seed=0,1", "total_frames=nan"], "total_frames=nan must be an integer"),
    (["algorithm.network.activation=relux,relu"], "activation-relux: ConfigError: algorithm.network.activation='relux'"),
]


@pytest.mark.parametrize("args,message", [SWEEPS[0], SWEEPS[2], SWEEPS[10]]
                         + [pytest.param(*case, marks=pytest.mark.slow) for i, case in enumerate(SWEEPS)
                            if i not in (0, 2, 10)], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_sweep_is_one_line_before_any_directory(tmp_path, args, message, monkeypatch, capsys):
    from marlshare.recipes.sweep import main

    for name, text in SPECS.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "sweep")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marlshare sweep: "), lines
    assert message in lines[0], lines[0]
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "sweeps").exists()
