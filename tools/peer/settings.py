"""What "BenchMARL's setting" is, in marlshare's names: the values the ``benchmarl`` preset and the
overrides must reproduce, the table of every setting that differs between the two libraries, and what
marlshare lacks to match all of them (``tools.bench_peer`` renders them into docs/benchmarks.md).
Plain data: imported by the marlshare side only, never by the BenchMARL runner.
"""

# The settings outside the algorithm group that BenchMARL's setting needs (the preset's header gives the
# recipe command); the timing adds TIMING_OVERRIDES on top.
MARLSHARE_OVERRIDES = ["env.name=vmas/balance", "env.options.n_agents=4", "env.max_steps=100", "env.num_envs=10",
                       "env.eval_num_envs=10", "env.options.clamp_actions=true", "strategy.name=ps",
                       "strategy.append_id=false", "eval_every=120000", "total_frames=3000000"]
TIMING_OVERRIDES = ["logger.csv=false", "logger.wandb=false", "logger.tensorboard=false", "logger.progress=false",
                    "checkpoint_every=0", "eval_every=1000000000000"]
RECIPE = ("marlshare train env=vmas/balance strategy=ps algorithm=benchmarl schedule=single env.num_envs=10 "
          "env.eval_num_envs=10 env.options.clamp_actions=true strategy.append_id=false eval_every=120000 "
          "total_frames=3000000")

# BenchMARL 1.5.2's defaults in marlshare's names, read from its conf/experiment/base_experiment.yaml,
# conf/algorithm/mappo.yaml, conf/model/layers/mlp.yaml and conf/task/vmas/balance.yaml. The preset plus
# MARLSHARE_OVERRIDES must equal every one (tests/tools/test_bench_peer.py); PEER_KEYS checks the ones
# BenchMARL reports against the peer itself before a run.
BENCHMARL = {
    "algorithm.frames_per_batch": 6000, "algorithm.epochs": 45, "algorithm.minibatch_size": 400,
    "algorithm.lr": 5e-5, "algorithm.adam_eps": 1e-6, "algorithm.max_grad_norm": 5.0,
    "algorithm.clip_grad_per_network": True, "algorithm.clip_epsilon": 0.2, "algorithm.entropy_coeff": 0.0,
    "algorithm.critic_coeff": 1.0, "algorithm.gamma": 0.99, "algorithm.lmbda": 0.9,
    "algorithm.normalize_advantage": False, "algorithm.reset_each_iteration": False, "algorithm.value_norm": False,
    "algorithm.huber_delta": None, "algorithm.clip_value_loss": False,
    "algorithm.network.actor_hidden": [256, 256], "algorithm.network.critic_hidden": [256, 256],
    "algorithm.network.activation": "tanh", "algorithm.network.layer_norm": False,
    "algorithm.network.critic_sharing": "shared", "algorithm.network.critic_agent_id": False,
    "algorithm.network.action_dist": "tanh_normal", "algorithm.network.log_std": "state",
    "algorithm.network.head_gain": None, "algorithm.network.recurrent": False,
    "env.name": "vmas/balance", "env.num_envs": 10, "env.max_steps": 100,
    "env.options.n_agents": 4, "env.options.clamp_actions": True, "env.eval_num_envs": 10, "eval_every": 120_000,
    "strategy.name": "ps", "strategy.append_id": False, "total_frames": 3_000_000,
}
PEER_KEYS = {  # marlshare name -> (section, name) in benchmarl_run.py's "settings"
    "algorithm.frames_per_batch": ("experiment", "on_policy_collected_frames_per_batch"),
    "algorithm.epochs": ("experiment", "on_policy_n_minibatch_iters"),
    "algorithm.minibatch_size": ("experiment", "on_policy_minibatch_size"), "algorithm.lr": ("experiment", "lr"),
    "algorithm.adam_eps": ("experiment", "adam_eps"), "algorithm.max_grad_norm": ("experiment", "clip_grad_val"),
    "algorithm.clip_epsilon": ("algorithm", "clip_epsilon"), "algorithm.entropy_coeff": ("algorithm", "entropy_coef"),
    "algorithm.critic_coeff": ("algorithm", "critic_coef"), "algorithm.gamma": ("experiment", "gamma"),
    "algorithm.lmbda": ("algorithm", "lmbda"), "algorithm.network.actor_hidden": ("actor_model", "num_cells"),
    "algorithm.network.critic_hidden": ("critic_model", "num_cells"),
    "env.num_envs": ("experiment", "on_policy_n_envs_per_worker"),
    "env.max_steps": ("task", "max_steps"), "env.options.n_agents": ("task", "n_agents"),
    "env.eval_num_envs": ("experiment", "evaluation_episodes"), "eval_every": ("experiment", "evaluation_interval"),
}


