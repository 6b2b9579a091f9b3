# Two commands for a fresh machine: `make dev` serves the API on http://127.0.0.1:8080 backed by
# real local services; `make test` runs every test against them. Both install what is missing.
.PHONY: dev test unit soak bench fuzz openapi install services-up services-down services-status lint fmt build deploy-check sam-image sam-build sam-invoke litellm-image

dev:
	bash infra/local/dev.sh

test:
	bash infra/local/test.sh

# Every unit test (beside the code, in every crate), without the local stack.
unit:
	cargo test --workspace --exclude api-tests --lib --bins

# The full load and soak runs (about 15 minutes): 50 users x 10 turns at once, and 10 minutes of
# random faults in front of every dependency; `make test` runs short versions of both.
soak:
	LOAD_USERS=50 LOAD_TURNS=10 SOAK_SECS=600 bash infra/local/test.sh load:: --nocapture

# The benchmark (about 15 minutes): release builds, the backend side by side with Letta direct,
# the bootstraps against the Python stack; writes docs/benchmarks.md and docs/bench-latency.png.
bench:
	bash infra/local/bench.sh $(ARGS)

# A longer schemathesis run (200 cases per operation instead of 30).
fuzz:
	FUZZ_EXAMPLES=200 bash infra/local/test.sh openapi::schemathesis --nocapture

# The API description from the code, committed as docs/openapi.json (a test fails when they differ).
openapi:
	cargo run -q -p gateway -- openapi > docs/openapi.json

install:
	bash infra/local/install.sh all

build:
	cargo build --workspace

services-up:
	cargo build -p scripted-llm -p local-auth -p gateway
	bash infra/local/services.sh up

services-down:
	bash infra/local/services.sh down

services-status:
	bash infra/local/services.sh status

lint:
	bash infra/local/lint.sh

fmt:
	cargo fmt --all

# Deployment checks (CI): lint the SAM template and build the four arm64 bootstraps with
# cargo-lambda and Zig (no container). Deploy with `sam deploy --guided` (see README).
deploy-check:
	bash infra/deploy/check.sh

# The functions in Lambda containers with `sam local invoke` (Docker; root starts the daemon):
# the base image (SAM's own, or one built from Debian's packages where ECR Public is out of
# reach), `sam build`'s arm64 output, and one event through one function against the running
# local stack (`make services-up` first). ACCESS_TOKEN / REFRESH_TOKEN in the environment
# replace those placeholders in the event.
#   make sam-invoke FUNCTION=AuthFunction EVENT=events/auth-register.json
sam-image:
	bash infra/local/sam.sh image

sam-build:
	bash infra/local/sam.sh build

sam-invoke:
	bash infra/local/sam.sh invoke "$(FUNCTION)" "$(EVENT)"

# The LLM gateway's LiteLLM image (infra/aws/litellm/Dockerfile) built here, as `make test` does
# (Docker; where no registry is reachable, on a Debian base with the offline Prisma engine).
# For ECR, build and push it as docs/deploying.md says.
litellm-image:
	bash infra/local/litellm-image.sh
