#!/usr/bin/env bash
# Seed step 2: build the image and the EIF; keep the measurements (PCR0 = image hash).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/../../.."                       # repository root: the Dockerfile's build context
docker build -f examples/confidential-workflow/Dockerfile --build-arg TSK_KEY_ARN="$TSK_KEY_ARN" -t "$IMAGE" .
nitro-cli build-enclave --docker-uri "$IMAGE" --output-file "$EIF" | tee measurements.json
echo "PCR0: $(node -e 'console.log(JSON.parse(require("fs").readFileSync("measurements.json","utf8")).Measurements.PCR0)')"
