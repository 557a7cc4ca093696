/**
 * The purchase models, as plain JSON so an artifact in S3 is the model: a logistic regression
 * (the baseline) and gradient-boosted decision trees (depth-limited regression trees fitted to
 * the logistic loss's gradient on quantile-binned features). Small and dependency-free: the
 * session scorer evaluates either in microseconds.
 */
export interface LogisticModel {
  kind: 'logistic';
  features: string[];
  mean: number[];
  scale: number[];
  weights: number[];
  bias: number;
}

interface TreeNode {
  /** Leaf: the value added to the log-odds. */
  value?: number;
  feature?: number;
  threshold?: number;
  left?: TreeNode;
  right?: TreeNode;
}

export interface BoostedTreesModel {
  kind: 'gbt';
  features: string[];
  base: number;
  learningRate: number;
  trees: TreeNode[];
}

export type PurchaseModel = LogisticModel | BoostedTreesModel;

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

export function predict(model: PurchaseModel, x: ArrayLike<number>): number {
  if (model.kind === 'logistic') {
    let z = model.bias;
    for (let j = 0; j < model.weights.length; j++) z += model.weights[j]! * ((x[j]! - model.mean[j]!) / model.scale[j]!);
    return sigmoid(z);
  }
  let z = model.base;
  for (const tree of model.trees) {
    let node = tree;
    while (node.value === undefined) node = x[node.feature!]! <= node.threshold! ? node.left! : node.right!;
    z += model.learningRate * node.value;
  }
  return sigmoid(z);
}

/** Full-batch gradient descent on the L2-regularised log loss, on standardised features. */
export function trainLogistic(features: string[], X: number[][], y: number[], options: { epochs?: number; learningRate?: number; l2?: number } = {}): LogisticModel {
  const n = X.length;
  const d = features.length;
  const mean = Array.from({ length: d }, (_, j) => X.reduce((s, row) => s + row[j]!, 0) / n);
  const scale = Array.from({ length: d }, (_, j) => Math.sqrt(X.reduce((s, row) => s + (row[j]! - mean[j]!) ** 2, 0) / n) || 1);
  const Z = X.map((row) => row.map((v, j) => (v - mean[j]!) / scale[j]!));
  const weights = new Array<number>(d).fill(0);
  let bias = 0;
  const lr = options.learningRate ?? 0.5;
  const l2 = options.l2 ?? 1e-4;
  for (let epoch = 0; epoch < (options.epochs ?? 400); epoch++) {
    const gradient = new Array<number>(d).fill(0);
    let gradientBias = 0;
    for (let i = 0; i < n; i++) {
      let z = bias;
      for (let j = 0; j < d; j++) z += weights[j]! * Z[i]![j]!;
      const error = sigmoid(z) - y[i]!;
      gradientBias += error;
      for (let j = 0; j < d; j++) gradient[j]! += error * Z[i]![j]!;
    }
    bias -= (lr * gradientBias) / n;
    for (let j = 0; j < d; j++) weights[j]! -= lr * (gradient[j]! / n + l2 * weights[j]!);
  }
  return { kind: 'logistic', features, mean, scale, weights, bias };
}

/**
 * Gradient boosting with the logistic loss: each tree fits the residuals (label − probability)
 * with Newton-step leaf values, splits chosen among up to `bins` quantile thresholds per feature.
 */
export function trainBoostedTrees(
  features: string[],
  X: number[][],
  y: number[],
  options: { trees?: number; depth?: number; learningRate?: number; minLeaf?: number; bins?: number } = {},
): BoostedTreesModel {
  const n = X.length;
  const d = features.length;
  const learningRate = options.learningRate ?? 0.1;
  const depth = options.depth ?? 3;
  const minLeaf = options.minLeaf ?? 20;
  const bins = options.bins ?? 32;
  const positives = y.reduce((a, b) => a + b, 0);
  const base = Math.log(Math.max(positives, 1) / Math.max(n - positives, 1));
  const thresholds = Array.from({ length: d }, (_, j) => {
    const sorted = X.map((row) => row[j]!).sort((a, b) => a - b);
    const cuts = new Set<number>();
    for (let b = 1; b < bins; b++) cuts.add(sorted[Math.floor((b * n) / bins)]!);
    return [...cuts].sort((a, b) => a - b);
  });
  const score = new Float64Array(n).fill(base);
  const trees: TreeNode[] = [];

  const build = (rows: number[], gradient: Float64Array, hessian: Float64Array, level: number): TreeNode => {
    let g = 0;
    let h = 0;
    for (const i of rows) (g += gradient[i]!), (h += hessian[i]!);
    const leaf = { value: g / (h + 1e-6) };
    if (level >= depth || rows.length < 2 * minLeaf) return leaf;
    let best = { gain: 0, feature: -1, threshold: 0 };
    const parent = (g * g) / (h + 1e-6);
    for (let j = 0; j < d; j++) {
      const cuts = thresholds[j]!;
      if (!cuts.length) continue;
      const gBin = new Float64Array(cuts.length + 1);
      const hBin = new Float64Array(cuts.length + 1);
      const cBin = new Int32Array(cuts.length + 1);
      for (const i of rows) {
        const v = X[i]![j]!;
        let lo = 0;
        let hi = cuts.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (v <= cuts[mid]!) hi = mid;
          else lo = mid + 1;
        }
        gBin[lo]! += gradient[i]!;
        hBin[lo]! += hessian[i]!;
        cBin[lo]!++;
      }
      let gl = 0;
      let hl = 0;
      let cl = 0;
      for (let b = 0; b < cuts.length; b++) {
        gl += gBin[b]!;
        hl += hBin[b]!;
        cl += cBin[b]!;
        const cr = rows.length - cl;
        if (cl < minLeaf || cr < minLeaf) continue;
        const gr = g - gl;
        const hr = h - hl;
        const gain = (gl * gl) / (hl + 1e-6) + (gr * gr) / (hr + 1e-6) - parent;
        if (gain > best.gain) best = { gain, feature: j, threshold: cuts[b]! };
      }
    }
    if (best.feature < 0) return leaf;
    const left = rows.filter((i) => X[i]![best.feature]! <= best.threshold);
    const right = rows.filter((i) => X[i]![best.feature]! > best.threshold);
    return { feature: best.feature, threshold: best.threshold, left: build(left, gradient, hessian, level + 1), right: build(right, gradient, hessian, level + 1) };
  };

  const all = Array.from({ length: n }, (_, i) => i);
  for (let t = 0; t < (options.trees ?? 100); t++) {
    const gradient = new Float64Array(n);
    const hessian = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = sigmoid(score[i]!);
      gradient[i] = y[i]! - p;
      hessian[i] = Math.max(p * (1 - p), 1e-6);
    }
    const tree = build(all, gradient, hessian, 0);
    trees.push(tree);
    for (let i = 0; i < n; i++) {
      let node = tree;
      while (node.value === undefined) node = X[i]![node.feature!]! <= node.threshold! ? node.left! : node.right!;
      score[i]! += learningRate * node.value;
    }
  }
  return { kind: 'gbt', features, base, learningRate, trees };
}
