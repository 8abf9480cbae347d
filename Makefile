# Conveniences around the two scripts the README's quick start uses.
.PHONY: run test lint demo
run:
	scripts/run
test:
	scripts/test
lint:
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy && .venv/bin/lint-imports
# The seed article, runnable: a failed deployment, its diagnosis, the fix (needs root: runc).
demo:
	demo/seed.sh
