#!/usr/bin/env bash
# The Temporal worker on the parent: runs the workflow code and relays each agent step's sealed
# bytes to the enclave over vsock. It holds no key: it cannot read or forge agent state.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export TEMPORAL_ADDRESS="${TEMPORAL_HOST}:${TEMPORAL_PORT}"
exec node "$(dirname "$0")/worker-main.mjs"
