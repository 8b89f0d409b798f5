//! A small digit classifier for judging generated digits (`difflab eval`): an MLP
//! 784 → 256 → 64 → 10 with SiLU. Its 64 penultimate activations are the features of the
//! Fréchet distance.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor};

/// The classifier's shape.
#[derive(Config, Debug)]
pub struct DigitClassifierConfig {
    /// Input pixels.
    #[config(default = 784)]
    pub inputs: usize,
    /// First hidden layer.
    #[config(default = 256)]
    pub hidden: usize,
    /// The feature layer.
    #[config(default = 64)]
    pub features: usize,
    /// Classes.
    #[config(default = 10)]
    pub classes: usize,
}

/// The classifier.
#[derive(Module, Debug)]
pub struct DigitClassifier {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl DigitClassifierConfig {
    /// A freshly initialised classifier on `device`.
    pub fn init(&self, device: &Device) -> DigitClassifier {
        DigitClassifier {
            l1: LinearConfig::new(self.inputs, self.hidden).init(device),
            l2: LinearConfig::new(self.hidden, self.features).init(device),
            out: LinearConfig::new(self.features, self.classes).init(device),
        }
    }
}

impl DigitClassifier {
    /// The feature layer for images [B, 784] in [−1, 1].
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        silu(self.l2.forward(silu(self.l1.forward(x))))
    }

    /// Logits [B, 10].
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(self.features(x))
    }

    /// Class probabilities [B, 10].
    pub fn probabilities(&self, x: Tensor<2>) -> Tensor<2> {
        softmax(self.forward(x), 1)
    }
}
