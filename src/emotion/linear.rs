//! Multinomial logistic regression: the classifier behind both the voice and the words
//! model. Small enough to read in a JSON file, and linear, so each feature's share of a
//! score is `weight × value` (which is what the cues report).

use serde::{Deserialize, Serialize};

use super::softmax_in_place;

/// A trained softmax-linear classifier: `logits = W·x + b`, probabilities `softmax(logits / T)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    /// One row of weights per class, each `dims` long.
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
    /// Calibration temperature (1 = as trained); fitted on held-out logits.
    pub temperature: f32,
}

impl Softmax {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// Input dimension.
    pub fn dims(&self) -> usize {
        self.weights.first().map_or(0, Vec::len)
    }

    /// Raw logits (before the temperature) into `out` (`classes()` long).
    pub fn logits_into(&self, x: &[f32], out: &mut [f32]) {
        for ((o, w), b) in out.iter_mut().zip(&self.weights).zip(&self.bias) {
            *o = b + w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        }
    }

    /// Calibrated class probabilities.
    pub fn probs(&self, x: &[f32]) -> Vec<f32> {
        self.probs_scaled(x, 1.0)
    }

    /// Class probabilities with the temperature multiplied by `scale` (≥ 1 flattens them;
    /// the order of the classes never changes).
    pub fn probs_scaled(&self, x: &[f32], scale: f32) -> Vec<f32> {
        let mut p = vec![0.0; self.classes()];
        self.logits_into(x, &mut p);
        let t = (self.temperature * scale).max(1e-3);
        p.iter_mut().for_each(|v| *v /= t);
        softmax_in_place(&mut p);
        p
    }

    /// Checks the shapes: every row `dims` long, all values finite, temperature positive.
    pub fn validate(&self, dims: usize, classes: usize) -> Result<(), String> {
        if self.bias.len() != classes || self.weights.len() != classes {
            return Err(format!(
                "expected {classes} classes, found {} weight rows and {} biases",
                self.weights.len(),
                self.bias.len()
            ));
        }
        if let Some(r) = self.weights.iter().position(|r| r.len() != dims) {
            return Err(format!(
                "weight row {r} has {} values, expected {dims}",
                self.weights[r].len()
            ));
        }
        let finite = self
            .weights
            .iter()
            .flatten()
            .chain(&self.bias)
            .all(|v| v.is_finite());
        if !(finite && self.temperature.is_finite() && self.temperature > 0.0) {
            return Err("non-finite weight or non-positive temperature".into());
        }
        Ok(())
    }
}

/// Training settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitConfig {
    /// L2 penalty on the weights (not the biases), per sample.
    pub l2: f32,
    /// Full-batch Adam steps.
    pub iterations: usize,
    /// Adam's first step size, decayed to 0 along a half cosine over the iterations.
    pub learning_rate: f32,
    /// Weight each class so that all classes count equally (what UAR rewards).
    pub balance_classes: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            l2: 1e-2,
            iterations: 600,
            learning_rate: 0.05,
            balance_classes: true,
        }
    }
}

/// The factor of Adam's step at `step` (1-based) of `iterations`: a half cosine from 1 down
/// to 0. At a constant step, full-batch Adam on this objective can bounce instead of settling,
/// and the model is wherever the last step lands (models/README.md, "The trainer's optimiser
/// ended on a spike"); a step that shrinks to nothing ends at the minimum it approached.
fn cosine_decay(step: usize, iterations: usize) -> f32 {
    let t = step as f32 / iterations.max(1) as f32;
    0.5 * (1.0 + (std::f32::consts::PI * t.min(1.0)).cos())
}

/// Fits a [`Softmax`] to rows `x` (all the same length) with labels `y` in `0..classes`,
/// by full-batch Adam (its step decayed along a half cosine) on the weighted cross-entropy
/// plus L2. Deterministic: zero start, no sampling. Inputs are expected roughly standardised.
pub fn fit(x: &[Vec<f32>], y: &[usize], classes: usize, cfg: &FitConfig) -> Softmax {
    fit_weighted(x, y, None, classes, cfg)
}

