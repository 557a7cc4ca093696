import type { ObjectStore } from '../core/object-store.ts';
import type { PurchaseModel } from './purchase-model.ts';

export type VersionedModel = PurchaseModel & { version: number };

/** The newest complete model under `<root>/v<N>/model.json` (written last by `pnpm run train`), if any. */
export async function latestModel(store: ObjectStore, root: string): Promise<VersionedModel | undefined> {
  const versions = (await store.list(`${root}/`))
    .map((key) => Number(/\/v(\d+)\/model\.json$/.exec(key)?.[1] ?? 0))
    .filter((version) => version > 0);
  if (!versions.length) return undefined;
  const newest = Math.max(...versions);
  return (await store.getJson<VersionedModel>(`${root}/v${newest}/model.json`))?.value;
}
