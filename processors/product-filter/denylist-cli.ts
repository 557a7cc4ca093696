import { catalog } from '../../platform/catalog.ts';
import { arg, defineCommand, flag, option, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { openDenylist, productId } from './denylist.ts';

const command = defineCommand({
  name: 'denylist',
  usage: ['pnpm run denylist -- add ID [--reason TEXT]    block product ID from now on', 'pnpm run denylist -- remove ID                 let it through again', 'pnpm run denylist -- list [--json]             the denylist with reasons'],
  description: `The list lives in Redis, or in PostgreSQL with DENYLIST_STORE=postgres (POSTGRES_URL). The
running product filter reads it again every 250 ms: a change takes effect within a second,
without a restart. Products already passed stay passed; blocked ones are archived with
the reason to s3://<lake>/blocked_products/.`,
  positionals: true,
  options: {
    reason: option('TEXT', 'why (stored with the entry, copied to each product it blocks; default "denylisted")', arg.nonEmpty().optional()),
    namespace: option('NS', "a namespaced pipeline's denylist", arg.text().default('')),
    json: flag('list as JSON'),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const [subcommand, id, ...rest] = positionals;
  const wants = { add: 1, remove: 1, list: 0 }[subcommand as 'add' | 'remove' | 'list'];
  if (wants === undefined) throw new LakestreamError('USAGE', `expected add, remove or list${subcommand ? `, got ${JSON.stringify(subcommand)}` : ''} (see --help)`);
  if ((id === undefined ? 0 : 1 + rest.length) !== wants) throw new LakestreamError('USAGE', wants ? `${subcommand} takes one product id (see --help)` : 'list takes no product id (see --help)');
  if (id !== undefined) productId(id);
  if (values.reason !== undefined && subcommand !== 'add') throw new LakestreamError('USAGE', `--reason goes with add, not ${subcommand}`);
  const store = openDenylist(loadConfig(), catalog(values.namespace).redisKeys.productDenylist);
  try {
    if (subcommand === 'add') {
      const added = await store.add(id!, values.reason ?? 'denylisted');
      console.log(`${added ? 'added' : 'updated'} product ${productId(id!)}: ${values.reason ?? 'denylisted'}`);
    } else if (subcommand === 'remove') {
      const removed = await store.remove(id!);
      console.log(removed ? `removed product ${productId(id!)}` : `product ${productId(id!)} was not on the denylist`);
    } else {
      const entries = [...(await store.read()).entries].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1));
      if (values.json) console.log(JSON.stringify(entries.map(([product_id, entry]) => ({ product_id, ...entry }))));
      else if (!entries.length) console.log('the denylist is empty');
      else for (const [product, entry] of entries) console.log(`${product}\t${entry.added_at ? new Date(entry.added_at).toISOString() : '-'}\t${entry.reason}`);
    }
  } finally {
    await store.close();
  }
}

runCli('denylist', main);