# (setting, marlshare key, BenchMARL's value and where it is set, note). A key takes the marlshare default
# and preset columns from plain_configs(); "=text" is what marlshare does either way (not a setting).
ROWS = [
    ("env copies x steps per iteration", "envs", "10 x 600 (`on_policy_n_envs_per_worker`)", ""),
    ("frames per iteration", "algorithm.frames_per_batch", "6000", ""),
    ("episodes restart at each iteration", "algorithm.reset_each_iteration", "no (collector carries on)", ""),
    ("PPO passes over the batch", "algorithm.epochs", "45 (`on_policy_n_minibatch_iters`)", ""),
    ("minibatch", "algorithm.minibatch_size", "400", ""),
    ("learning rate (actor, critic)", "algorithm.lr", "5e-05", ""),
    ("Adam eps", "algorithm.adam_eps", "1e-06", ""),
    ("gradient clip (norm)", "algorithm.max_grad_norm", "5 (`clip_grad_norm: true`, `clip_grad_val: 5`)", ""),
    ("clip scope", "algorithm.clip_grad_per_network", "per optimiser: actor, critic apart",
     "`false`: one norm over all"),
    ("optimisers", "=one Adam, actor and critic groups", "one Adam per loss, a backward each",
     "equivalent: disjoint parameters, same lr and eps"),
    ("clip epsilon", "algorithm.clip_epsilon", "0.2", ""),
    ("entropy coefficient", "algorithm.entropy_coeff", "0.0", "both still compute the sampled entropy"),
    ("critic coefficient", "algorithm.critic_coeff", "1.0", ""),
    ("value loss", "value_loss", "l2", "`PPOSettings.loss_critic_type`"),
    ("value clipping", "algorithm.clip_value_loss", "no (`clip_value=None`)", ""),
    ("value normalisation", "algorithm.value_norm", "no", ""),
    ("gamma", "algorithm.gamma", "0.99", ""),
    ("GAE lambda", "algorithm.lmbda", "0.9", ""),
    ("GAE over", "=the whole batch", "the whole batch (`minibatch_advantage: false`)", ""),
    ("advantage normalisation", "algorithm.normalize_advantage", "no", ""),
    ("observation / reward normalisation", "=none", "none (no VMAS env transforms)", ""),
    ("actor MLP", "algorithm.network.actor_hidden", "[256, 256]", ""),
    ("critic MLP", "algorithm.network.critic_hidden", "[256, 256]", ""),
    ("activation", "algorithm.network.activation", "tanh", ""),
    ("layer norm", "algorithm.network.layer_norm", "no (`norm_class: null`)", ""),
    ("initialisation", "algorithm.network.head_gain", "nn.Linear default", ""),
    ("actor parameters", "strategy.name", "shared (`share_policy_params: true`)", ""),
    ("agent id appended to the actor input", "strategy.append_id", "no", ""),
    ("critic input", "=all observations, concatenated", "all observations, concatenated", "VMAS has no global state"),
    ("critic parameters", "algorithm.network.critic_sharing", "shared (`share_param_critic: true`)", ""),
    ("critic output", "algorithm.network.critic_agent_id", "one value per sample, broadcast", ""),
    ("action distribution", "algorithm.network.action_dist", "TanhNormal (`use_tanh_normal: true`)", ""),
    ("scale", "algorithm.network.log_std", "state-dependent (NormalParamExtractor)",
     "auto, for PS: one learnt log-std vector"),
    ("scale mapping", "algorithm.network.std_mapping", "biased_softplus_1.0",
     "tensordict's `biased_softplus_1.0` in both"),
    ("initial scale", "algorithm.network.log_std_init", "1.0 at a zero output; head bias nn.Linear default",
     "`null`: the head keeps its drawn bias"),
    ("VMAS actions", "env.options.clamp_actions", "continuous, `clamp_actions=True`", "no effect under TanhNormal"),
    ("episode length, agents", "envmax", "100, 4 (balance.yaml)",
     "package_mass 5, random_package_pos_on_line: VMAS defaults"),
    ("run length (frames)", "total_frames", "3000000 (`max_n_frames`)", "the benchmark sets both to `--frames`"),
    ("evaluation", "eval", "every 120000 frames, 10 episodes, deterministic", "off on both sides in the timing"),
    ("compiled update step", "algorithm.compile", "eager", "a speed setting (`auto`: compiled for long phases; the preset sets it)"),
    ("torch threads", "threads", "torch default (all cores)", "set per run by the benchmark"),
    ("libraries", "=torchrl 0.14.1, tensordict 0.14", "torchrl 0.11.1, tensordict 0.11.0",
     "same defaults of ClipPPOLoss, GAE, TanhNormal in both"),
]


MISSING = """\
Every setting above is matched by the preset and the recipe command; what stays different is the
library versions (torchrl 0.14.1 here, 0.11.1 for BenchMARL 1.5.2), whose ClipPPOLoss, GAE and
TanhNormal defaults are the same."""
