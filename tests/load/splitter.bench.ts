/**
 * `npm run bench -- splitter`: how long the reply splitter (src/utils/textSplit.ts) takes on a
 * hostile model reply of 300k characters, against a plain linear scan of the same text in the
 * same process (the ratio is what to compare across machines). A model's reply is split in the
 * message worker's event loop, so a splitter that is quadratic in a whitespace run stalls
 * every conversation the worker serves and lets its leases lapse.
 *
 * SPLITTER_MODULE (default: src/utils/textSplit.ts) measures another implementation of
 * `splitText`, e.g. an earlier commit's copy, for a before/after figure.
 * Exits non-zero only when the splitter answers wrongly.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';

type Split = (text: string, limits: { maxChars?: number; maxBytes?: number }) => string[];

const LENGTH = 300_000;
/** Enough repetitions for a stable median, without spending minutes on a slow splitter. */
const BUDGET_MS = 2_000;
const MAX_RUNS = 25;

interface Case {
  name: string;
  text: string;
  limits: { maxChars?: number; maxBytes?: number };
  expected: string[];
}

const CASES: Case[] = [
  // Blank all through: trimmed to nothing before any boundary is looked for.
  { name: 'all whitespace', text: ' '.repeat(LENGTH), limits: { maxChars: 4096 }, expected: [] },
  // The hostile one: a character at each end keeps the run from being trimmed away. A tenth
  // of the length first, to show how the time grows with it.
  { name: 'whitespace, a word at each end (1/10)', text: `a${' '.repeat(LENGTH / 10 - 2)}b`, limits: { maxChars: 4096 }, expected: ['a', 'b'] },
  { name: 'whitespace, a word at each end', text: `a${' '.repeat(LENGTH - 2)}b`, limits: { maxChars: 4096 }, expected: ['a', 'b'] },
  { name: 'same, tabs and spaces, Instagram', text: `a${' \t'.repeat((LENGTH - 2) / 2)}b`, limits: { maxBytes: 1000 }, expected: ['a', 'b'] },
];

/** The least any splitter must do: look at every character once. */
function linearScan(text: string): number {
  let whitespace = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0x20 || (unit >= 0x09 && unit <= 0x0d)) whitespace++;
  }
  return whitespace;
}

/** The median time of `run`, called at least once; `first` gets the first call's answer. */
function medianMs<T>(run: () => T, first: (answer: T) => void = () => undefined): { ms: number; runs: number } {
  const times: number[] = [];
  const started = performance.now();
  while (times.length < MAX_RUNS && (times.length === 0 || performance.now() - started < BUDGET_MS)) {
    const t0 = performance.now();
    const answer = run();
    times.push(performance.now() - t0);
    if (times.length === 1) first(answer);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, runs: times.length };
}

async function main(): Promise<number> {
  const modulePath = path.resolve(process.env.SPLITTER_MODULE ?? path.join(__dirname, '../../src/utils/textSplit.ts'));
  const { splitText } = (await import(modulePath)) as { splitText: Split };
  console.log(`splitter: ${path.relative(process.cwd(), modulePath)}; ${LENGTH.toLocaleString('en')} characters per reply`);
  console.log('case                                   splitter ms   linear scan ms     ratio   runs');
  let wrong = 0;
  for (const testCase of CASES) {
    const split = medianMs(
      () => splitText(testCase.text, testCase.limits),
      (parts) => {
        if (JSON.stringify(parts) === JSON.stringify(testCase.expected)) return;
        console.error(`${testCase.name}: got ${parts.length} parts, expected ${JSON.stringify(testCase.expected)}`);
        wrong++;
      },
    );
    const scan = medianMs(() => linearScan(testCase.text));
    console.log(
      `${testCase.name.padEnd(38)} ${split.ms.toFixed(2).padStart(11)}   ${scan.ms.toFixed(3).padStart(14)}   ${(split.ms / scan.ms).toFixed(1).padStart(7)}   ${String(split.runs).padStart(4)}`,
    );
  }
  console.log('ratio: splitter ÷ linear scan, medians; a linear splitter keeps it about the same at 1/10 and full length');
  return wrong === 0 ? 0 : 1;
}

void main().then((code) => process.exit(code));
