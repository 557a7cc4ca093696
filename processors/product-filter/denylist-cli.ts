import { parseArgs } from 'node:util';
import { catalog } from '../../core/catalog.ts';
import { cliArgs, helpText, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { openDenylist, productId } from './denylist.ts';

const usage = helpText(`Usage: pnpm run denylist -- add ID [--reason TEXT]    block product ID from now on
       pnpm run denylist -- remove ID                 let it through again
       pnpm run denylist -- list [--json]             the denylist with reasons

The list lives in Redis, or in PostgreSQL with DENYLIST_STORE=postgres (POSTGRES_URL). The
running product filter reads it again every 250 ms: a change takes effect within a second,
without a restart. Products already passed stay passed; blocked ones are archived with
the reason to s3://<lake>/blocked_products/.

Options:
  --reason TEXT    why (stored with the entry, copied to each product it blocks; default "denylisted")
  --namespace NS   a namespaced pipeline's denylist
  --json           list as JSON
  -h, --help
`);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    allowPositionals: true,
    options: {
      reason: { type: 'string' },
      namespace: { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const [command, id, ...rest] = positionals;
  const wants = { add: 1, remove: 1, list: 0 }[command as 'add' | 'remove' | 'list'];
  if (wants === undefined) throw new LakestreamError('USAGE', `expected add, remove or list${command ? `, got ${JSON.stringify(command)}` : ''} (see --help)`);
  if ((id === undefined ? 0 : 1 + rest.length) !== wants) throw new LakestreamError('USAGE', wants ? `${command} takes one product id (see --help)` : 'list takes no product id (see --help)');
  if (id !== undefined) productId(id);
  if (values.reason !== undefined && (command !== 'add' || !values.reason.trim())) throw new LakestreamError('USAGE', command === 'add' ? '--reason must not be empty' : `--reason goes with add, not ${command}`);
  const store = openDenylist(loadConfig(), catalog(values.namespace).redisKeys.productDenylist);
  try {
    if (command === 'add') {
      const added = await store.add(id!, values.reason ?? 'denylisted');
      console.log(`${added ? 'added' : 'updated'} product ${productId(id!)}: ${values.reason ?? 'denylisted'}`);
    } else if (command === 'remove') {
      const removed = await store.remove(id!);
      console.log(removed ? `removed product ${productId(id!)}` : `product ${productId(id!)} was not on the denylist`);
    } else {
      const entries = [...(await store.read())].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1));
      if (values.json) console.log(JSON.stringify(entries.map(([product_id, entry]) => ({ product_id, ...entry }))));
      else if (!entries.length) console.log('the denylist is empty');
      else for (const [product, entry] of entries) console.log(`${product}\t${entry.added_at ? new Date(entry.added_at).toISOString() : '-'}\t${entry.reason}`);
    }
  } finally {
    await store.close();
  }
}

runCli('denylist', main);
