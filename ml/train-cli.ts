import { catalog } from '../platform/catalog.ts';
import { arg, defineCommand, flag, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { hash32 } from '../core/hash.ts';
import { openLake } from '../platform/lake.ts';
import { createObjectStore } from '../core/object-store.ts';
import { createS3 } from '../core/s3.ts';
import { formatCount } from '../core/stats.ts';
import { SESSION_FEATURES } from './session-features.ts';
import { auc, calibration, logLoss } from './metrics.ts';
import { predict, trainBoostedTrees, trainLogistic, type PurchaseModel } from './purchase-model.ts';
import { latestModel } from './model-store.ts';
import { buildTrainingSet } from './training-set.ts';

const command = defineCommand({
  name: 'train',
  usage: ['pnpm run train [-- options]'],
  description: `Trains the session purchase model from the lake: reads s3://<bucket>/shop_events with DuckDB,
replays each session through the scorer's feature code (features as of every event before the
first purchase, labelled with whether a purchase followed), trains a logistic regression
(baseline) and boosted trees, and reports on held-out sessions: AUC, log loss, a calibration
table. The boosted trees are chosen when they are at least as good as the baseline (AUC). The
chosen model is saved as s3://<bucket>/models/purchase/v<N>/ (model.json, metrics.json).`,
  options: {
    holdout: option('F', 'share of sessions held out for evaluation', arg.fraction().default(0.3)),
    trees: option('N', 'boosted trees', arg.positiveInteger().default(100)),
    'dry-run': flag('train and report, save nothing'),
    namespace: option('NS', 'the lake and models of a namespaced pipeline', arg.text().default('')),
  },
});

/** A stable split of sessions into training and held-out sets. */
const bucket = (session: string) => hash32(session) % 1000;

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const { holdout, trees } = values;
  const config = loadConfig();
  const names = catalog(values.namespace);

  const started = Date.now();
  const lake = await openLake(config, names.namespace);
  const set = await buildTrainingSet(lake.connection).finally(() => lake.close());
  const positives = set.y.reduce((a, b) => a + b, 0);
  if (set.sessionCount < 50 || positives === 0 || positives === set.y.length) {
    throw new LakestreamError(
      'USAGE',
      `the lake holds ${set.sessionCount} shop sessions (${positives} of ${set.y.length} scoring points before a purchase): too few to train; produce some with \`pnpm run producer -- shop-events --sessions 5000\` and archive them`,
    );
  }
  const isHeldOut = set.sessions.map((s) => bucket(s) < holdout * 1000);
  const pick = <T>(xs: T[], held: boolean) => xs.filter((_, i) => isHeldOut[i] === held);
  const features = [...SESSION_FEATURES];
  const trainX = pick(set.X, false);
  const trainY = pick(set.y, false);
  const testX = pick(set.X, true);
  const testY = pick(set.y, true);
  console.error(`train: ${formatCount(set.sessionCount)} sessions, ${formatCount(set.X.length)} scoring points (${formatCount(trainX.length)} to train, ${formatCount(testX.length)} held out)`);

  const evaluate = (model: PurchaseModel) => {
    const p = testX.map((x) => predict(model, x));
    return { auc: auc(p, testY), logLoss: logLoss(p, testY), calibration: calibration(p, testY) };
  };
  const baseline = trainLogistic(features, trainX, trainY);
  const boosted = trainBoostedTrees(features, trainX, trainY, { trees });
  const results = { logistic: evaluate(baseline), gbt: evaluate(boosted) };
  const chosen = results.gbt.auc >= results.logistic.auc ? boosted : baseline;
  const chosenResult = results[chosen.kind === 'gbt' ? 'gbt' : 'logistic'];

  console.log(`| model | held-out AUC | log loss |\n|---|---:|---:|`);
  console.log(`| logistic regression (baseline) | ${results.logistic.auc.toFixed(3)} | ${results.logistic.logLoss.toFixed(3)} |`);
  console.log(`| boosted trees (${trees}) | ${results.gbt.auc.toFixed(3)} | ${results.gbt.logLoss.toFixed(3)} |`);
  console.log(`\nchosen: ${chosen.kind === 'gbt' ? 'boosted trees' : 'logistic regression'}; calibration on held-out sessions:\n`);
  console.log('| predicted | points | mean predicted | observed |\n|---|---:|---:|---:|');
  for (const bin of chosenResult.calibration) {
    if (bin.count) console.log(`| ${bin.from.toFixed(1)}–${bin.to.toFixed(1)} | ${formatCount(bin.count)} | ${bin.meanPredicted.toFixed(3)} | ${bin.observedRate.toFixed(3)} |`);
  }
  if (values['dry-run']) {
    console.log('\ndry run: nothing saved');
    return;
  }

  const s3 = createS3(config);
  try {
    const store = createObjectStore(s3, config.LAKE_BUCKET);
    const root = `${names.roots.models}/purchase`;
    const version = ((await latestModel(store, root))?.version ?? 0) + 1;
    const metrics = {
      version,
      trainedAt: new Date().toISOString(),
      features,
      chosen: chosen.kind,
      sessions: set.sessionCount,
      scoringPoints: { train: trainX.length, heldOut: testX.length, positiveShare: positives / set.y.length },
      eventTimes: { from: new Date(set.firstEventTime).toISOString(), to: new Date(set.lastEventTime).toISOString() },
      heldOut: results,
      seconds: (Date.now() - started) / 1000,
    };
    // metrics first, the model last: a version with model.json is complete
    await store.putJson(`${root}/v${version}/metrics.json`, metrics);
    await store.putJson(`${root}/v${version}/model.json`, { version, ...chosen });
    console.log(`\nsaved s3://${config.LAKE_BUCKET}/${root}/v${version}/ (model.json, metrics.json)`);
  } finally {
    s3.destroy();
  }
}

runCli('train', main);
