/** `npm run migrate`: creates the database if missing, applies pending migrations, then new or changed R__ files (src/migrations/README.md). */
import { config } from '../src/config';
import { migrate } from '../src/utils/migrator';

migrate(config.DATABASE_URL, { log: (line) => process.stdout.write(`migrate: ${line}\n`) }).catch((error: Error) => {
  process.stderr.write(`migrate: ${error.message}\n`);
  process.exit(1);
});
