/** Area under the ROC curve: the chance that a random positive scores above a random negative (ties count half). */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j < order.length && scores[order[j]!] === scores[order[i]!]) j++;
    const averageRank = (i + j + 1) / 2;
    for (let k = i; k < j; k++) {
      if (labels[order[k]!] === 1) {
        positives++;
        rankSum += averageRank;
      }
    }
    i = j;
  }
  const negatives = order.length - positives;
  if (!positives || !negatives) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Mean negative log-likelihood of the labels under the predicted probabilities. */
export function logLoss(probabilities: ArrayLike<number>, labels: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < probabilities.length; i++) {
    const p = Math.min(1 - 1e-12, Math.max(1e-12, probabilities[i]!));
    sum -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return sum / probabilities.length;
}

export interface CalibrationBin {
  from: number;
  to: number;
  count: number;
  meanPredicted: number;
  observedRate: number;
}

/** Predictions in `bins` equal-width probability bins: what was predicted against what happened. */
export function calibration(probabilities: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): CalibrationBin[] {
  const table = Array.from({ length: bins }, (_, b) => ({ from: b / bins, to: (b + 1) / bins, count: 0, predicted: 0, observed: 0 }));
  for (let i = 0; i < probabilities.length; i++) {
    const bin = table[Math.min(bins - 1, Math.floor(probabilities[i]! * bins))]!;
    bin.count++;
    bin.predicted += probabilities[i]!;
    bin.observed += labels[i]!;
  }
  return table.map((b) => ({ from: b.from, to: b.to, count: b.count, meanPredicted: b.count ? b.predicted / b.count : 0, observedRate: b.count ? b.observed / b.count : 0 }));
}
