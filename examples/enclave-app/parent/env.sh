# Settings shared by the parent-side scripts. Edit, then `source parent/env.sh`.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export ACCOUNT_ID="${ACCOUNT_ID:?set ACCOUNT_ID to your 12-digit AWS account id}"
export ENCLAVE_ROLE="${ENCLAVE_ROLE:-EnclaveInstanceRole}"   # the parent instance's IAM role
export KEY_ALIAS="${KEY_ALIAS:-alias/confidential-workflow-tsk}"
# What the enclave pins (baked into the image, so measured in PCR0). An alias ARN names account,
# region and alias before the key exists; once it does, the key ARN (`setup` prints it) pins the
# exact key, so not even a re-pointed alias in this account can change it.
export TSK_KEY_ARN="${TSK_KEY_ARN:-arn:aws:kms:${AWS_REGION}:${ACCOUNT_ID}:${KEY_ALIAS}}"
export ENCLAVE_CID="${ENCLAVE_CID:-16}"
export IMAGE="${IMAGE:-enclave-app:latest}"
export EIF="${EIF:-enclave-app.eif}"