/// [`fit`] with a weight per row (`None`: every row 1). With class balancing, each class's
/// rows share the same total weight, so the row weights set how a class's weight is spread
/// (over speakers, over corpora), not how much the class counts.
pub fn fit_weighted(
    x: &[Vec<f32>],
    y: &[usize],
    row_w: Option<&[f32]>,
    classes: usize,
    cfg: &FitConfig,
) -> Softmax {
    let dims = x.first().map_or(0, Vec::len);
    let n = x.len().min(y.len());
    let row = |i: usize| row_w.map_or(1.0, |w| w[i]);
    let sample_w: Vec<f32> = match row_w {
        None => {
            let mut counts = vec![0usize; classes];
            for &c in &y[..n] {
                counts[c] += 1;
            }
            let present = counts.iter().filter(|c| **c > 0).count().max(1);
            y[..n]
                .iter()
                .map(|&c| {
                    if cfg.balance_classes {
                        n as f32 / (present as f32 * counts[c] as f32)
                    } else {
                        1.0
                    }
                })
                .collect()
        }
        Some(_) => {
            let mut totals = vec![0.0f64; classes];
            for (i, &c) in y[..n].iter().enumerate() {
                totals[c] += row(i) as f64;
            }
            let present = totals.iter().filter(|t| **t > 0.0).count().max(1);
            let all: f64 = totals.iter().sum();
            y[..n]
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    if cfg.balance_classes {
                        (row(i) as f64 * all / (present as f64 * totals[c])) as f32
                    } else {
                        row(i)
                    }
                })
                .collect()
        }
    };
    let total_w: f32 = sample_w.iter().sum::<f32>().max(1e-6);

    let stride = dims + 1; // weights then bias, per class
    let mut theta = vec![0.0f32; classes * stride];
    let mut m = vec![0.0f32; theta.len()];
    let mut v = vec![0.0f32; theta.len()];
    let mut grad = vec![0.0f32; theta.len()];
    let mut p = vec![0.0f32; classes];
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    for step in 1..=cfg.iterations {
        grad.fill(0.0);
        for i in 0..n {
            let xi = &x[i];
            for (c, pc) in p.iter_mut().enumerate() {
                let row = &theta[c * stride..(c + 1) * stride];
                *pc = row[dims] + row[..dims].iter().zip(xi).map(|(w, x)| w * x).sum::<f32>();
            }
            softmax_in_place(&mut p);
            let w = sample_w[i] / total_w;
            for (c, pc) in p.iter().enumerate() {
                let d = w * (pc - if c == y[i] { 1.0 } else { 0.0 });
                let g = &mut grad[c * stride..(c + 1) * stride];
                for (gj, xj) in g[..dims].iter_mut().zip(xi) {
                    *gj += d * xj;
                }
                g[dims] += d;
            }
        }
        for c in 0..classes {
            for j in 0..dims {
                let k = c * stride + j;
                grad[k] += cfg.l2 * theta[k];
            }
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        let rate = cfg.learning_rate * cosine_decay(step, cfg.iterations);
        for k in 0..theta.len() {
            m[k] = b1 * m[k] + (1.0 - b1) * grad[k];
            v[k] = b2 * v[k] + (1.0 - b2) * grad[k] * grad[k];
            theta[k] -= rate * (m[k] / c1) / ((v[k] / c2).sqrt() + eps);
        }
    }
    Softmax {
        weights: (0..classes)
            .map(|c| theta[c * stride..c * stride + dims].to_vec())
            .collect(),
        bias: (0..classes).map(|c| theta[c * stride + dims]).collect(),
        temperature: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weighted, class-balanced cross-entropy plus L2 that `fit_weighted` minimises.
    fn objective(m: &Softmax, x: &[Vec<f32>], y: &[usize], w: &[f32], l2: f32) -> f64 {
        let mut totals = [0.0f64; 3];
        for (&c, &wi) in y.iter().zip(w) {
            totals[c] += wi as f64;
        }
        let all: f64 = totals.iter().sum();
        let sw: Vec<f64> = y
            .iter()
            .zip(w)
            .map(|(&c, &wi)| wi as f64 * all / (3.0 * totals[c]))
            .collect();
        let total: f64 = sw.iter().sum();
        let mut ce = 0.0;
        for ((xi, &c), s) in x.iter().zip(y).zip(&sw) {
            ce -= s / total * (m.probs(xi)[c].max(1e-12) as f64).ln();
        }
        let norm: f64 = m
            .weights
            .iter()
            .flatten()
            .map(|v| (*v as f64).powi(2))
            .sum();
        ce + 0.5 * l2 as f64 * norm
    }

    /// On overlapping classes with uneven row weights the fit ends at a minimum (as many
    /// steps again do not move the objective) and the step shrinks from the full rate to
    /// nothing. This small problem settles at a constant step too: the bounce the decay
    /// cures showed on the real features (models/README.md, "The trainer's optimiser ended
    /// on a spike"), which no test here carries.
    #[test]
    fn the_fit_settles_with_a_decaying_step() {
        let mut rng = crate::core::rng::SplitMix64::new(3);
        let (mut x, mut y, mut w) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..600 {
            let c = i % 3;
            let row: Vec<f32> = (0..40)
                .map(|j| rng.normal() + if j % 3 == c { 0.6 } else { 0.0 })
                .collect();
            x.push(row);
            y.push(c);
            w.push(if i % 7 == 0 { 0.05 } else { 1.0 });
        }
        let cfg = |iterations| FitConfig {
            l2: 0.03,
            iterations,
            ..FitConfig::default()
        };
        let half = fit_weighted(&x, &y, Some(&w), 3, &cfg(300));
        let full = fit_weighted(&x, &y, Some(&w), 3, &cfg(600));
        let (a, b) = (
            objective(&half, &x, &y, &w, 0.03),
            objective(&full, &x, &y, &w, 0.03),
        );
        assert!((a - b).abs() < 1e-3, "300 steps {a}, 600 steps {b}");
        assert!(cosine_decay(1, 600) > 0.99);
        assert!((cosine_decay(300, 600) - 0.5).abs() < 1e-6);
        assert_eq!(cosine_decay(600, 600), 0.0);
    }

    /// Three well-separated clusters in 2-D are learned exactly.
    #[test]
    fn separable_clusters_are_learned() {
        let centres = [(-2.0f32, 0.0f32), (2.0, 0.0), (0.0, 2.5)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (c, (cx, cy)) in centres.iter().enumerate() {
            for k in 0..20 {
                let d = (k as f32 * 0.37).sin() * 0.4;
                x.push(vec![cx + d, cy - d * 0.5]);
                y.push(c);
            }
        }
        let m = fit(&x, &y, 3, &FitConfig::default());
        m.validate(2, 3).unwrap();
        for (xi, yi) in x.iter().zip(&y) {
            let p = m.probs(xi);
            let best = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap();
            assert_eq!(best, *yi);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    /// Class balancing moves the decision toward the rare class.
    #[test]
    fn balancing_favours_the_rare_class() {
        // One feature, overlapping classes: 90 of class 0 around -0.5, 10 of class 1 around 0.5.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for k in 0..100 {
            let c = usize::from(k % 10 == 0);
            let jitter = ((k * 7919) % 100) as f32 / 100.0 - 0.5;
            x.push(vec![if c == 1 { 0.5 } else { -0.5 } + 1.5 * jitter]);
            y.push(c);
        }
        let plain = fit(
            &x,
            &y,
            2,
            &FitConfig {
                balance_classes: false,
                ..Default::default()
            },
        );
        let balanced = fit(&x, &y, 2, &FitConfig::default());
        let at0 = |m: &Softmax| m.probs(&[0.0])[1];
        assert!(
            at0(&balanced) > at0(&plain) + 0.2,
            "{} vs {}",
            at0(&balanced),
            at0(&plain)
        );
    }

    #[test]
    fn validate_names_the_problem() {
        let m = Softmax {
            weights: vec![vec![0.0; 3]; 2],
            bias: vec![0.0; 2],
            temperature: 1.0,
        };
        assert!(m.validate(3, 2).is_ok());
        assert!(m.validate(4, 2).unwrap_err().contains("expected 4"));
        assert!(m.validate(3, 5).unwrap_err().contains("5 classes"));
    }
}
