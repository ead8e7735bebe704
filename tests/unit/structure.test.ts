/**
 * The seed's mandate, checked: every module under src/ has its unit test file at the mirrored
 * path (`src/X/Y.ts` → `tests/unit/X/Y.test.ts`). A new module without one fails this test,
 * which names it. Declaration files (`.d.ts`) hold no code and are not modules to test.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const SRC = path.join(ROOT, 'src');

/**
 * Modules allowed to go without a unit test file, each with the reason. Empty on purpose: the
 * mandate names no exception, and an entry here should be argued in review.
 */
const EXEMPT: ReadonlyArray<{ module: string; reason: string }> = [];

/** Every .ts file below `dir`, as a path relative to src/ with forward slashes. */
function modulesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return modulesBelow(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path.relative(SRC, full).split(path.sep).join('/')] : [];
  });
}

const mirroredTest = (module: string) => `tests/unit/${module.replace(/\.ts$/, '.test.ts')}`;

describe('unit test layout', () => {
  const modules = modulesBelow(SRC).sort();

  it('when src/ is listed, then it finds the modules (the walk itself works)', () => {
    expect(modules).toEqual(expect.arrayContaining(['app.ts', 'routes.ts', 'server.ts', 'controllers/agents.ts', 'workers/kinds.ts']));
    expect(modules.some((module) => module.endsWith('.d.ts'))).toBe(false);
  });

  it('when a module of src/ has no unit test file at its mirrored path, then it is named here', () => {
    const exempt = new Set(EXEMPT.map((entry) => entry.module));
    const missing = modules.filter((module) => !exempt.has(module) && !existsSync(path.join(ROOT, mirroredTest(module))));

    expect(missing.map((module) => `src/${module} → ${mirroredTest(module)}`)).toEqual([]);
  });

  it('when a module is exempted, then it still exists (no stale exemptions)', () => {
    expect(EXEMPT.map((entry) => entry.module).filter((module) => !modules.includes(module))).toEqual([]);
  });
});
