#!/usr/bin/env bash
# Duplicates and losses per 1,000 worker kills (issue 19): runs the random-kill variant of
# tests/integration/killDuringSend.test.ts RUNS times, larger than in the suite, and adds up
# what each run reported (KILL_REPORT). Failing runs are expected where duplicates remain;
# they are counted, not fatal. Usage, from the repo root:
#
#   RUNS=25 tests/load/killWindow.sh
#
# KILL_TEST_KILLS (12) and KILL_TEST_MESSAGES (8) size each run. Takes about 40 s a run.
set -u
cd "$(dirname "$0")/../.."
runs=${RUNS:-25}
export KILL_TEST_KILLS=${KILL_TEST_KILLS:-12} KILL_TEST_MESSAGES=${KILL_TEST_MESSAGES:-8}
export KILL_REPORT=${KILL_REPORT:-$(mktemp)}
for i in $(seq "$runs"); do
  npx jest tests/integration/killDuringSend.test.ts -t 'random moments' >/dev/null 2>&1
  echo "run $i/$runs: $(tail -n 1 "$KILL_REPORT")"
done
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const sum = (key) => lines.reduce((total, line) => total + line[key], 0);
  const kills = sum("kills");
  const per1000 = (n) => (kills ? ((n * 1000) / kills).toFixed(1) : "n/a");
  console.log(`${lines.length} runs, ${kills} kills: ${sum("duplicates")} duplicates (${per1000(sum("duplicates"))} per 1,000 kills), ${sum("lost")} lost (${per1000(sum("lost"))} per 1,000 kills); report in ${process.argv[1]}`);
' "$KILL_REPORT"
