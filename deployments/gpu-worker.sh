#!/usr/bin/env bash
# Start the gpu pool's process worker on the machine beside the GPU (a RunPod pod running ComfyUI, say), where
# reelflow is installed. Its flow runs get this environment: set the provider keys they need here too.
#
#   PREFECT_API_URL=http://studio.example:4200/api PREFECT_API_AUTH_STRING=user:password deployments/gpu-worker.sh
#
# PREFECT_API_URL: the studio server's API (`reelflow studio status` prints it). PREFECT_API_AUTH_STRING: the
# server's PREFECT_SERVER_API_AUTH_STRING, which a server listening beyond its own machine requires.
# REELFLOW_VENV: the virtual environment holding reelflow (default: the .venv beside this folder).
# Arguments go to `reelflow studio worker` (e.g. --limit 2; default REELFLOW_WORKER_LIMIT, else 4 flow runs at once).
# Projects are named by their absolute paths on this machine: keep their checkouts at the same paths as the
# studio's, or send the runs this machine's paths.
#
# The script becomes the worker (exec, twice: bash, then reelflow, give way to Prefect's worker), so the first Ctrl-C
# or SIGTERM reaches Prefect's worker itself: it takes no new run and stops once its runs end (a second one kills it).
# Where no systemd restarts it when it fails, a supervisor can:
#   .venv/bin/python -m reelflow.cli.supervise -- deployments/gpu-worker.sh
set -euo pipefail
: "${PREFECT_API_URL:?set PREFECT_API_URL to the API of the studio server, e.g. http://studio.example:4200/api}"
venv="${REELFLOW_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}"
export REELFLOW_HOME="${REELFLOW_HOME:-$HOME/.reelflow}"
exec "$venv/bin/reelflow" studio worker --pool gpu "$@"
