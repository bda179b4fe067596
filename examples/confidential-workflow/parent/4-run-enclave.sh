#!/usr/bin/env bash
# The parent's relays, then the enclave. The parent relays bytes it cannot read:
#  - vsock 8000 → KMS (TLS from the enclave to KMS, end to end);
#  - vsock 7233 → the Temporal frontend, for the enclave's starter (it sends only sealed input);
#  - the credentials server (instance-role credentials and the TSK blob) on vsock 8002.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cat > vsock-proxy.yaml <<YAML
allowlist:
- {address: kms.${AWS_REGION}.amazonaws.com, port: 443}
- {address: ${TEMPORAL_HOST}, port: ${TEMPORAL_PORT}}
YAML
vsock-proxy 8000 "kms.${AWS_REGION}.amazonaws.com" 443 --config vsock-proxy.yaml &
vsock-proxy 7233 "$TEMPORAL_HOST" "$TEMPORAL_PORT" --config vsock-proxy.yaml &
npx nitro-enclave credentials-server --enclave-cid "$ENCLAVE_CID" --port 8002 --file tsk=tsk.ciphertext &
nitro-cli run-enclave --eif-path "$EIF" --cpu-count 2 --memory 4096 --enclave-cid "$ENCLAVE_CID"
# No --debug-mode: a debug enclave's PCRs are all zero and KMS refuses it (ERR_KMS_ACCESS_DENIED).
