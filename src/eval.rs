//! Judging generated digits as a teacher would: a digit classifier trained on the labelled
//! digits gives each sample a class and a confidence; the class histogram says whether all ten
//! digits appear; and a Fréchet distance between classifier features of samples and of held-out
//! real digits (as FID does with Inception features) says how close the two sets are.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::mnist::Mnist;
use crate::error::{DiffError, Result};
use crate::model::classifier::{DigitClassifier, DigitClassifierConfig};
use crate::tensor_util::{tensor2, to_vec};

/// Digits held out from the classifier's training, for its accuracy and the real features.
pub const HELD_OUT: usize = 2000;

/// A trained classifier and its accuracy on the held-out digits.
pub struct Judge {
    /// The classifier (no autodiff).
    pub model: DigitClassifier,
    /// Held-out accuracy.
    pub accuracy: f64,
    /// The held-out digits, flat [HELD_OUT, 784] in [−1, 1].
    pub held_out: Vec<f32>,
}

/// Trains the classifier on all but the last [`HELD_OUT`] digits (AdamW, batch 128, the
/// learning rate decaying from 3e-3 to 0 along a cosine over `epochs` passes, seeded) on `device`.
pub fn train_judge(mnist: &Mnist, epochs: usize, seed: u64, device: &Device) -> Result<Judge> {
    let mut training = JudgeTraining::new(mnist, epochs, seed, device)?;
    while training.step() {}
    training.finish()
}

/// [`train_judge`] a batch at a time (the app trains the judge on the page's frame loop).
pub struct JudgeTraining<'a> {
    mnist: &'a Mnist,
    device: Device,
    model: Option<DigitClassifier>,
    optim: burn::optim::ModuleOptimizer,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    /// Batches taken.
    pub done: usize,
    /// Batches in all.
    pub total: usize,
    train_n: usize,
}

/// The judge's batch.
const JUDGE_BATCH: usize = 128;

