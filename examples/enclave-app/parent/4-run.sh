#!/usr/bin/env bash
# Start the parent-side services, then the enclave.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# vsock-proxy relays the enclave's TLS bytes to KMS; its allowlist must name the endpoint.
cat > vsock-proxy.yaml <<YAML
allowlist:
- {address: kms.${AWS_REGION}.amazonaws.com, port: 443}
YAML
vsock-proxy 8000 "kms.${AWS_REGION}.amazonaws.com" 443 --config vsock-proxy.yaml &
# The instance role's credentials and the TSK blob, served to this enclave's CID only.
npx nitro-enclave credentials-server --enclave-cid "$ENCLAVE_CID" --port 8002 --file tsk=tsk.ciphertext &
nitro-cli run-enclave --eif-path "$EIF" --cpu-count 2 --memory 2048 --enclave-cid "$ENCLAVE_CID"
# For a debug console add --debug-mode — but a debug-mode enclave's PCRs are all zero and KMS
# will (rightly) refuse it: ERR_KMS_ACCESS_DENIED says so.
