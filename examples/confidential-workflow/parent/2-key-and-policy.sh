#!/usr/bin/env bash
# Seed steps 1 and 3: the key, its alias and the attestation policy, from the measurements.
# Run with key-administrator credentials. Idempotent: rerun after every image rebuild.
set -euo pipefail
source "$(dirname "$0")/env.sh"
npx nitro-enclave policy --account "$ACCOUNT_ID" --enclave-role "$ENCLAVE_ROLE" --measurements measurements.json --out kms-policy.json
npx nitro-enclave setup --alias "$KEY_ALIAS" --policy kms-policy.json
