#!/usr/bin/env bash
# Prints the functions' parameters (template.yaml) that come from the LLM gateway stack's
# outputs (infra/aws/llm-gateway.yaml), one Key=Value per line, for `sam deploy`:
#
#   sam deploy --guided --parameter-overrides $(infra/aws/gateway-parameters.sh llm-gateway) \
#     LettaBaseUrl=https://api.letta.com SupabaseUrl=https://abcd.supabase.co
#
# LettaBaseUrl comes from the gateway only when it runs the self-hosted Letta.
set -euo pipefail
stack=${1:?usage: gateway-parameters.sh GATEWAY_STACK_NAME}
for name in "VpcSubnetIds" "VpcSecurityGroupIds" "LiteLlmBaseUrl" "LiteLlmUrlForLetta" "LettaBaseUrl"; do
  value=$(aws cloudformation describe-stacks --stack-name "$stack" --output text \
    --query "Stacks[0].Outputs[?OutputKey=='$name'].OutputValue")
  if [ -n "$value" ] && [ "$value" != None ]; then
    printf '%s=%s\n' "$name" "$value"
  fi
done