impl<'a> JudgeTraining<'a> {
    /// A fresh classifier and optimiser.
    pub fn new(mnist: &'a Mnist, epochs: usize, seed: u64, device: &Device) -> Result<Self> {
        let n = mnist.len();
        if n <= HELD_OUT + 100 {
            return Err(DiffError::invalid(
                "too few labelled digits to train the judge",
            ));
        }
        let train_n = n - HELD_OUT;
        let ad = device.clone().autodiff();
        let model =
            crate::model::init_with_rng(&ad, Some(seed), || DigitClassifierConfig::new().init(&ad));
        Ok(Self {
            mnist,
            device: device.clone(),
            model: Some(model),
            optim: AdamWConfig::new().with_weight_decay(1e-4).init(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            order: (0..train_n).collect(),
            done: 0,
            total: epochs * train_n.div_ceil(JUDGE_BATCH),
            train_n,
        })
    }

    /// One batch; false when the training is done.
    pub fn step(&mut self) -> bool {
        if self.done >= self.total {
            return false;
        }
        let per_epoch = self.train_n.div_ceil(JUDGE_BATCH);
        let within = self.done % per_epoch;
        if within == 0 {
            // A new pass: the order shuffled again in place (as `train_judge` always has).
            self.order.shuffle(&mut self.rng);
        }
        let chunk =
            &self.order[within * JUDGE_BATCH..((within + 1) * JUDGE_BATCH).min(self.train_n)];
        let b = chunk.len();
        let ad = self.device.clone().autodiff();
        let mut x = Vec::with_capacity(b * 784);
        let mut y = vec![0.0f32; b * 10];
        for (j, &i) in chunk.iter().enumerate() {
            x.extend(self.mnist.image(i));
            y[j * 10 + self.mnist.labels[i] as usize] = 1.0;
        }
        let x = tensor2(x, [b, 784], &ad);
        let y = tensor2(y, [b, 10], &ad);
        let Some(model) = self.model.take() else {
            return false;
        };
        // Cross-entropy −Σ y·log softmax(logits), averaged over the batch.
        let loss = -(log_softmax(model.forward(x), 1) * y).sum_dim(1).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // Cosine decay from 3e-3 to 0 over the whole run.
        let lr =
            1.5e-3 * (1.0 + (std::f64::consts::PI * self.done as f64 / self.total as f64).cos());
        self.done += 1;
        self.model = Some(self.optim.step(lr, model, grads));
        true
    }

    /// The trained judge, with its accuracy on the held-out digits.
    pub fn finish(mut self) -> Result<Judge> {
        let model = self
            .model
            .take()
            .ok_or_else(|| DiffError::Backend("no judge".into()))?
            .valid();
        let (n, train_n) = (self.mnist.len(), self.train_n);
        let held_out: Vec<f32> = (train_n..n).flat_map(|i| self.mnist.image(i)).collect();
        let (probs, _) = classify(&model, &held_out, &self.device)?;
        let correct = probs
            .iter()
            .zip(train_n..n)
            .filter(|(p, i)| argmax(p) == self.mnist.labels[*i] as usize)
            .count();
        Ok(Judge {
            model,
            accuracy: correct as f64 / HELD_OUT as f64,
            held_out,
        })
    }
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// One row per image.
pub type Rows = Vec<Vec<f32>>;

/// Class probabilities and features of flat 28×28 images in [−1, 1].
pub fn classify(model: &DigitClassifier, images: &[f32], device: &Device) -> Result<(Rows, Rows)> {
    let n = images.len() / 784;
    let mut probs = Vec::with_capacity(n);
    let mut feats = Vec::with_capacity(n);
    for start in (0..n).step_by(500) {
        let b = (n - start).min(500);
        let x = tensor2(
            images[start * 784..(start + b) * 784].to_vec(),
            [b, 784],
            device,
        );
        let f = model.features(x.clone());
        let p = model.probabilities(x);
        probs.extend(to_vec(p)?.chunks(10).map(<[f32]>::to_vec));
        let fd = f.dims()[1];
        feats.extend(to_vec(f)?.chunks(fd).map(<[f32]>::to_vec));
    }
    Ok((probs, feats))
}

/// A sample whose top class probability is below this is a scrawl.
pub const SCRAWL_BELOW: f32 = 0.5;

/// For each label 0–9: the fraction of the samples asked for with that label that the judge reads
/// as it (`None` where no sample asked for it).
pub fn accuracy_per_label(
    j: &Judge,
    samples: &[f32],
    labels: &[usize],
    device: &Device,
) -> Result<[Option<f64>; 10]> {
    if samples.len() != labels.len() * 784 {
        return Err(DiffError::invalid(format!(
            "{} labels for {} samples",
            labels.len(),
            samples.len() / 784
        )));
    }
    let (probs, _) = classify(&j.model, samples, device)?;
    let mut hits = [0usize; 10];
    let mut asked = [0usize; 10];
    for (p, &l) in probs.iter().zip(labels) {
        if l < 10 {
            asked[l] += 1;
            if argmax(p) == l {
                hits[l] += 1;
            }
        }
    }
    Ok(std::array::from_fn(|k| {
        (asked[k] > 0).then(|| hits[k] as f64 / asked[k] as f64)
    }))
}

/// What the judge says about a set of samples.
#[derive(Clone, Debug)]
pub struct DigitReport {
    /// Samples judged.
    pub n: usize,
    /// Mean of the top class probability.
    pub mean_confidence: f64,
    /// Fraction of "scrawls": samples whose top class probability is below 0.5.
    pub scrawls: f64,
    /// The same on the held-out real digits (what a perfect model would score).
    pub real_confidence: f64,
    /// Fraction of samples per predicted class.
    pub histogram: [f64; 10],
    /// Entropy of the histogram in bits (log2 10 ≈ 3.32 when uniform).
    pub entropy_bits: f64,
    /// Fréchet distance of features, samples against held-out real digits.
    pub frechet: f64,
    /// The same distance for n held-out real digits against the other half (the floor).
    pub frechet_real: f64,
    /// Per sample, in order: the class the judge reads and its probability.
    pub readings: Vec<(usize, f32)>,
    /// The held-out real digits' mean confidence per class they are read as.
    pub real_by_class: [Option<f64>; 10],
}

impl DigitReport {
    /// The indices of the `k` samples the judge is least sure of, least sure first (ties by
    /// index, so the order is reproducible).
    pub fn least_confident(&self, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.readings.len()).collect();
        order.sort_by(|&a, &b| {
            self.readings[a]
                .1
                .total_cmp(&self.readings[b].1)
                .then(a.cmp(&b))
        });
        order.truncate(k);
        order
    }

    /// The samples' mean confidence per class they are read as (`None` for a class none is read
    /// as): which digits the model draws worst.
    pub fn confidence_by_class(&self) -> [Option<f64>; 10] {
        mean_by_class(&self.readings)
    }
}

/// The mean probability per class read, of (class, probability) readings; `None` where no
/// reading has that class.
pub fn mean_by_class(readings: &[(usize, f32)]) -> [Option<f64>; 10] {
    let mut sum = [0.0f64; 10];
    let mut count = [0usize; 10];
    for &(k, p) in readings {
        if let (Some(s), Some(c)) = (sum.get_mut(k), count.get_mut(k)) {
            *s += f64::from(p);
            *c += 1;
        }
    }
    std::array::from_fn(|k| (count[k] > 0).then(|| sum[k] / count[k] as f64))
}

/// Judges flat 28×28 samples in [−1, 1] against the held-out digits (the samples' Fréchet
/// distance is against all of them).
pub fn judge(j: &Judge, samples: &[f32], device: &Device) -> Result<DigitReport> {
    judge_against(j, &RealDigits::new(j, device)?, samples, device)
}

/// The held-out real digits as the judge reads them (classified once, for many judgings).
pub struct RealDigits {
    probs: Rows,
    feats: Rows,
}

impl RealDigits {
    /// Classifies the judge's held-out digits.
    pub fn new(j: &Judge, device: &Device) -> Result<Self> {
        let (probs, feats) = classify(&j.model, &j.held_out, device)?;
        Ok(Self { probs, feats })
    }
}

/// [`judge`], with the held-out digits already read.
pub fn judge_against(
    j: &Judge,
    real_digits: &RealDigits,
    samples: &[f32],
    device: &Device,
) -> Result<DigitReport> {
    let n = samples.len() / 784;
    if n < 2 {
        return Err(DiffError::invalid("judge at least 2 samples"));
    }
    let (probs, feats) = classify(&j.model, samples, device)?;
    let (real_probs, real) = (&real_digits.probs, &real_digits.feats);
    let real_readings: Vec<(usize, f32)> = real_probs
        .iter()
        .map(|p| {
            let k = argmax(p);
            (k, p[k])
        })
        .collect();
    let real_confidence = real_readings
        .iter()
        .map(|&(_, p)| f64::from(p))
        .sum::<f64>()
        / real_readings.len().max(1) as f64;
    let mut histogram = [0.0; 10];
    let mut conf = 0.0;
    let mut scrawls = 0.0;
    let mut readings = Vec::with_capacity(n);
    for p in &probs {
        let k = argmax(p);
        readings.push((k, p[k]));
        histogram[k] += 1.0 / n as f64;
        conf += f64::from(p[k]);
        if p[k] < SCRAWL_BELOW {
            scrawls += 1.0 / n as f64;
        }
    }
    let entropy_bits = -histogram
        .iter()
        .filter(|h| **h > 0.0)
        .map(|h| h * h.log2())
        .sum::<f64>();
    // Real against real, set up as the samples are: n real digits (at most half the held-out
    // ones) against the other half. (Fréchet distances grow as n shrinks: compare at equal n.)
    let half = real.len() / 2;
    let frechet_real = frechet_distance(&real[..n.min(half)], &real[half..]);
    Ok(DigitReport {
        n,
        mean_confidence: conf / n as f64,
        scrawls,
        real_confidence,
        histogram,
        entropy_bits,
        frechet: frechet_distance(&feats, real),
        frechet_real,
        readings,
        real_by_class: mean_by_class(&real_readings),
    })
}

/// Mean and covariance of row vectors.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn moments(x: &[Vec<f32>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = x.first().map_or(0, std::vec::Vec::len);
    let n = x.len().max(1) as f64;
    let mut mu = vec![0.0; d];
    for r in x {
        for (m, v) in mu.iter_mut().zip(r) {
            *m += f64::from(*v) / n;
        }
    }
    let mut cov = vec![vec![0.0; d]; d];
    for r in x {
        for i in 0..d {
            let a = f64::from(r[i]) - mu[i];
            for j in i..d {
                cov[i][j] += a * (f64::from(r[j]) - mu[j]);
            }
        }
    }
    let denom = (x.len().max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            cov[i][j] /= denom;
            cov[j][i] = cov[i][j];
        }
    }
    (mu, cov)
}

