#!/usr/bin/env bash
# Seed step 5, improved: GenerateDataKeyWithoutPlaintext, so the TSK's plaintext never exists
# outside the enclave; then the seed's verification: an unattested Decrypt must be denied.
set -euo pipefail
source "$(dirname "$0")/env.sh"
npx nitro-enclave provision --key-id "$KEY_ALIAS" --out tsk.ciphertext
npx nitro-enclave check-policy --blob tsk.ciphertext     # expect PASS (exit 0); FAIL exits 3
