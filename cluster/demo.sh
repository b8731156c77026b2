#!/usr/bin/env bash
# `make demo`: the whole job end to end on this machine.
#   1. Bible en->fr corpus (data/bible-en-fr), 2. a local Kafka broker and Ray head,
#   3. a model trained through a Ray job (reused when runs/demo-en-fr/best exists),
#   4. the streaming app deployed through a Ray job, 5. English verses produced to
#   `demo-en`, 6. the French read back from `demo-fr` and printed, 7. everything the
#   demo started is stopped again (a broker that was already running is left running).
# The console shows the steps, one line per training report and the translations; what Ray,
# Kafka and the jobs say besides goes to runs/demo-logs/demo-<time>.log, named at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" RAY_AUTH_MODE=disabled
export S2S_KAFKA_BOOTSTRAP="${S2S_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-19092}}"
JOBS="$(bash cluster/ray/head.sh address)"
STARTED_KAFKA=0
MODEL=runs/demo-en-fr/best

mkdir -p runs/demo-logs
LOG="$PWD/runs/demo-logs/demo-$(date +%Y%m%dT%H%M%S).log"

step() { printf '\n== %s\n' "$*"; printf '\n== %s\n' "$*" >>"$LOG"; }

# What the console shows of a job's output: the trainer's report lines and the deployer's
# status lines (the rest is Ray's INFO logging, kept in $LOG).
console_lines() {
    sed -un -e 's/^.*s2s-train: /  train: /p' -e 's/^\(s2s-[a-z0-9-]*: running,.*\)$/  \1/p'
}

# `ray job submit`, its output in $LOG and the lines that matter on the console; retried
# while the new head's job agent is still registering (the Jobs API answers 500 "No
# available agent" for the first seconds). A failed job prints the end of its output.
submit() {
    local tries=0 attempt
    attempt="$(mktemp)"
    until ray job submit --address "$JOBS" --working-dir . -- "$@" 2>&1 \
            | tee "$attempt" | tee -a "$LOG" | console_lines; do
        if grep -q "No available agent" "$attempt" && ((++tries < 30)); then
            sleep 2; continue
        fi
        echo "job failed; the end of its output (all of it in $LOG):" >&2
        tail -25 "$attempt" >&2; rm -f "$attempt"; return 1
    done
    rm -f "$attempt"
}

cleanup() {
    step "stopping what the demo started"
    ray job submit --address "$JOBS" --working-dir . -- python jobs/deploy.py \
        --config cluster/serve/demo.yaml --delete >/dev/null 2>&1 || true
    bash cluster/ray/head.sh stop >>"$LOG" 2>&1 || true
    if ((STARTED_KAFKA)); then bash cluster/kafka/kafka.sh stop >>"$LOG" 2>&1 || true; fi
    printf '\nlog of this demo (Ray, Kafka, the jobs): %s\n' "$LOG"
}
trap cleanup EXIT

step "data: Bible en->fr (held-out books: Acts for dev; Daniel, Romans, 1 Corinthians for test)"
[[ -f data/bible-en-fr/train.parquet ]] || s2s data prepare bible --src en --tgt fr --out data/bible-en-fr 2>>"$LOG"

step "kafka: single-node KRaft broker on $S2S_KAFKA_BOOTSTRAP"
if [[ -z "${S2S_KAFKA_EXTERNAL:-}" ]] && ! bash cluster/kafka/kafka.sh status >/dev/null 2>&1; then
    bash cluster/kafka/kafka.sh start >>"$LOG" 2>&1 || { tail -30 "$LOG" >&2; exit 1; }
    STARTED_KAFKA=1
    grep "kafka.sh: Apache Kafka .* up on" "$LOG" | tail -1
fi

step "ray: local head"
bash cluster/ray/head.sh start >>"$LOG" 2>&1 || { tail -30 "$LOG" >&2; exit 1; }
echo "Jobs API on $JOBS"

if [[ -f "$MODEL/model.safetensors" ]]; then
    step "model: reusing $MODEL (delete it to train again)"
else
    step "model: training configs/demo-en-fr.yaml through a Ray job (~6 minutes)"
    submit python jobs/train.py \
        --config configs/demo-en-fr.yaml --workers 1 --data-root "$PWD" --out "$PWD/runs/demo-en-fr"
fi

step "kafka: fresh demo topics (outputs of an earlier demo are not mixed in)"
python -c "from s2s.stream.kafka_admin import delete_topics as d; d('$S2S_KAFKA_BOOTSTRAP', ['demo-en', 'demo-fr', 'demo-dead-letter'], wait_s=60)" 2>>"$LOG"

step "serve: deploying cluster/serve/demo.yaml (demo-en -> demo-fr)"
submit python jobs/deploy.py --config cluster/serve/demo.yaml --model-root "$PWD"

step "produce: English verses (from the held-out test books) to demo-en"
SENTENCES=(
    "Grace to you and peace from God our Father and the Lord Jesus Christ."
    "For all have sinned, and fall short of the glory of God."
    "Love is patient and is kind."
    "The king answered and said to Daniel, Your God is the God of gods."
    "Be not overcome by evil, but overcome evil with good."
    "In the beginning, God created the heavens and the earth."
)
for i in "${!SENTENCES[@]}"; do printf 'verse-%d\t%s\n' "$i" "${SENTENCES[$i]}"; done \
    | s2s produce --topic demo-en --key-sep TAB 2>>"$LOG"

step "consume: French from demo-fr"
s2s consume --topic demo-fr --from-beginning --count "${#SENTENCES[@]}" --timeout 180 2>>"$LOG" \
    | while IFS=$'\t' read -r key text; do
        printf '%-8s %s\n         -> %s\n' "$key" "${SENTENCES[${key#verse-}]}" "$text"
    done