/// The Fréchet distance between Gaussians fitted to two sets of feature vectors:
/// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁^½ Σ₂ Σ₁^½)^½) (Dowson & Landau 1982; Heusel et al. 2017).
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (m1, s1) = moments(a);
    let (m2, s2) = moments(b);
    let d = m1.len();
    let mean_term: f64 = m1.iter().zip(&m2).map(|(x, y)| (x - y).powi(2)).sum();
    let root1 = sym_sqrt(&s1);
    let inner = matmul(&matmul(&root1, &s2), &root1);
    let (eig, _) = jacobi_eigen(&inner);
    let tr_root: f64 = eig.iter().map(|e| e.max(0.0).sqrt()).sum();
    let tr1: f64 = (0..d).map(|i| s1[i][i]).sum();
    let tr2: f64 = (0..d).map(|i| s2[i][i]).sum();
    mean_term + tr1 + tr2 - 2.0 * tr_root
}

#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let m = b.first().map_or(0, std::vec::Vec::len);
    let mut out = vec![vec![0.0; m]; n];
    for i in 0..n {
        for (k, bk) in b.iter().enumerate() {
            let aik = a[i][k];
            if aik != 0.0 {
                for j in 0..m {
                    out[i][j] += aik * bk[j];
                }
            }
        }
    }
    out
}

/// The square root of a symmetric positive semi-definite matrix, through its eigenvectors.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn sym_sqrt(s: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (eig, v) = jacobi_eigen(s);
    let d = s.len();
    let mut out = vec![vec![0.0; d]; d];
    for (k, e) in eig.iter().enumerate() {
        let r = e.max(0.0).sqrt();
        for i in 0..d {
            for j in 0..d {
                out[i][j] += v[i][k] * r * v[j][k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn jacobi_eigen(s: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = s.len();
    let mut a: Vec<Vec<f64>> = s.to_vec();
    let mut v = vec![vec![0.0; d]; d];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - sn * akq;
                    a[k][q] = sn * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - sn * aqk;
                    a[q][k] = sn * apk + c * aqk;
                }
                for row in &mut v {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - sn * vq;
                    row[q] = sn * vp + c * vq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}
