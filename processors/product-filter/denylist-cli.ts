import { parseArgs } from 'node:util';
import { catalog } from '../../core/catalog.ts';
import { cliArgs, helpText, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { createRedis, redisFailure } from '../../core/redis.ts';
import { addToDenylist, productId, readDenylist, removeFromDenylist } from './denylist.ts';

const usage = helpText(`Usage: pnpm run denylist -- add ID [--reason TEXT]    block product ID from now on
       pnpm run denylist -- remove ID                 let it through again
       pnpm run denylist -- list [--json]             the denylist with reasons

The running product filter reads the list again every 250 ms: a change takes effect within a
second, without a restart. Products already passed stay passed; blocked ones are archived with
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
  const key = catalog(values.namespace).redisKeys.productDenylist;
  const config = loadConfig();
  const redis = createRedis(config, { maxRetriesPerRequest: 1, connectTimeout: 3_000 });
  const run = async () => {
    if (command === 'add') {
      const added = await addToDenylist(redis, key, id!, values.reason ?? 'denylisted');
      console.log(`${added ? 'added' : 'updated'} product ${productId(id!)}: ${values.reason ?? 'denylisted'}`);
    } else if (command === 'remove') {
      const removed = await removeFromDenylist(redis, key, id!);
      console.log(removed ? `removed product ${productId(id!)}` : `product ${productId(id!)} was not on the denylist`);
    } else {
      const entries = [...(await readDenylist(redis, key))].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1));
      if (values.json) console.log(JSON.stringify(entries.map(([product_id, entry]) => ({ product_id, ...entry }))));
      else if (!entries.length) console.log('the denylist is empty');
      else for (const [product, entry] of entries) console.log(`${product}\t${entry.added_at ? new Date(entry.added_at).toISOString() : '-'}\t${entry.reason}`);
    }
  };
  try {
    await run().catch((error: unknown) => {
      throw redisFailure(redis, config.REDIS_URL, error);
    });
  } finally {
    if (redis.status === 'ready') await redis.quit();
    else redis.disconnect();
  }
}

runCli('denylist', main);
