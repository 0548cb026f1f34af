#!/usr/bin/env bash
# PPO critic comparison behind the default of `ppo.critic` (README, "Why shared by default"): the shared critic
# against the value adapter, seeds 0-2, each from the same SFT adapter and reward model, then one evaluation of
# all six policies and SFT on the same held-out briefs.
#   scripts/compare_critics.sh [RUN_DIR]    RUN_DIR: a finished `rlhf-ads sft` + `rlhf-ads reward` run of the
#                                           quickstart recipe (default runs/quickstart); STEPS=12 BRIEFS=80 as env
set -euo pipefail
RUN=${1:-runs/quickstart}
STEPS=${STEPS:-12}
BRIEFS=${BRIEFS:-80}
OUT=${OUT:-runs/critics}
RLHF_ADS=${RLHF_ADS:-rlhf-ads}
models="sft"
for seed in 0 1 2; do
  for critic in adapter shared; do
    name=$critic-s$seed
    mkdir -p "$OUT/$name"
    ln -sfn "$(realpath "$RUN/reward")" "$OUT/$name/reward"  # '{run_dir}/reward' in the recipe's reward mix
    start=$(date +%s)
    "$RLHF_ADS" ppo recipes/quickstart.yaml output_dir="$OUT" run_name="$name" seed=$seed ppo.critic=$critic \
      ppo.steps="$STEPS" ppo.sft="$RUN/sft" ppo.training.save_steps=100 > "$OUT/$name.log" 2>&1
    echo "$name: $(( $(date +%s) - start )) s"
    models="$models,$OUT/$name/ppo/policy"
  done
done
mkdir -p "$OUT/eval"
ln -sfn "$(realpath "$RUN/reward")" "$OUT/eval/reward"
ln -sfn "$(realpath "$RUN/sft")" "$OUT/eval/sft"
"$RLHF_ADS" evaluate recipes/quickstart.yaml output_dir="$OUT" run_name=eval "evaluate.models=[$models]" \
  evaluate.num_briefs="$BRIEFS"
