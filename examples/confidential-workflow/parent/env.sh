# Settings shared by the parent-side scripts. Edit, then `source parent/env.sh`.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export ACCOUNT_ID="${ACCOUNT_ID:?set ACCOUNT_ID to your 12-digit AWS account id}"
export ENCLAVE_ROLE="${ENCLAVE_ROLE:-EnclaveInstanceRole}"   # the parent instance's IAM role
export KEY_ALIAS="${KEY_ALIAS:-alias/confidential-workflow-tsk}"
# What the image pins (measured in PCR0): the alias ARN, known before the key exists.
export TSK_KEY_ARN="${TSK_KEY_ARN:-arn:aws:kms:${AWS_REGION}:${ACCOUNT_ID}:${KEY_ALIAS}}"
export ENCLAVE_CID="${ENCLAVE_CID:-16}"
export IMAGE="${IMAGE:-confidential-workflow:latest}"
export EIF="${EIF:-confidential-workflow.eif}"
# The Temporal frontend the parent's worker and (through vsock-proxy) the enclave's starter use.
export TEMPORAL_HOST="${TEMPORAL_HOST:-127.0.0.1}"
export TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
export TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
export TASK_QUEUE="${TASK_QUEUE:-confidential-agents}"
export AGENTS_PORT="${AGENTS_PORT:-5000}"    # the enclave's sealed-activity listener (vsock)
