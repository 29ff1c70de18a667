#!/usr/bin/env bash
# bench/run.sh: firebreak against CUE on a generated 1,000-playbook
# repository; each part measures both sides in the same run and prints the
# ratio. Last, an alert storm against firebreak serve (bench/serve), beside
# a bare net/http + fsync server taking the same storm. See bench/README.md
# for what each figure means.
#
# Environment: N (playbooks, 1000), ALERTS (10000), RUNS (timed validate
# runs per side, 5), VALIDATE_BUDGET (seconds the timed validate runs may
# take before fewer than RUNS are done, 90), SAMPLE (alerts of the CUE
# baseline, 200), CALLS (Plan calls between the heap readings, 100000),
# BROKEN_N (playbooks of the broken copy, 50), LEDGER_FILES (incident files
# of the incident-update part, 50000; 0 skips it), LEDGER_ROUNDS (its timed
# rounds, 10), SERVE_RUNS (alert storms against firebreak serve, 1; 0 skips
# them), SERVE_ALERTS (20000), SERVE_GROUPS (2000), SERVE_BATCH (100),
# SERVE_SPREAD (batches each group's alerts are spread over, 2),
# SERVE_SENDERS (requests in flight, 8), SERVE_RATE (the arrival rate of
# each run's second storm, in alerts/s, 10000; 0 skips it).
#
# Usage: bench/run.sh [all|serve]; serve runs only the alert storms.
set -euo pipefail

N=${N:-1000}
ALERTS=${ALERTS:-10000}
RUNS=${RUNS:-5}
VALIDATE_BUDGET=${VALIDATE_BUDGET:-90}
SAMPLE=${SAMPLE:-200}
CALLS=${CALLS:-100000}
BROKEN_N=${BROKEN_N:-50}
LEDGER_FILES=${LEDGER_FILES:-50000}
LEDGER_ROUNDS=${LEDGER_ROUNDS:-10}
SERVE_RUNS=${SERVE_RUNS:-1}
SERVE_ALERTS=${SERVE_ALERTS:-20000}
SERVE_GROUPS=${SERVE_GROUPS:-2000}
SERVE_BATCH=${SERVE_BATCH:-100}
SERVE_SPREAD=${SERVE_SPREAD:-2}
SERVE_SENDERS=${SERVE_SENDERS:-8}
SERVE_RATE=${SERVE_RATE:-10000}
CUE_VERSION=v0.17.1
MODE=${1:-all}
case $MODE in
all | serve) ;;
*)
	echo "usage: bench/run.sh [all|serve]" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/firebreak-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s%N)

section() { printf '\n== %s\n' "$*"; }
fail() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}
now() { date +%s%N; }
# timed runs its arguments as a command and prints its wall and CPU (user +
# system) time in nanoseconds; it fails when the command does.
timed() {
	local TIMEFORMAT='%R %U %S'
	{ time "$@"; } 2>"$work/time" || return 1
	awk '{ printf "%.0f %.0f\n", $1 * 1e9, ($2 + $3) * 1e9 }' "$work/time"
}
# secs NS prints nanoseconds as seconds.
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
# median prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# verdict prints PASS when the awk expression $1 holds.
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }

# find_cue prints the path of a cue CLI of CUE_VERSION, installing it with
# go install when there is none.
find_cue() {
	local bin version
	for bin in "$(command -v cue || true)" "$(go env GOPATH)/bin/cue"; do
		[ -n "$bin" ] && [ -x "$bin" ] || continue
		version=$("$bin" version 2>/dev/null || true)
		if [[ $version == *"cue version $CUE_VERSION"* ]]; then
			echo "$bin"
			return
		fi
	done
	echo "installing cue $CUE_VERSION" >&2
	GOBIN="$work/gobin" go install "cuelang.org/go/cmd/cue@$CUE_VERSION" >&2
	echo "$work/gobin/cue"
}

