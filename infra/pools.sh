#!/usr/bin/env bash
# Work pools as code: a `cpu` pool (data, evaluation, monitoring) and a `gpu` pool (fine-tuning),
# both process pools locally. Idempotent: re-running updates the templates.
#   PREFECT_API_URL=http://127.0.0.1:4200/api bash infra/pools.sh
#   .venv/bin/prefect worker start --pool gpu     # on the CUDA host
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT=${PREFECT:-.venv/bin/prefect}
for pool in cpu gpu; do
  template=infra/process/$pool.json
  if $PREFECT work-pool inspect "$pool" >/dev/null 2>&1; then
    $PREFECT work-pool update "$pool" --base-job-template "$template"
  else
    $PREFECT work-pool create "$pool" --type process --base-job-template "$template"
  fi
done
# Never two fine-tunes at once on one GPU host.
$PREFECT work-pool set-concurrency-limit gpu 1
