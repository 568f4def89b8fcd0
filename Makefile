# wsfleet — every target installs what it needs (pinned) into ./.bin.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/.bin
BUF_VERSION := v1.75.0
BUF         := $(BIN)/buf-$(BUF_VERSION)/buf
# protoc-gen-go and protoc-gen-go-grpc are pinned in buf.gen.yaml (go run pkg@version).

GOTEST_TIMEOUT ?= 15m
BENCHTIME      ?= 2s
FUZZTIME       ?= 20s
BENCH_FLAGS    ?=
DATA_DIR       ?= ./.wsfleet

.PHONY: help run build test bench bench-smoke generate lint cover fuzz \
        vet gotest verify-fmt fix-fmt verify-mod fix-mod verify-generated fix-generated verify-buf-format fix-buf-format clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BUF):
	@echo ">> installing buf $(BUF_VERSION) (first time only)"
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

build: ## build wsfleet-control, wsfleet-node, wsctl and wsfleet-bench into ./.bin
	$(GO) build -o $(BIN)/ ./controlplane/cmd/wsfleet-control ./dataplane/cmd/wsfleet-node ./sdk/cmd/wsctl ./dataplane/cmd/wsfleet-bench

# run: the node starts once the control plane's gRPC port accepts connections
# (bash's /dev/tcp; bounded by RUN_WAIT seconds). Either process ending ends
# both. Ctrl-C or SIGTERM stops both gracefully; the recipe exits 0 when both
# stopped cleanly, 1 (saying which did not) otherwise. GNU make itself, when
# the terminal's Ctrl-C reaches it too, re-raises SIGINT once the recipe is
# done (shells show nothing; $$? is 130), but reports no error.
RUN_WAIT ?= 30
run: build ## control plane (embedded store, --dev) and one node registered to it, on loopback; Ctrl-C stops both
	@echo ">> control plane: gRPC 127.0.0.1:7400, metrics 127.0.0.1:7401 (store in $(DATA_DIR)/control)"
	@echo ">> node local-1:  WebSocket ws://127.0.0.1:8080/ws, metrics 127.0.0.1:8081"
	@echo '>> in another shell: export PATH=$$PWD/.bin:$$PATH; wsctl nodes list'
	@listening() { (exec 3<>/dev/tcp/127.0.0.1/7400) 2>/dev/null; }; \
	if listening; then echo ">> 127.0.0.1:7400 is already in use (another make run?)" >&2; exit 1; fi; \
	cp= node= stopping= failed=; \
	stop() { [ -n "$$stopping" ] || { stopping=1; kill -TERM $$cp $$node 2>/dev/null || true; }; }; \
	trap stop INT TERM; \
	$(BIN)/wsfleet-control --dev --grpc-addr 127.0.0.1:7400 --http-addr 127.0.0.1:7401 \
		--data-dir $(DATA_DIR)/control --log-format text & cp=$$!; \
	for _ in $$(seq $$(( $(RUN_WAIT) * 10 ))); do \
		if listening || [ -n "$$stopping" ] || ! kill -0 $$cp 2>/dev/null; then break; fi; \
		sleep 0.1 || true; \
	done; \
	if [ -z "$$stopping" ] && kill -0 $$cp 2>/dev/null && listening; then \
		$(BIN)/wsfleet-node --control 127.0.0.1:7400 --node-id local-1 --listen 127.0.0.1:8080 \
			--metrics-addr 127.0.0.1:8081 --cache-file $(DATA_DIR)/node/policy-default.json --log-format text & node=$$!; \
		while kill -0 $$cp 2>/dev/null && kill -0 $$node 2>/dev/null; do sleep 0.2 || true; done; \
	elif [ -z "$$stopping" ] && kill -0 $$cp 2>/dev/null; then \
		echo ">> wsfleet-control is not listening on 127.0.0.1:7400 after $(RUN_WAIT)s; stopping it" >&2; failed=1; \
	fi; \
	stop; \
	cs=0; wait $$cp || cs=$$?; ns=0; [ -z "$$node" ] || wait $$node || ns=$$?; \
	if [ $$cs -ne 0 ] || [ $$ns -ne 0 ] || [ -n "$$failed" ]; then \
		echo ">> stopped: wsfleet-control exited $$cs$${node:+, wsfleet-node $$ns}" >&2; exit 1; \
	fi

test: verify-mod verify-fmt vet lint verify-generated gotest bench-smoke ## everything CI checks

bench-smoke: ## every Go benchmark once, so a change cannot break one unnoticed (figures come from make bench)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./... 2>&1 | awk '!/^(ok|PASS|goos|goarch|pkg|cpu|Benchmark|\?)/'

gotest: ## go test -race over every package
	$(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) ./...

vet: ## go vet
	$(GO) vet ./...

lint: $(BUF) verify-buf-format ## buf lint (STANDARD) and buf format
	$(BUF) lint

verify-buf-format: $(BUF)
	$(BUF) format --diff --exit-code

fix-buf-format: $(BUF)
	$(BUF) format -w

verify-fmt: ## gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed (make fix-fmt):"; echo "$$out"; exit 1; fi

fix-fmt:
	gofmt -w $$(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go')

verify-mod: ## go.mod and go.sum are tidy
	$(GO) mod tidy -diff

fix-mod:
	$(GO) mod tidy

# Regenerates in place, then fails if that changed or added anything git
# does not have (stage your work first when running it on a dirty tree).
verify-generated: $(BUF) ## generated code is up to date with the .proto files
	$(BUF) generate
	@git diff --exit-code -- api || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- 'api/*.pb.go'); \
	if [ -n "$$untracked" ]; then echo "generated files not in git: $$untracked"; exit 1; fi

generate fix-generated: $(BUF) ## buf generate
	$(BUF) generate

bench: build ## Go benchmarks, then the node's load tool side by side with bare gws
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	$(BIN)/wsfleet-bench run --node-bin $(BIN)/wsfleet-node --control-bin $(BIN)/wsfleet-control $(BENCH_FLAGS)

cover: ## test coverage report in coverage.out
	$(GO) test -count=1 -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -n 1

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo ">> $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean: ## remove ./.bin and the run data in ./.wsfleet
	rm -rf $(BIN) $(DATA_DIR) coverage.out
