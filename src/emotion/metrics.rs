//! Evaluation measures: confusion matrix, recall per class, unweighted average recall
//! (UAR, the mean of the per-class recalls, blind to class sizes), expected calibration
//! error, and the temperature that calibrates held-out logits.

use super::softmax_in_place;

/// Confusion counts: `m[true][predicted]`.
pub fn confusion(y_true: &[usize], y_pred: &[usize], classes: usize) -> Vec<Vec<u32>> {
    let mut m = vec![vec![0u32; classes]; classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t < classes && p < classes {
            m[t][p] += 1;
        }
    }
    m
}

/// Recall of each class; `None` for classes with no examples.
pub fn recalls(confusion: &[Vec<u32>]) -> Vec<Option<f32>> {
    confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: u32 = row.iter().sum();
            (n > 0).then(|| row[c] as f32 / n as f32)
        })
        .collect()
}

/// Mean recall over the classes that have examples (0 when none do).
pub fn uar(confusion: &[Vec<u32>]) -> f32 {
    let r: Vec<f32> = recalls(confusion).into_iter().flatten().collect();
    if r.is_empty() {
        0.0
    } else {
        r.iter().sum::<f32>() / r.len() as f32
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Expected calibration error of the top label over `bins` equal-width confidence bins:
/// the sample-weighted mean gap between confidence and accuracy.
pub fn ece(probs: &[Vec<f32>], y: &[usize], bins: usize) -> f32 {
    let bins = bins.max(1);
    let mut conf = vec![0.0f64; bins];
    let mut acc = vec![0.0f64; bins];
    let mut n = vec![0usize; bins];
    for (p, &t) in probs.iter().zip(y) {
        let top = argmax(p);
        let c = p[top].clamp(0.0, 1.0);
        let b = ((c * bins as f32) as usize).min(bins - 1);
        conf[b] += c as f64;
        acc[b] += f64::from(u8::from(top == t));
        n[b] += 1;
    }
    let total: usize = n.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let gap: f64 = (0..bins).map(|b| (conf[b] - acc[b]).abs()).sum();
    (gap / total as f64) as f32
}

/// Mean negative log-likelihood of `y` under `softmax(logits / t)`.
pub fn nll(logits: &[Vec<f32>], y: &[usize], t: f32) -> f32 {
    let mut total = 0.0f64;
    let mut p = Vec::new();
    for (l, &c) in logits.iter().zip(y) {
        p.clear();
        p.extend(l.iter().map(|v| v / t));
        softmax_in_place(&mut p);
        total -= (p[c].max(1e-12) as f64).ln();
    }
    (total / logits.len().max(1) as f64) as f32
}

/// The temperature (0.25..8, log grid then refined) that minimises the NLL of held-out
/// logits: temperature scaling, which calibrates without changing any decision.
pub fn fit_temperature(logits: &[Vec<f32>], y: &[usize]) -> f32 {
    let grid = |lo: f32, hi: f32, steps: usize| -> f32 {
        (0..=steps)
            .map(|i| lo * (hi / lo).powf(i as f32 / steps as f32))
            .min_by(|a, b| nll(logits, y, *a).total_cmp(&nll(logits, y, *b)))
            .unwrap_or(1.0)
    };
    let coarse = grid(0.25, 8.0, 40);
    grid(coarse / 1.1, coarse * 1.1, 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uar_ignores_class_sizes() {
        // 8 of class 0 all right, 2 of class 1 all wrong: accuracy 0.8, UAR 0.5.
        let t = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        let p = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = confusion(&t, &p, 3);
        assert_eq!(m[1][0], 2);
        assert_eq!(recalls(&m), vec![Some(1.0), Some(0.0), None]);
        assert!((uar(&m) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn ece_of_calibrated_and_overconfident_predictions() {
        // Confidence 0.75 and right 3 times in 4: calibrated.
        let probs = vec![vec![0.75, 0.25]; 4];
        assert!(ece(&probs, &[0, 0, 0, 1], 10) < 1e-6);
        // Confidence 0.95 but right half the time: gap 0.45.
        let probs = vec![vec![0.95, 0.05]; 4];
        assert!((ece(&probs, &[0, 0, 1, 1], 10) - 0.45).abs() < 1e-5);
    }

    #[test]
    fn temperature_softens_overconfident_logits() {
        // Logits say 0 strongly, but labels are a 70/30 mix: the best T is > 1.
        let logits = vec![vec![4.0, 0.0]; 10];
        let y = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let t = fit_temperature(&logits, &y);
        let p0 = 1.0 / (1.0 + (-4.0 / t).exp());
        assert!((p0 - 0.7).abs() < 0.02, "t {t} gives {p0}");
        assert!(nll(&logits, &y, t) < nll(&logits, &y, 1.0));
    }
}