# serve_storms sends the alert storms of bench/serve to the built firebreak
# serve, SERVE_RUNS times each, and keeps each run's goal and check lines
# for the summary: the storm as fast as it is answered (SERVE_SENDERS
# senders: the engine's capacity, held to the intake goal, and its latency
# at saturation as a figure) and the storm arriving at SERVE_RATE alerts/s,
# twice the intake goal by default (every alert accepted as it comes, and
# the latency goal). A storm not handled (an alert lost, a step run twice)
# fails.
serve_storms() {
	local i
	: >"$work/serve.summary"
	((SERVE_RUNS > 0)) || {
		echo "skip  alert storm (SERVE_RUNS=0)" >"$work/serve.summary"
		return
	}
	go build -o "$work/bin/serve" ./bench/serve
	local common=(-firebreak "$work/bin/firebreak" -alerts "$SERVE_ALERTS" -groups "$SERVE_GROUPS" -batch "$SERVE_BATCH" -spread "$SERVE_SPREAD")
	for ((i = 1; i <= SERVE_RUNS; i++)); do
		section "serve: $SERVE_ALERTS alerts, $SERVE_GROUPS groups, in webhooks of $SERVE_BATCH, to firebreak serve on loopback, as fast as answered by $SERVE_SENDERS senders (run $i of $SERVE_RUNS; goal: >= 5000 alerts/s accepted; the latency at saturation is a figure)"
		"$work/bin/serve" "${common[@]}" -senders "$SERVE_SENDERS" | tee "$work/serve-$i.out" || fail "bench/serve: run $i failed (see above)"
		grep -E '^(goal |check (request|peak|storm|engine))' "$work/serve-$i.out" | sed "s/\$/ (storm $i, as fast as answered)/" >>"$work/serve.summary"
		((SERVE_RATE > 0)) || continue
		section "serve: the same storm arriving at $SERVE_RATE alerts/s (run $i of $SERVE_RUNS; goals: every alert accepted as it arrives, >= 5000/s; first action p99 <= 50 ms)"
		"$work/bin/serve" "${common[@]}" -rate "$SERVE_RATE" -peer=false | tee "$work/serve-rate-$i.out" || fail "bench/serve: paced run $i failed (see above)"
		grep -E '^(goal |check (request|peak|storm))' "$work/serve-rate-$i.out" | sed "s/\$/ (storm $i, at $SERVE_RATE alerts\/s)/" >>"$work/serve.summary"
	done
}

section "setup"
go build -o "$work/bin/firebreak" ./cmd/firebreak
if [[ $MODE == serve ]]; then
	echo "machine    $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown CPU), $(go version | cut -d' ' -f3-)"
	serve_storms
	section "summary (alert storms, $(nproc) cores, $(secs $(($(now) - started)))s in all)"
	cat "$work/serve.summary"
	exit 0
fi
go build -o "$work/bin/gen" ./bench/gen
go build -o "$work/bin/plan" ./bench/plan
go build -o "$work/bin/ledger" ./bench/ledger
CUE=$(find_cue)
echo "machine    $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown CPU)"
echo "tools      $(go version | cut -d' ' -f3-), $("$CUE" version | head -n 1 || true)"
"$work/bin/gen" -n "$N" -nalerts "$ALERTS" -out "$work/repo" -cue "$work/repo-cue" -alerts "$work/alerts.json"
"$work/bin/gen" -n "$BROKEN_N" -files 5 -broken -out "$work/broken" -cue "$work/broken-cue"

fb_validate() { "$work/bin/firebreak" validate "$1" >"$work/fb.out" 2>&1; }
cue_vet() { (cd "$1" && "$CUE" vet -c=false ./config ./playbooks ./playbooks/tests) >"$work/cue.out" 2>&1; }

section "sanity: both sides reject the same schema error (a severity outside #Severity, $BROKEN_N playbooks)"
if fb_validate "$work/broken"; then fail "firebreak validate accepted the broken repository"; fi
grep -m1 severity "$work/fb.out" | sed 's/^/firebreak  /' || fail "firebreak did not report the severity: $(cat "$work/fb.out")"
if cue_vet "$work/broken-cue"; then fail "cue vet accepted the broken repository"; fi
grep -m1 severity "$work/cue.out" | sed 's/^/cue vet    /' || fail "cue vet did not report the severity: $(cat "$work/cue.out")"

section "validate: firebreak validate vs cue vet on $N playbooks (alternating; goal: wall-time ratio <= 1.0)"
# Warm the page cache: both trees and both binaries.
find "$work/repo" "$work/repo-cue" "$work/bin/firebreak" "$CUE" -type f -exec cat {} + >/dev/null
cue_vet "$work/repo-cue" || fail "cue vet rejected the generated repository: $(head -n 20 "$work/cue.out")"
fb_times=() cue_times=() fb_cpus=() cue_cpus=()
budget_start=$(now)
for ((i = 1; i <= RUNS; i++)); do
	out=$(timed fb_validate "$work/repo") || fail "firebreak validate rejected the generated repository: $(head -n 20 "$work/fb.out")"
	read -r fb fbcpu <<<"$out"
	out=$(timed cue_vet "$work/repo-cue") || fail "cue vet rejected the generated repository: $(head -n 20 "$work/cue.out")"
	read -r cv cvcpu <<<"$out"
	fb_times+=("$fb") cue_times+=("$cv") fb_cpus+=("$fbcpu") cue_cpus+=("$cvcpu")
	printf 'run %d      firebreak %7ss (cpu %6ss)   cue vet %7ss (cpu %6ss)\n' "$i" "$(secs "$fb")" "$(secs "$fbcpu")" "$(secs "$cv")" "$(secs "$cvcpu")"
	spent=$(($(now) - budget_start))
	if ((i < RUNS && spent + fb + cv > VALIDATE_BUDGET * 1000000000)); then
		echo "(stopping after $i of $RUNS runs: the next would pass VALIDATE_BUDGET=${VALIDATE_BUDGET}s)"
		break
	fi
done
echo "firebreak  $(tail -n 1 "$work/fb.out")"
fb_med=$(median "${fb_times[@]}")
cue_med=$(median "${cue_times[@]}")
ratio=$(awk -v a="$fb_med" -v b="$cue_med" 'BEGIN { printf "%.2f", a / b }')
printf 'median     firebreak %7ss (cpu %6ss)   cue vet %7ss (cpu %6ss)   ratio firebreak/cue %s (cpu %s)\n' \
	"$(secs "$fb_med")" "$(secs "$(median "${fb_cpus[@]}")")" "$(secs "$cue_med")" "$(secs "$(median "${cue_cpus[@]}")")" "$ratio" \
	"$(awk -v a="$(median "${fb_cpus[@]}")" -v b="$(median "${cue_cpus[@]}")" 'BEGIN { printf "%.2f", a / b }')"
validate_goal="goal  validate ratio firebreak/cue vet <= 1.0: $ratio ($(secs "$fb_med")s vs $(secs "$cue_med")s, median of ${#fb_times[@]}) $(verdict "$ratio <= 1.0")"

section "match + plan, heap: bench/plan on $N playbooks, $ALERTS alerts"
"$work/bin/plan" -repo "$work/repo" -alerts "$work/alerts.json" -sample "$SAMPLE" -calls "$CALLS" | tee "$work/plan.out"

ledger_goal="skip  incident update (LEDGER_FILES=0)"
if ((LEDGER_FILES > 0)); then
	section "incident update: bench/ledger in a repository of $LEDGER_FILES incident files vs git add && git commit (goal: ratio <= 0.5)"
	"$work/bin/ledger" -files "$LEDGER_FILES" -rounds "$LEDGER_ROUNDS" | tee "$work/ledger.out" || fail "bench/ledger failed"
	ledger_ratio=$(awk -F'git CLI: ' '/^ratio engine / { split($2, a, " "); print a[1] }' "$work/ledger.out")
	[ -n "$ledger_ratio" ] || fail "bench/ledger printed no engine ratio"
	ledger_goal="goal  incident update ratio firebreak engine/git add+commit <= 0.5 ($LEDGER_FILES incident files): $ledger_ratio $(verdict "$ledger_ratio <= 0.5")"
fi

serve_storms

section "summary ($N playbooks, $(nproc) cores, $(secs $(($(now) - started)))s in all)"
echo "$validate_goal"
echo "$ledger_goal"
grep -E '^(goal|check) ' "$work/plan.out"
cat "$work/serve.summary"
